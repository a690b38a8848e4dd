"""The JupyterHub backend for real: one JupyterHub 6 with configurable-http-proxy (the shipped
hub/jupyterhub_config.py) and two web nodes serving hub.ini (pserve and uWSGI, each its own
processes and memory), on loopback. Spawns are slow here, so the tests share the hub and its web
nodes; each test launches what it needs itself (a launch of a running context is a reuse), so that
they pass in any order. Every response a test gets is scanned for secrets after it.
"""
import json
import os
import re

import markupsafe
import pytest
import requests
import websocket

from tests.helpers import CLICK, KernelChannel, free_port, login, login_form_token, wait_for
from tests.hubhelpers import BROKEN_USER, CHP, FRAMER, HUB_TOKEN, JUPYTERHUB, Hub, WebNode

pytestmark = [
    pytest.mark.skipif(not (os.path.exists(JUPYTERHUB) and os.path.exists(CHP)),
                       reason="needs jupyterhub and configurable-http-proxy (scripts/test installs them)"),
    pytest.mark.timeout(900),
]
#: The site's public name: both web nodes are reached as it, as behind one load balancer (the
#: context, allow_origin included, is then the same on both nodes).
PUBLIC = "site.example.test"
ORIGIN = f"http://{PUBLIC}"
#: Every response the running test has seen, scanned for secrets after it (:func:`no_secret_reaches_a_client`).
SEEN = []
#: What a JupyterHub API token looks like (``secrets.token_hex(16)``).
TOKEN_LIKE = re.compile(rb"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")


def _record(response, *args, **kwargs):
    SEEN.append((response.url, str(response.headers), response.content))


def session(node, username="user"):
    """Logged in through ``node`` as the public name (requests keys cookies by the Host header)."""
    s = requests.Session()
    s.headers["Host"] = PUBLIC
    s.hooks["response"].append(_record)
    r = s.post(node.url + "/login", data={"username": username, "password": "password",
                                          "csrf_token": login_form_token(s, node.url)}, allow_redirects=False)
    assert r.status_code == 302, r.text
    return s


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    hub = Hub(tmp_path_factory.mktemp("hub"))
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def nodes(hub, tmp_path_factory):
    folder = tmp_path_factory.mktemp("nodes")
    started = []
    try:
        started.append(WebNode(folder, hub, "node1", "pserve"))
        started.append(WebNode(folder, hub, "node2", "uwsgi"))
        yield started
    finally:
        for node in started:
            node.stop()


@pytest.fixture(autouse=True)
def no_secret_reaches_a_client(request):
    """After each test: no header or body it received holds the site's service token or any live
    hub token (each token-like string in them is tried against the hub's API)."""
    SEEN.clear()
    yield
    if "hub" not in request.fixturenames:
        SEEN.clear()
        return
    hub = request.getfixturevalue("hub")
    candidates = set()
    for url, headers, body in SEEN:
        assert HUB_TOKEN not in headers and HUB_TOKEN.encode() not in body, url
        candidates.update(TOKEN_LIKE.findall(headers.encode() + body))
    for candidate in candidates:
        r = requests.get(hub.url + "hub/api/user", headers={"Authorization": f"token {candidate.decode()}"},
                         timeout=10)
        assert r.status_code in (401, 403), f"a live hub token reached a client: {r.text[:200]}"
    SEEN.clear()


def launch(s, node, shell="shell2"):
    """Launch through ``node``; the path the browser is sent to."""
    r = s.get(f"{node.url}/{shell}", allow_redirects=False, headers=CLICK)  # a click on the site's link
    assert r.status_code == 302, r.text
    assert r.headers["Location"].startswith(ORIGIN + "/")
    return r.headers["Location"][len(ORIGIN):]


def started_at(hub, user="user"):
    return hub.backend().server_model(user)["started"]


