"""The JupyterHub backend's pure parts: names, settings, hub states, the spawn hook, warm launches."""
import json
import threading
import time
import types

import pytest
from pyramid.exceptions import ConfigurationError

from pyramid_notebook.backends.base import NotebookBackend
from pyramid_notebook.backends.hub.backend import HubBackend, hub_username, server_state
from pyramid_notebook.hubspawn import CONTEXT_ENV, check_context, pre_spawn_hook
from pyramid_notebook.notebookmanager import NotebookManager
from pyramid_notebook.core.settings import parse_settings
from pyramid_notebook.core.names import BadUsername

HUB = {"pyramid_notebook.backend": "jupyterhub", "pyramid_notebook.hub_url": "http://127.0.0.1:8000/notebook/",
       "pyramid_notebook.hub_api_token": "secret", "pyramid_notebook.websocket_proxy": "builtins.print"}


def test_both_backends_implement_the_interface(tmp_path):
    assert isinstance(NotebookManager(str(tmp_path)), NotebookBackend)
    assert isinstance(HubBackend("http://127.0.0.1:8000/notebook/", "t"), NotebookBackend)
    assert NotebookManager(str(tmp_path / "missing")).list_notebooks() == []


def test_hub_usernames_never_collide():
    assert hub_username("alice") == "alice"
    assert hub_username("a.b-c_1") == "a.b-c_1"
    names = ["Alice", "alice", "ALICE", "a b", "alice/../bob", "ünï", "x--0123456789abcdef"]
    mapped = [hub_username(n) for n in names]
    assert len(set(mapped)) == len(names)
    for name, hub in zip(names, mapped):
        assert hub == hub.lower() and "/" not in hub and " " not in hub
        if name != hub:
            assert "--" in hub, "only hashed names contain --, so no plain name can take one"
    # A user cannot pick the plain name another user's name hashes to.
    assert hub_username(hub_username("Alice")) != hub_username("Alice")
    for bad in ("", "a\x00b", "x" * 300):
        with pytest.raises(BadUsername):
            hub_username(bad)


def test_hub_settings():
    settings = parse_settings(HUB)
    assert settings.backend == "jupyterhub" and settings.hub_url == HUB["pyramid_notebook.hub_url"]
    backend = HubBackend.from_settings(settings)
    assert (backend.proxy_host, backend.proxy_port, backend.base_path) == ("127.0.0.1", 8000, "/notebook/")
    assert backend.api_url == "http://127.0.0.1:8000/notebook/hub/api/"
    assert backend.notebook_path("alice") == "/notebook/user/alice/"
    for missing, message in (("pyramid_notebook.hub_url", "hub_url is missing"),
                             ("pyramid_notebook.hub_api_token", "hub_api_token is missing"),
                             ("pyramid_notebook.websocket_proxy", "needs pyramid_notebook.websocket_proxy")):
        with pytest.raises(ConfigurationError, match=message):
            parse_settings({k: v for k, v in HUB.items() if k != missing})
    with pytest.raises(ConfigurationError, match="backend must be one of"):
        parse_settings(dict(HUB, **{"pyramid_notebook.backend": "kubernetes"}))
    with pytest.raises(ConfigurationError, match="hub_url must be a URL"):
        parse_settings(dict(HUB, **{"pyramid_notebook.hub_url": "127.0.0.1:8000"}))


def test_server_states():
    assert server_state(None) == "stopped"
    assert server_state({"stopped": True, "pending": None, "ready": False}) == "stopped"
    assert server_state({"stopped": False, "pending": "spawn", "ready": False}) == "spawning"
    assert server_state({"stopped": False, "pending": "stop", "ready": True}) == "stopping"
    assert server_state({"stopped": False, "pending": None, "ready": True}) == "ready"


