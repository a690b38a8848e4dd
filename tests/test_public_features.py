"""Public features the README documents that no other test covered: ``warm_kernel = false``,
``pyramid-notebook stop-all`` stopping the fork server too, and the intent helpers a site's own
views call (``require_intent``, ``get_csrf_token``)."""
import json
import os
import subprocess
import sys

import pytest
import requests
from pyramid import testing
from pyramid.request import Request

from pyramid_notebook.backends.local.manager import NotebookManager
from tests.helpers import daemons_under, fork_servers_under, random_port_base, wait_for

CONTEXT = {"context_hash": "features", "greeting": "", "notebook_path": "/notebook/"}


def _kernels(context):
    r = requests.get(f"http://127.0.0.1:{context['http_port']}/notebook/api/kernels",
                     headers={"Authorization": "token " + context["token"]}, timeout=10)
    assert r.status_code == 200
    return r.json()


def test_warm_kernel_false_starts_no_kernel_and_true_does(notebook_folder):
    cold = NotebookManager(notebook_folder, min_port=random_port_base(), port_range=20, warm_kernel=False)
    context = cold.start_notebook("alice", dict(CONTEXT))
    assert context["warm_kernel"] is False
    # The control: the default starts the default notebook's kernel with the server.
    warm = NotebookManager(notebook_folder, min_port=random_port_base(), port_range=20)
    warm_context = warm.start_notebook("bob", dict(CONTEXT))
    wait_for(lambda: (warm.get_notebook_status("bob") or {}).get("warm_session"), timeout=120,
             message="bob's warm kernel")
    assert len(_kernels(warm_context)) == 1
    # By then alice's server has long been up: still no kernel (not even the spare kernel, which
    # with warm_kernel = false waits for a second shell), and none announced.
    assert _kernels(context) == []
    assert "warm_session" not in (cold.get_notebook_status("alice") or {})


def test_cli_stop_all_stops_the_fork_server_too(manager):
    context = manager.start_notebook("alice", dict(CONTEXT))
    assert context and fork_servers_under(manager.notebook_folder), "a fork server serves this folder"
    cli = os.path.join(os.path.dirname(sys.executable), "pyramid-notebook")
    r = subprocess.run([cli, "stop-all", manager.notebook_folder, "--json"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert [row["user"] for row in json.loads(r.stdout) if row["stopped"]] == ["alice"]
    wait_for(lambda: not fork_servers_under(manager.notebook_folder), timeout=30, message="the fork server to stop")
    assert daemons_under(manager.notebook_folder) == []


@pytest.fixture
def site_request(tmp_path):
    """A request on a site that includes pyramid_notebook and has no session factory."""
    config = testing.setUp(settings={"pyramid_notebook.notebook_folder": str(tmp_path / "nb")})
    config.include("pyramid_notebook")
    config.commit()

    def make(method="GET", headers=None, post=None):
        request = Request.blank("/my/view", base_url="http://site.example", headers=headers or {},
                                POST=post if method == "POST" else None)
        request.registry = config.registry
        return request

    yield make
    testing.tearDown()


def test_require_intent_and_get_csrf_token_for_a_sites_own_view(site_request):
    from pyramid_notebook.web.intent import CSRF_FIELD, ConfirmationRequired, get_csrf_token, require_intent

    ask = ("Delete it?", "It is gone for good.", "Delete")
    # A click on the site itself: the view goes on.
    assert require_intent(site_request(headers={"Sec-Fetch-Site": "same-origin"}), *ask) is None
    # Another site's link: the confirmation page, with the site's own words and a token to POST back.
    request = site_request(headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "document"})
    with pytest.raises(ConfirmationRequired) as e:
        require_intent(request, *ask, cancel_url="/back")
    page = e.value.text
    token = get_csrf_token(request)
    assert "Delete it?" in page and "It is gone for good." in page and 'href="/back"' in page
    assert f'value="{token}"' in page and 'action="/my/view"' in page
    assert token and get_csrf_token(request) == token, "one token per request"
    # The POST back with the cookie's token shows intent; a wrong token does not.
    cookie = {"Cookie": f"pyramid_notebook_csrf={token}"}
    assert require_intent(site_request("POST", cookie, {CSRF_FIELD: token}), *ask) is None
    with pytest.raises(ConfirmationRequired):
        require_intent(site_request("POST", cookie, {CSRF_FIELD: "forged"}), *ask)


def test_contents_functions_through_a_request_reach_the_users_own_notebook(tmp_path):
    """``contents.create_notebook`` / ``list_files`` / ``delete_file`` as a site's view calls them:
    the request's manager finds the user's running notebook; files land in (and leave) the user's
    folder on disk; another user without a notebook gets NotebookNotRunning, never the first's."""
    from pyramid_notebook.web import contents

    config = testing.setUp(settings={"pyramid_notebook.notebook_folder": str(tmp_path / "notebooks"),
                                     "pyramid_notebook.port_base": str(random_port_base()),
                                     "pyramid_notebook.fork_server": "false"})
    try:
        config.include("pyramid_notebook")
        config.commit()
        request = testing.DummyRequest()
        manager = request.registry.pyramid_notebook_manager
        manager.start_notebook("user", dict(CONTEXT))
        try:
            folder = manager.get_work_folder("user")
            model = contents.create_notebook(request, "user", "made by the site.ipynb")
            assert model["path"] == "made by the site.ipynb"
            assert os.path.isfile(os.path.join(folder, "made by the site.ipynb"))
            assert "made by the site.ipynb" in [m["name"] for m in contents.list_files(request, "user")]
            contents.delete_file(request, "user", "made by the site.ipynb")
            assert not os.path.exists(os.path.join(folder, "made by the site.ipynb"))
            with pytest.raises(contents.NotebookNotRunning):
                contents.list_files(request, "user2")
        finally:
            manager.stop_notebook("user")
    finally:
        testing.tearDown()