def open_kernel(s, node, location):
    """Start a kernel for the default notebook through ``node``; return its channels' ws URL."""
    path = "/notebook/user/user/"
    assert s.get(node.url + location).status_code == 200  # the page sets Jupyter's _xsrf cookie
    xsrf = s.cookies.get("_xsrf")
    r = s.post(node.url + path + "api/sessions", headers={"X-XSRFToken": xsrf, "Origin": ORIGIN},
               json={"path": location.rsplit("/", 1)[1], "type": "notebook", "kernel": {"name": "python3"}})
    assert r.status_code == 201, r.text
    return node.url.replace("http://", "ws://") + f"{path}api/kernels/{r.json()['kernel']['id']}/channels"


def cookie_header(s):
    return "; ".join(f"{c.name}={c.value}" for c in s.cookies)


def test_launch_on_node1_is_reused_through_node2(hub, nodes):
    node1, node2 = nodes
    s1 = session(node1)
    location = launch(s1, node1)
    assert re.fullmatch(r"/notebook/user/user/notebooks/default-[0-9a-f]{8}\.ipynb", location)
    first_start = started_at(hub)

    # Node 2 has never seen this user: it asks the hub, and reaches the same server.
    s2 = session(node2)
    page = s2.get(node2.url + location)
    assert page.status_code == 200 and "jupyter-config-data" in page.text
    assert '"token": ""' in page.text, "no token in the page config"
    # The site's frame_ancestors, not JupyterHub's "frame-ancestors 'none'": the site can embed it,
    # and the save bridge answers the same origins.
    csp = page.headers["Content-Security-Policy"]
    assert csp.startswith(f"frame-ancestors 'self' {FRAMER};"), csp
    assert "report-uri /notebook/user/user/api/security/csp-report" in csp
    assert f'"pyramidNotebookParentOrigins": "{ORIGIN} {FRAMER}"' in page.text
    # The greeting is in the default notebook, the startup script in the kernel (through node 2's relay).
    name = location.rsplit("/", 1)[1]
    notebook = s2.get(f"{node2.url}/notebook/user/user/api/contents/{name}").json()
    assert "a test variable" in str(notebook["content"])
    channel = KernelChannel(open_kernel(s2, node2, location), origin=ORIGIN, cookie=cookie_header(s2), host=PUBLIC)
    try:
        assert channel.execute("a + b") == "'foobar'"
    finally:
        channel.close()

    # Launching the same context from node 2 reuses the server: no second spawn.
    assert launch(s2, node2) == location
    assert started_at(hub) == first_start


def test_two_contexts_share_one_hub_server_and_a_server_change_restarts_once(hub, nodes):
    node1, node2 = nodes
    launch(session(node1), node1, "shell2")  # running with another context than shell1's
    before = started_at(hub)
    s2 = session(node2)
    shell2 = launch(s2, node2, "shell2")
    channel2 = KernelChannel(open_kernel(s2, node2, shell2), origin=ORIGIN, cookie=cookie_header(s2), host=PUBLIC)
    try:
        channel2.execute("x = 41")
        # Another page's shell: its own notebook and kernel in the same hub server, no restart.
        shell1 = launch(s2, node2, "shell1")
        assert shell1 != shell2 and started_at(hub) == before
        sessions = {x["path"]: x["kernel"]["id"] for x in
                    s2.get(f"{node2.url}/notebook/user/user/api/sessions").json()}
        assert shell1.rsplit("/", 1)[1] in sessions, "the launch started Shell 1's kernel"
        channel1 = KernelChannel(open_kernel(s2, node2, shell1), origin=ORIGIN, cookie=cookie_header(s2),
                                 host=PUBLIC)
        try:
            assert channel1.execute("'a' in dir(), 'x' in dir(), type(registry).__name__") == \
                "(False, False, 'Registry')"
        finally:
            channel1.close()
        assert channel2.execute("x + 1") == "42"
        # Node 1 launching that context reuses it too.
        s1 = session(node1)
        assert launch(s1, node1, "shell1") == shell1
        assert started_at(hub) == before
    finally:
        channel2.close()
    # A server setting (Shell 3's kill_timeout) restarts the server, once.
    shell3 = launch(s2, node2, "shell3")
    restarted = started_at(hub)
    assert restarted != before, "a changed server part restarts the server"
    assert launch(session(node1), node1, "shell3") == shell3
    assert started_at(hub) == restarted
    assert "Available variables" in str(s2.get(f"{node2.url}/notebook/user/user/api/contents/"
                                               f"{shell3.rsplit('/', 1)[1]}").json()["content"])


