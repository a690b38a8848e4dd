"""Hardening: destructive actions need intent, state stays out of the user's files, bad input is a 4xx."""
import html
import json
import os
import re
import signal
import subprocess
import sys

import pytest
from pyramid import testing
from pyramid.exceptions import URLDecodeError
from pyramid.request import Request

from pyramid_notebook.core.process import get_daemon_process
from pyramid_notebook.views import launch_notebook
from tests.helpers import daemons_under, free_port, login, wait_for
from tests.test_manager import CONTEXT

CLICK = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
CROSS_SITE = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document",
              "Referer": "http://evil.example/"}


def running_pid(server, user="user"):
    context = server.manager.get_notebook_status(user)
    return context and context["pid"]


def confirmation_token(response):
    assert response.status_code == 200, response.text
    assert "Traceback" not in response.text
    assert response.headers["X-Frame-Options"] == "DENY", "the confirm button cannot be clickjacked"
    return re.search(r'name="csrf_token" value="([^"]+)"', response.text).group(1)


def test_destructive_actions_need_intent_and_state_is_out_of_reach(demo_server):
    """One notebook, every way in: a cross-site request never restarts or stops it, a click does."""
    base = demo_server.url
    s = login(base)
    assert s.get(base + "/shell2", allow_redirects=False).status_code == 302, "a stopped notebook just starts"
    pid = running_pid(demo_server)

    # The notebook's own state is not in the folder Jupyter serves.
    context = demo_server.manager.get_notebook_status("user")
    s.get(base + "/notebook/tree")
    for path in ("context.json", "notebook.pid", "notebook.stderr.log", ".jupyter/jupyter_server_config.json",
                 "..%2F.state%2Fuser%2Fcontext.json", "../.state/user/context.json"):
        r = s.get(base + "/notebook/api/contents/" + path)
        assert r.status_code in (400, 403, 404), (path, r.status_code)
        assert context["token"] not in r.text
    listing = s.get(base + "/notebook/api/contents").json()["content"]
    # The user's own files, and the team's read-only recipe folder (the demo shares recipes).
    assert sorted(item["name"] for item in listing) == sorted([context["notebook_name"], "team-recipes"]), \
        "only the user's own files"

    # Another site's link to another shell: a confirmation page, the notebook keeps running.
    r = s.get(base + "/shell3", headers=CROSS_SITE, allow_redirects=False)
    token = confirmation_token(r)
    assert "Restart your notebook?" in r.text and running_pid(demo_server) == pid
    # ... while the same shell (nothing is restarted) just opens.
    assert s.get(base + "/shell2", headers=CROSS_SITE, allow_redirects=False).status_code == 302
    # A forged POST without the token does not restart either.
    r = s.post(base + "/shell3", data={"csrf_token": "forged"}, headers={"Origin": "http://evil.example"},
               allow_redirects=False)
    assert r.status_code == 200 and running_pid(demo_server) == pid
    # The confirmation page's button: POST with the token, and it restarts.
    r = s.post(base + "/shell3", data={"csrf_token": token}, allow_redirects=False)
    assert r.status_code == 302 and "/notebook/notebooks/default-" in r.headers["Location"]
    pid = running_pid(demo_server)
    assert pid and pid != context["pid"]

    # Shutdown: an <img> or link on another site, a browser hiding its origin, a script: confirmation.
    for headers in (CROSS_SITE, {"Referer": "http://evil.example/page"}, {},
                    {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"},
                    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "document"}, {"Origin": "null"}):
        r = s.get(base + "/notebook/shutdown", headers=headers, allow_redirects=False)
        assert "Shut down your notebook?" in r.text, headers
        token = confirmation_token(r)
        assert running_pid(demo_server) == pid, f"{headers} must not stop the notebook"
    r = s.post(base + "/notebook/shutdown", data={"csrf_token": "nope"}, headers={"Origin": "http://evil.example"},
               allow_redirects=False)
    assert r.status_code == 200 and running_pid(demo_server) == pid
    # Another user's token is not this user's.
    other = login(base, "user2")
    other_token = confirmation_token(other.get(base + "/notebook/shutdown", allow_redirects=False))
    r = s.post(base + "/notebook/shutdown", data={"csrf_token": other_token}, allow_redirects=False)
    assert r.status_code == 200 and running_pid(demo_server) == pid
    # Confirmed with the token: stopped.
    r = s.post(base + "/notebook/shutdown", data={"csrf_token": token}, allow_redirects=False)
    assert r.status_code == 302 and not demo_server.manager.is_running("user")
    # A click on the site (or the notebook's control) needs no confirmation.
    s.get(base + "/shell2", allow_redirects=False)
    r = s.get(base + "/notebook/shutdown", headers=CLICK, allow_redirects=False)
    assert r.status_code == 302 and not demo_server.manager.is_running("user")
    assert daemons_under(demo_server.manager.notebook_folder) == []