def test_spawn_hook_passes_a_checked_context():
    spawner = types.SimpleNamespace(user_options={"pyramid_notebook": {"startup": "a = 1", "kill_timeout": 60,
                                                                       "notebook_name": "default-1.ipynb"}},
                                    environment={"KEEP": "1"})
    pre_spawn_hook(spawner)
    assert json.loads(spawner.environment[CONTEXT_ENV])["startup"] == "a = 1"
    assert spawner.environment["KEEP"] == "1"
    spawner.user_options = {}  # a server someone starts on the hub's own pages: nothing of ours
    pre_spawn_hook(spawner)
    assert CONTEXT_ENV not in spawner.environment
    for bad in ({"kill_timeout": "soon"}, {"startup": 1}, {"notebook_name": "../x.ipynb"}, [],
                {"frame_ancestors": "'self'"}, {"frame_ancestors": ["'self'; script-src *"]},
                {"parent_origins": ["https://a.example\r\nX-Injected: 1"]}):
        with pytest.raises(ValueError, match="pyramid_notebook"):
            check_context(bad)

    assert check_context({"frame_ancestors": ["'self'", "https://portal.example.com:8443"],
                          "parent_origins": ["http://[::1]:8080"]})


class WarmHub(HubBackend):
    """HubBackend with the hub's answers scripted: the decision logic of a warm launch, alone."""

    def __init__(self, answers):
        super().__init__("http://127.0.0.1:9/notebook/", "t")
        self._tokens["alice"] = ("alice-token", time.time() + 3600)
        self.answers, self.probed, self.stopped = list(answers), threading.Event(), []
        self.model = {"ready": True, "pending": None, "stopped": False, "started": "then",
                      "user_options": {"pyramid_notebook": {"context_hash": "h" * 64}}}

    def server_model(self, hub_user):
        # The probe is under way before the hub's model arrives: both at once.
        assert self.probed.wait(5), "api/status is asked while the model is read"
        return self.model

    def _probe(self, notebook_path, token):
        assert (notebook_path, token) == ("/notebook/user/alice/", "alice-token")
        self.probed.set()
        return self.answers.pop(0)

    def _stop(self, hub_user):
        self.stopped.append(hub_user)
        self.model = None

    def _ensure_user(self, hub_user):
        pass

    def _spawn(self, hub_user, options):
        return True

    def _wait_until_ready(self, hub_user, deadline):
        return self._running_context(hub_user, {"ready": True, "started": "now",
                                                "user_options": {"pyramid_notebook": {"context_hash": "h" * 64}}})


def test_warm_launch_reuses_a_server_that_answers():
    hub = WarmHub([True])
    running, created = hub.start_notebook_on_demand("alice", {"context_hash": "h" * 64})
    assert not created and running["started"] == "then" and running["token"] == "alice-token"
    assert hub.stopped == [] and hub.get_notebook_status("alice") == running


def test_warm_launch_restarts_a_ready_server_that_does_not_answer():
    hub = WarmHub([False])
    hub.probed.set()  # after the stop, the model is read again without a second early probe
    running, created = hub.start_notebook_on_demand("alice", {"context_hash": "h" * 64})
    assert created and running["started"] == "now" and hub.stopped == ["alice"]


def test_a_browsers_launch_on_the_hub_redirects_instead_of_the_progress_page():
    """The progress page keeps its state beside a local pid file; on the hub a browser's launch is
    answered once the server is ready, as without the page, not with a 500."""
    from pyramid import testing
    from pyramid.httpexceptions import HTTPFound

    from pyramid_notebook.views import launch_notebook
    from tests.helpers import CLICK

    config = testing.setUp(settings=dict(HUB, **{"pyramid_notebook.progress_page": "true"}))
    try:
        config.include("pyramid_notebook")
        config.add_route("notebook_proxy", "/notebook/*remainder")
        config.commit()
        hub = config.registry.pyramid_notebook_manager = WarmHub([True, True])
        hub.probed.set()  # this launch's context differs: the hub's server is restarted (scripted)
        started = hub._wait_until_ready
        hub._wait_until_ready = lambda *a: dict(started(*a), notebook_name="default.ipynb")
        request = testing.DummyRequest(path="/shell", headers=dict(CLICK, Accept="text/html"))
        request.registry = config.registry
        answer = launch_notebook(request, "alice", {"startup": "", "greeting": ""}, progress=True)
        assert isinstance(answer, HTTPFound)
        assert answer.location.endswith("/notebook/user/alice/notebooks/default.ipynb")
    finally:
        testing.tearDown()