def test_failed_spawn_quotes_the_hub(hub, tmp_path):
    from bench.app import main

    from tests.helpers import WSGIServerThread

    hub.backend().stop_notebook("user2")  # a free slot (the hub allows two servers), whatever ran before
    app = main({}, **{"pyramid_notebook.backend": "jupyterhub", "pyramid_notebook.hub_url": hub.url,
                      "pyramid_notebook.hub_api_token": HUB_TOKEN,
                      "pyramid_notebook.websocket_proxy": "pyramid_notebook.uwsgi.serve_websocket"})
    with WSGIServerThread(app) as server:
        r = requests.get(server.url + "/shell", headers={"X-Bench-User": BROKEN_USER}, allow_redirects=False)
    SEEN.append((r.url, str(r.headers), r.content))
    assert r.status_code == 500
    assert "The notebook failed to start" in r.text and "Traceback" not in r.text
    # The page quotes what the hub itself says about the failure.
    events = requests.get(hub.url + f"hub/api/users/{BROKEN_USER}/server/progress",
                          headers={"Authorization": f"token {HUB_TOKEN}"}).text
    failed = [json.loads(line[5:]) for line in events.splitlines() if line.startswith("data:")]
    message = [e for e in failed if e.get("failed")][-1]["message"]
    assert message.startswith("Spawn failed: ") and str(markupsafe.escape(message)) in r.text  # as Jinja2 escapes


def test_users_reach_only_their_own_server(hub, nodes):
    node1, node2 = nodes
    s_other = session(node2, "user2")
    launch(s_other, node2, "shell1")
    s = session(node1)
    launch(s, node1)  # user's own server runs too
    # Through the site: only the user's own server's paths go upstream.
    for path in ("/notebook/user/user2/api/contents", "/notebook/hub/api/users", "/notebook/hub/home"):
        r = s.get(node1.url + path)
        assert r.status_code == 404 and "Not your notebook" in r.text, path
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(node1.url.replace("http", "ws") + "/notebook/user/user2/api/events/subscribe",
                                    origin=ORIGIN, host=PUBLIC, header=[f"Cookie: {cookie_header(s)}"], timeout=10)
    assert e.value.status_code == 404
    # Straight at the hub's proxy: user's scoped token opens user's server, nothing else.
    backend = hub.backend()
    token = backend.user_token("user")
    auth = {"Authorization": f"token {token}"}
    proxy = f"http://127.0.0.1:{hub.port}/notebook/"
    assert requests.get(proxy + "user/user/api/status", headers=auth).status_code == 200
    assert requests.get(proxy + "user/user2/api/status", headers=auth).status_code == 403
    assert requests.get(proxy + "hub/api/users", headers=auth).status_code == 403
    assert requests.get(proxy + "user/user2/api/status").status_code == 403
    # Jupyter itself still refuses another origin, although the request carries the token.
    r = requests.post(proxy + "user/user/api/kernels", headers=dict(auth, Origin="http://evil.example"), json={})
    assert r.status_code == 404, "jupyter_server answers a blocked cross-origin API request with 404"
    # And the site refuses it first.
    r = s.post(node1.url + "/notebook/user/user/api/kernels", headers={"Origin": "http://evil.example"}, json={})
    assert r.status_code == 403