@pytest.fixture
def registry_with(tmp_path):
    """A configured registry (``config.include("pyramid_notebook")``) with extra settings."""
    def make(**settings):
        settings.setdefault("pyramid_notebook.notebook_folder", str(tmp_path / "nb"))
        config = testing.setUp(settings=settings)
        config.include("pyramid_notebook")
        config.add_route("notebook_proxy", "/notebook/*remainder")
        config.commit()
        make.config = config
        return config.registry

    yield make
    testing.tearDown()


def blank(registry, path="/notebook/shutdown", base_url="http://site.example", **headers):
    request = Request.blank(path, base_url=base_url, headers=headers)
    request.registry = registry
    return request


def test_browser_intent_rules(registry_with):
    from pyramid_notebook.web.intent import browser_intent, has_intent

    registry = registry_with(**{"pyramid_notebook.alternative_domain": "https://shell.example"})
    assert browser_intent(blank(registry, **{"Sec-Fetch-Site": "same-origin"})) is True
    assert browser_intent(blank(registry, **{"Sec-Fetch-Site": "none", "Sec-Fetch-Dest": "document"})) is True
    # The notebook's shutdown control lives on the alternative domain: one click from there works.
    assert browser_intent(blank(registry, **{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "document",
                                             "Referer": "https://shell.example/notebook/tree"})) is True
    assert browser_intent(blank(registry, Origin="https://shell.example")) is True
    assert browser_intent(blank(registry, Referer="http://site.example/")) is True
    # Everything else is not intent, or no evidence at all.
    assert browser_intent(blank(registry, **{"Sec-Fetch-Site": "cross-site"})) is False
    assert browser_intent(blank(registry, **{"Sec-Fetch-Site": "same-site", "Referer": "https://x.site.example/"})) \
        is False
    assert browser_intent(blank(registry, **{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "image"})) is False
    # A navigation in a frame is never intent: the framing page may be another (same-site) one (clickjacking).
    assert browser_intent(blank(registry, **{"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "iframe"})) is False
    assert browser_intent(blank(registry, **{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "iframe",
                                             "Referer": "http://evil.example/"})) is False
    assert browser_intent(blank(registry, Origin="http://evil.example")) is False
    assert browser_intent(blank(registry, Origin="null")) is False
    assert browser_intent(blank(registry, Referer="garbage")) is False
    assert browser_intent(blank(registry, Origin="http://site.example:notaport")) is False
    assert browser_intent(blank(registry)) is None
    assert has_intent(blank(registry)) is False, "no evidence is not intent"


def test_urls_that_are_not_utf8_answer_400(demo_server, registry_with):
    import requests

    for path in ("/%ff%fe", "/notebook/api/contents/%ff%fe", "/notebook/%C0%AF", "/shell1%ff"):
        r = requests.get(demo_server.url + path, auth=("user", "password"))
        assert r.status_code == 400, path
        assert "Bad request" in r.text and "not UTF-8" in r.text and "Traceback" not in r.text
    # A site that only includes the library: 400 under the notebook routes, its own handling elsewhere.
    registry_with()
    app = registry_with.config.make_wsgi_app()
    response = Request.blank("/notebook/%ff").get_response(app)
    assert response.status_code == 400 and "not UTF-8" in response.text
    with pytest.raises(URLDecodeError):
        Request.blank("/elsewhere/%ff").get_response(app)


@pytest.mark.parametrize("bad, key", [
    ("a string", "must be a dict"),
    ({"startup": 5}, "'startup'"),
    ({"greeting": ["x"]}, "'greeting'"),
    ({"kill_timeout": "soon"}, "'kill_timeout'"),
    ({"kill_timeout": 0}, "'kill_timeout'"),
    ({"idle_timeout": True}, "'idle_timeout'"),
    ({"extra_template_paths": "/tmp"}, "'extra_template_paths'"),
    ({"extra_template_paths": [["x"]]}, "'extra_template_paths'"),
    ({"notebook_path": "notebook"}, "'notebook_path'"),
    ({"anything": object()}, "cannot be stored as JSON"),
    ({"anything": float("nan")}, "cannot be stored as JSON"),
    ({1: "x"}, "keys must be strings"),
])
def test_malformed_notebook_context_is_a_clear_error(registry_with, bad, key):
    registry = registry_with()
    with pytest.raises(Exception) as e:
        launch_notebook(blank(registry, "/shell"), "user", bad)
    assert getattr(e.value, "status_code", None) == 500, repr(e.value)
    text = html.unescape(e.value.text)
    assert "Invalid notebook context" in text and key in text
    assert not os.path.exists(registry.pyramid_notebook_manager.get_state_folder("user")), "nothing started"


def test_confirmation_page_without_a_session_factory_uses_its_own_cookie(registry_with):
    """A site without a session factory: the confirmation page's token lives in the fallback
    cookie (``pyramid_notebook_csrf``, HttpOnly, SameSite=Lax), and only a POST carrying both the
    cookie and its token confirms. Through the WSGI app, so that Pyramid's response callbacks run."""
    import re

    from pyramid.httpexceptions import HTTPException, HTTPFound, default_exceptionresponse_view

    from pyramid_notebook.web.intent import CSRF_FIELD
    from pyramid_notebook.web.views import shutdown_notebook

    registry_with()
    config = registry_with.config
    config.add_exception_view(default_exceptionresponse_view, context=HTTPException)  # as Configurator() has
    config.add_route("shutdown", "/shutdown")
    config.add_view(lambda request: (shutdown_notebook(request, "user"), HTTPFound("/"))[1], route_name="shutdown")
    app = config.make_wsgi_app()

    page = Request.blank("/shutdown", base_url="http://site.example",
                         headers={"Referer": "http://evil.example/"}).get_response(app)
    assert page.status_code == 200 and "Shut down your notebook?" in page.text
    (set_cookie,) = [v for k, v in page.headerlist if k == "Set-Cookie" and v.startswith("pyramid_notebook_csrf=")]
    cookie_token = set_cookie.split(";")[0].split("=", 1)[1]
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    form_token = re.search(rf'name="{CSRF_FIELD}" value="([^"]+)"', page.text).group(1)
    assert form_token == cookie_token

    def post(token, cookie):
        request = Request.blank("/shutdown", base_url="http://site.example", POST={CSRF_FIELD: token},
                                headers={"Cookie": f"pyramid_notebook_csrf={cookie}"} if cookie else {})
        return request.get_response(app)

    assert post(form_token, cookie_token).status_code == 302, "the cookie and its token confirm"
    assert post(form_token, None).status_code == 200, "the token without the cookie asks again"
    assert post("forged", cookie_token).status_code == 200, "another token asks again"


def start_old_layout_daemon(manager, user):
    """A daemon started as versions before 0.4 did: pid file and state inside the user's folder."""
    import pyramid_notebook.server.notebook_daemon as daemon_module

    work = manager.get_work_folder(user)
    os.makedirs(work)
    context = dict(CONTEXT, token="old-secret", notebook_path="/notebook/")
    with open(os.path.join(work, "context.json"), "w") as f:
        json.dump(context, f)
    pid_file, port = os.path.join(work, "notebook.pid"), free_port()
    r = subprocess.run([sys.executable, daemon_module.__file__, "start", pid_file, work, str(port), "600"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return wait_for(lambda: get_daemon_process(pid_file), timeout=60, message="the old-layout daemon")


def test_old_user_folders_are_migrated_on_next_launch(manager):
    old = start_old_layout_daemon(manager, "alice")
    work = manager.get_work_folder("alice")
    wait_for(lambda: os.path.exists(os.path.join(work, ".ipython")), timeout=60, message="the old daemon's state")
    with open(os.path.join(work, "mine.ipynb"), "w") as f:
        f.write("precious")
    os.makedirs(os.path.join(work, "data"))
    with open(os.path.join(work, "data", "context.json"), "w") as f:
        f.write('{"context_hash": "a user file that looks like ours"}')
    user_startup = os.path.join(work, ".ipython", "profile_default", "startup", "99-mine.py")
    with open(user_startup, "w") as f:
        f.write("mine = 1\n")
    assert manager.stop_notebook("nobody-else") is False

    context, created = manager.start_notebook_on_demand("alice", CONTEXT)
    assert created and context["pid"] != old.pid
    assert not psutil_alive(old.pid), "the old-layout daemon was stopped"
    assert sorted(os.listdir(work)) == ["data", context["notebook_name"], "mine.ipynb"], "state moved out"
    assert open(os.path.join(work, "mine.ipynb")).read() == "precious"
    assert "looks like ours" in open(os.path.join(work, "data", "context.json")).read()
    state = manager.get_state_folder("alice")
    moved_startup = [os.path.join(root, name) for root, _, names in os.walk(state) for name in names
                     if name == "99-mine.py"]
    assert moved_startup and open(moved_startup[0]).read() == "mine = 1\n", "the user's addition is moved, not lost"
    assert any(n.startswith("notebook.stderr.log") for _, _, names in os.walk(state) for n in names)
    assert [p.pid for p in daemons_under(manager.notebook_folder)] == [context["pid"]]
    # The admin CLI sees the new layout.
    from pyramid_notebook.backends.local.describe import describe, user_folders

    rows = [describe(*entry) for entry in user_folders(manager.notebook_folder)]
    assert [(r["user"], r["alive"], r["folder"]) for r in rows] == [("alice", True, work)]


def psutil_alive(pid):
    from pyramid_notebook.core.process import pid_alive

    return pid_alive(pid)


def test_a_stopped_notebook_is_not_reused(manager):
    """A notebook frozen by SIGSTOP accepts TCP connections but never answers: launching replaces it."""
    first, _ = manager.start_notebook_on_demand("alice", CONTEXT)
    os.kill(first["pid"], signal.SIGSTOP)
    try:
        from pyramid_notebook.core.process import process_is_stopped

        wait_for(lambda: process_is_stopped(first["pid"]), timeout=10, message="the server to stop")
        again, created = manager.start_notebook_on_demand("alice", CONTEXT)
    finally:
        if psutil_alive(first["pid"]):
            os.kill(first["pid"], signal.SIGCONT)
    assert created and again["pid"] != first["pid"]
    assert not psutil_alive(first["pid"])
    assert [p.pid for p in daemons_under(manager.notebook_folder)] == [again["pid"]]