def test_max_notebooks_is_the_hubs_active_server_limit(hub, nodes):
    from pyramid_notebook.notebookmanager import TooManyNotebooks

    node1, node2 = nodes
    launch(session(node1, "user"), node1)
    launch(session(node2, "user2"), node2, "shell1")
    backend = hub.backend()
    assert backend.is_running("user") and backend.is_running("user2")
    with pytest.raises(TooManyNotebooks) as e:  # the hub allows 2 (PYRAMID_NOTEBOOK_MAX_NOTEBOOKS)
        backend.start_notebook_on_demand("third", {"context_hash": "y" * 64})
    assert "Active user limit exceeded" in str(e.value)


def test_hub_down_answers_503(tmp_path):
    from pyramid.paster import get_app

    from tests.helpers import WSGIServerThread

    os.environ["PYRAMID_NOTEBOOK_HUB_PORT"] = str(free_port())  # nothing listens there
    try:
        app = get_app(os.path.join(os.path.dirname(os.path.dirname(__file__)), "hub.ini"), "main")
    finally:
        del os.environ["PYRAMID_NOTEBOOK_HUB_PORT"]
    with WSGIServerThread(app) as server:
        s = login(server.url)
        for url in (server.url + "/shell1", server.url + "/notebook/user/user/tree"):
            r = s.get(url, allow_redirects=False)
            assert r.status_code == 503, url
            assert "The notebook service is unavailable" in r.text and "cannot be reached" in r.text
            assert "Traceback" not in r.text


def test_cli_lists_and_stops_against_the_hub(hub, nodes):
    import subprocess
    import sys

    node1, node2 = nodes
    launch(session(node1, "user"), node1)
    launch(session(node2, "user2"), node2, "shell1")
    cli = [os.path.join(os.path.dirname(sys.executable), "pyramid-notebook")]
    env = dict(os.environ, PYRAMID_NOTEBOOK_HUB_API_TOKEN=HUB_TOKEN)
    listing = subprocess.run(cli + ["list", "--hub-url", hub.url, "--json"], env=env, capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    out = listing.stdout
    assert {r["user"] for r in json.loads(out) if r["alive"]} >= {"user", "user2"}
    status = subprocess.run(cli + ["status", "user2", "--hub-url", hub.url], env=env, capture_output=True)
    assert status.returncode == 0
    subprocess.run(cli + ["stop", "user2", "--hub-url", hub.url], env=env, check=True, capture_output=True)
    assert not hub.backend().is_running("user2")
    status = subprocess.run(cli + ["status", "user2", "--hub-url", hub.url], env=env, capture_output=True)
    assert status.returncode == 3


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs chromium and chromium-driver")
def test_browser_runs_the_demo_on_the_hub(hub, nodes, browser):
    from tests.test_browser import log_in, run_in_last_cell, wait_for_output

    node1, node2 = nodes
    log_in(browser, node1.url)
    browser.find_by_id("shell2").click()
    assert browser.is_text_present("a test variable", wait_time=240)
    run_in_last_cell(browser, 'print("Output of a + b is", a + b)')
    wait_for_output(browser, "Output of a + b is foobar")
    SEEN.append((browser.url, "", browser.html.encode()))
    browser.find_by_id("pyramid-notebook-shutdown", wait_time=30).first.click()
    assert browser.is_text_present("Logged in as user", wait_time=60)
    assert not hub.backend().is_running("user")
    # Node 2 knows it too (its status cache lives 2 s): the notebook is not running.
    s2 = session(node2)
    wait_for(lambda: s2.get(node2.url + "/notebook/user/user/api/status").status_code == 502, timeout=30,
             message="node 2 to see the server stopped")


def test_the_secret_scan_knows_a_live_token(hub):
    """The control for :func:`no_secret_reaches_a_client`: a real per-user token looks like one and
    the hub takes it. (The hub user is created first: in random order this may be the module's
    first test, before any launch made it.)"""
    backend = hub.backend()
    assert backend.api("POST", "users/user")[0] in (201, 409)  # 409: it exists already
    token = backend.user_token("user")
    assert TOKEN_LIKE.fullmatch(token.encode())
    r = requests.get(hub.url + "hub/api/user", headers={"Authorization": f"token {token}"}, timeout=10)
    assert r.status_code == 200
    r = requests.get(hub.url + "hub/api/user", headers={"Authorization": f"token {'0' * 32}"}, timeout=10)
    assert r.status_code == 403


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs chromium and chromium-driver")
def test_browser_cold_launch_with_progress_pages_lands_on_the_notebook(hub, browser, tmp_path, monkeypatch):
    """The hub backend with ``pyramid_notebook.progress_page = true``: the hub keeps no page state of
    ours, so a browser's cold launch is answered with the redirect once the hub's server is ready
    (it once ended in a 500). The shipped hub.ini, that one setting added, in waitress."""
    from pyramid.paster import get_app

    from tests.helpers import WSGIServerThread
    from tests.test_browser import _text_on_page, log_in

    backend = hub.backend()
    for user in ("user", "user2"):  # a cold launch, and a free slot (the hub allows two servers)
        backend.stop_notebook(user)
    ini = tmp_path / "hub.ini"
    shipped = open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "hub.ini")).read()
    ini.write_text(shipped.replace("[app:main]\n", "[app:main]\npyramid_notebook.progress_page = true\n", 1))
    monkeypatch.setenv("PYRAMID_NOTEBOOK_HUB_PORT", str(hub.port))
    monkeypatch.setenv("PYRAMID_NOTEBOOK_HUB_API_TOKEN", HUB_TOKEN)
    with WSGIServerThread(get_app(str(ini), "main")) as site:
        log_in(browser, site.url)
        browser.find_by_id("shell2").click()
        wait_for(lambda: "/notebook/user/user/notebooks/default-" in browser.url, timeout=300, interval=0.5,
                 message="the notebook page")
        wait_for(lambda: _text_on_page(browser, "a test variable"), timeout=120, interval=0.5,
                 message="the default notebook's greeting")
        assert "The notebook failed to start" not in browser.html
        SEEN.append((browser.url, "", browser.html.encode()))
        assert backend.is_running("user")


def test_hub_api_url_is_where_the_site_calls_the_hub(hub, tmp_path):
    """``pyramid_notebook.hub_api_url``: the site calls the hub's REST API there, here the hub's
    own port (``hub_bind_url``) rather than through its proxy, which for this site is down."""
    from pyramid_notebook.backends.hub.api import HubUnavailable
    from pyramid_notebook.backends.hub.backend import HubBackend
    from pyramid_notebook.core.settings import parse_settings

    straight = f"http://127.0.0.1:{hub.env['PYRAMID_NOTEBOOK_HUB_API_PORT']}/notebook/hub/api/"
    base = {"pyramid_notebook.backend": "jupyterhub", "pyramid_notebook.notebook_folder": str(tmp_path),
            "pyramid_notebook.hub_url": f"http://127.0.0.1:{free_port()}/notebook/",  # nothing listens there
            "pyramid_notebook.hub_api_token": HUB_TOKEN,
            "pyramid_notebook.websocket_proxy": "pyramid_notebook.asgi.serve_websocket"}
    backend = HubBackend.from_settings(parse_settings(dict(base, **{"pyramid_notebook.hub_api_url": straight})))
    assert backend.api_url == straight
    assert isinstance(backend.list_notebooks(), list), "the hub answered at its own port"
    assert backend.get_context("nobody-launched-this") is None
    without = HubBackend.from_settings(parse_settings(base))
    assert without.api_url == base["pyramid_notebook.hub_url"] + "hub/api/"
    with pytest.raises(HubUnavailable):
        without.list_notebooks()
