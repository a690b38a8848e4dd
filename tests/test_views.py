"""The demo site and the proxy, end to end: waitress -> Pyramid -> proxy -> real Jupyter."""
import base64
import glob
import os
import re
import socket

import pytest
import requests
import websocket
from pyramid.request import Request

import notebook
from pyramid_notebook.views import launch_notebook
from tests.helpers import (CLICK, KernelChannel, check_user_files_as_jupyter_sends_them, daemons_under,
                           execute_over_websocket, free_port, login, tcp_option_of_peer, wait_for)



def relayed_by_jupyter(response) -> bool:
    """Jupyter's answers carry its CSP with its report URI; the site's static files from disk do not.

    (Not ``Server: TornadoServer``: under uvicorn only uvicorn's own ``Server`` goes out.)
    """
    return "csp-report" in response.headers.get("Content-Security-Policy", "")


def launch(session, base_url, shell="shell1"):
    """A click on the site's "shell" link (a restart with another context needs that intent)."""
    r = session.get(f"{base_url}/{shell}", allow_redirects=False, headers=CLICK)
    assert r.status_code == 302, r.text
    return r.headers["Location"]


def user_context(server, username="user"):
    manager = server.manager
    return manager.get_notebook_status(username)


def xsrf(session):
    return session.cookies.get("_xsrf", path="/notebook/")


def test_launch_redirects_to_default_notebook_without_secret(demo_server):
    s = login(demo_server.url)
    location = launch(s, demo_server.url)
    assert re.fullmatch(re.escape(demo_server.url) + r"/notebook/notebooks/default-[0-9a-f]{8}\.ipynb", location)
    context = user_context(demo_server)
    assert context["token"] not in location
    page = s.get(location)
    assert page.status_code == 200
    assert "jupyter-config-data" in page.text
    assert context["token"] not in page.text, "the proxy's secret never reaches the browser"
    assert s.get(demo_server.url + "/notebook/tree").status_code == 200
    # Launching again with the same context reuses the running notebook.
    assert launch(s, demo_server.url) == location
    assert user_context(demo_server)["pid"] == context["pid"]


def test_static_files_come_from_disk_as_jupyter_would_send_them(demo_server):
    s = login(demo_server.url)
    launch(s, demo_server.url)
    context = wait_for(lambda: (user_context(demo_server) or {}).get("static_files") and user_context(demo_server),
                       timeout=30)
    prefixes = {r["prefix"] for r in context["static_files"]["routes"]}
    assert {"/notebook/static/", "/notebook/static/notebook/", "/notebook/lab/extensions/"} <= prefixes
    static = os.path.join(os.path.dirname(notebook.__file__), "static")
    biggest = max(glob.glob(os.path.join(static, "*.js")), key=os.path.getsize)
    assert os.path.getsize(biggest) > 2_000_000
    direct = f"http://127.0.0.1:{context['http_port']}"
    auth = {"Authorization": "token " + context["token"]}
    for path in (f"/notebook/static/notebook/{os.path.basename(biggest)}",
                 f"/notebook/static/notebook/{os.path.basename(biggest)}?v=1",
                 "/notebook/static/favicons/favicon.ico",
                 "/notebook/lab/extensions/pyramid-notebook-shutdown/package.json"):
        r = s.get(demo_server.url + path, stream=True)
        assert r.status_code == 200, path
        assert not relayed_by_jupyter(r), f"{path} was proxied, not sent from disk"
        body = b"".join(r.iter_content(65536))
        jupyter = requests.get(direct + path, headers=auth)
        assert body == jupyter.content, path
        assert r.headers["Cache-Control"] == jupyter.headers["Cache-Control"], path
        if "v=" in path:
            assert "Expires" in r.headers, path
    # What Jupyter does not have, it says so itself.
    r = s.get(demo_server.url + "/notebook/static/notebook/no-such-file.js")
    assert r.status_code == 404 and relayed_by_jupyter(r)
    r = s.get(demo_server.url + "/notebook/static/notebook/%2e%2e/static/favicons/favicon.ico")
    assert relayed_by_jupyter(r), "dot segments are left to Jupyter"
    # Not logged in, or no notebook running: no static files either.
    assert requests.get(demo_server.url + "/notebook/static/favicons/favicon.ico",
                        allow_redirects=False).status_code == 403
    demo_server.manager.stop_notebook("user2")  # whatever another test on this site left running
    s2 = login(demo_server.url, "user2")
    assert s2.get(demo_server.url + "/notebook/static/favicons/favicon.ico").status_code == 502


def test_lab_extensions_files_are_immutable_under_the_base_url(demo_server):
    """Their names are content hashes: a second visit takes them from the browser's cache, without
    revalidating each (Jupyter's list named them without the base URL, so nothing matched)."""
    s = login(demo_server.url)
    launch(s, demo_server.url)
    context = wait_for(lambda: (user_context(demo_server) or {}).get("static_files") and user_context(demo_server),
                       timeout=30)
    page = s.get(demo_server.url + "/notebook/notebooks/" + context["notebook_name"])
    entry = re.search(r'"load": "(static/remoteEntry\.[0-9a-f]+\.js)", "name": "pyramid-notebook-shutdown"',
                      page.text) or re.search(r'"name": "pyramid-notebook-shutdown"[^}]*"load": "(static/[^"]+)"',
                                              page.text)
    assert entry, "the page names the extension's entry"
    path = "/notebook/lab/extensions/pyramid-notebook-shutdown/" + entry.group(1)
    r = s.get(demo_server.url + path)
    assert r.status_code == 200 and not relayed_by_jupyter(r)
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    jupyter = requests.get(f"http://127.0.0.1:{context['http_port']}{path}",
                           headers={"Authorization": "token " + context["token"]})
    assert jupyter.headers["Cache-Control"] == r.headers["Cache-Control"], "Jupyter itself says the same"
    # Not every file of an extension: its package.json is not named by its content.
    r = s.get(demo_server.url + "/notebook/lab/extensions/pyramid-notebook-shutdown/package.json")
    assert r.headers["Cache-Control"] == "no-cache"


def test_user_files_come_from_disk_as_jupyter_would_send_them(demo_server):
    s = login(demo_server.url)
    launch(s, demo_server.url)
    context = wait_for(lambda: (user_context(demo_server) or {}).get("static_files") and user_context(demo_server),
                       timeout=30)
    assert any(r.get("kind") == "files" for r in context["static_files"]["routes"])
    check_user_files_as_jupyter_sends_them(s, demo_server.url, context, demo_server.manager.get_work_folder("user"),
                                           from_disk=lambda r: "Tornado" not in r.headers.get("Server", ""))


def test_contents_api_create_and_large_upload(demo_server):
    s = login(demo_server.url)
    launch(s, demo_server.url)
    s.get(demo_server.url + "/notebook/tree")
    headers = {"X-XSRFToken": xsrf(s), "Origin": demo_server.url}
    r = s.post(demo_server.url + "/notebook/api/contents", json={"type": "notebook"}, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["path"].endswith(".ipynb")

    payload = os.urandom(6 * 1024 * 1024)
    body = {"type": "file", "format": "base64", "content": base64.b64encode(payload).decode()}
    r = s.put(demo_server.url + "/notebook/api/contents/upload.bin", json=body, headers=headers)
    assert r.status_code == 201, r.text
    r = s.get(demo_server.url + "/notebook/files/upload.bin", headers={"Referer": demo_server.url + "/notebook/tree"})
    assert r.status_code == 200 and r.content == payload
    folder = demo_server.manager.get_work_folder("user")
    assert open(os.path.join(folder, "upload.bin"), "rb").read() == payload


def test_cross_origin_requests_are_refused(demo_server):
    s = login(demo_server.url)
    launch(s, demo_server.url)
    s.get(demo_server.url + "/notebook/tree")
    url = demo_server.url + "/notebook/api/contents"
    evil = {"Origin": "http://evil.example", "X-XSRFToken": xsrf(s)}
    assert s.post(url, json={"type": "notebook"}, headers=evil).status_code == 403
    assert s.delete(url + "/x.ipynb", headers={"Referer": "http://evil.example/attack"}).status_code == 403
    # A forged request that names no XSRF token is refused by Jupyter itself.
    assert s.post(url, json={"type": "notebook"}, headers={"Origin": demo_server.url}).status_code == 403
    # Websocket handshakes through the proxy from another origin are refused before any upgrade.
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}
    r = s.get(demo_server.url + "/notebook/api/kernels/x/channels", headers=dict(upgrade, Origin="http://evil.example"))
    assert r.status_code == 403
    r = s.get(demo_server.url + "/notebook/api/kernels/x/channels", headers=dict(upgrade, Origin=demo_server.url))
    assert r.status_code == 400 and "websocket_proxy" in r.text, "a clear error when no websocket proxy is set"


def test_jupyter_itself_checks_origin_for_proxied_requests(demo_server):
    """Even with the proxy's secret, Jupyter refuses a cross-origin POST (stock Jupyter accepts it)."""
    s = login(demo_server.url)
    launch(s, demo_server.url)
    context = user_context(demo_server)
    base = f"http://127.0.0.1:{context['http_port']}/notebook/api/contents"
    auth = {"Authorization": "token " + context["token"]}
    r = requests.post(base, json={"type": "notebook"}, headers=dict(auth, Origin="http://evil.example"))
    assert r.status_code == 404, "jupyter_server answers a blocked cross-origin API request with 404"
    r = requests.post(base, json={"type": "notebook"}, headers=auth)
    assert r.status_code == 403, "no XSRF token: refused even with the secret"


def start_kernel(s, base_url, path):
    r = s.post(base_url + "/notebook/api/sessions", json={"path": path, "type": "notebook",
                                                            "kernel": {"name": "python3"}},
               headers={"X-XSRFToken": xsrf(s), "Origin": base_url})
    assert r.status_code == 201, r.text
    return r.json()["kernel"]["id"]


def test_kernel_runs_site_code_over_websocket_pserve_mode(demo_server):
    s = login(demo_server.url)
    location = launch(s, demo_server.url, "shell2")
    s.get(location)
    context = user_context(demo_server)
    kernel = start_kernel(s, demo_server.url, context["notebook_name"])
    ws_url = f"ws://127.0.0.1:{context['http_port']}/notebook/api/kernels/{kernel}/channels"
    cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies if c.path.startswith("/notebook"))
    headers = [f"Cookie: {cookie}"]
    out, _ = execute_over_websocket(ws_url, 'print("Output of a + b is", a + b)', demo_server.url, headers)
    assert out.strip() == "Output of a + b is foobar"
    _, result = execute_over_websocket(ws_url, "dbsession.query(Item).first().name", demo_server.url, headers)
    assert result == "'Ground control to Major Tom'"
    _, result = execute_over_websocket(ws_url, "type(registry).__name__, request.application_url", demo_server.url,
                                       headers)
    assert "Registry" in result

    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url, header=headers, origin="http://evil.example", timeout=10)
    assert e.value.status_code == 403
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url, origin=demo_server.url, timeout=10)
    assert e.value.status_code == 403


def test_kernel_output_is_not_held_back_by_delayed_acks(demo_server):
    """A kernel answers with several small messages; without TCP_NODELAY on the notebook's
    websockets each round trip waits out the client's delayed ACK (~40 ms on Linux). The option is
    read from the notebook's own socket of this connection (the latency itself is bench/'s)."""
    s = login(demo_server.url)
    s.get(launch(s, demo_server.url))
    context = user_context(demo_server)
    kernel = start_kernel(s, demo_server.url, context["notebook_name"])
    cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies if c.path.startswith("/notebook"))
    channel = KernelChannel(f"ws://127.0.0.1:{context['http_port']}/notebook/api/kernels/{kernel}/channels",
                            origin=demo_server.url, cookie=cookie)
    try:
        assert channel.execute("1 + 1") == "2"
        assert tcp_option_of_peer(context["pid"], channel.ws.sock, socket.TCP_NODELAY), \
            "the notebook's end of the kernel websocket has Nagle's algorithm on"
    finally:
        channel.close()
    # The control: the same reading on a plain HTTP connection to the notebook, which Tornado
    # leaves with Nagle on, says so; the reading is not a constant.
    with socket.create_connection(("127.0.0.1", context["http_port"])) as plain:
        plain.sendall(b"GET /notebook/api/status HTTP/1.1\r\nHost: x\r\n\r\n")
        assert plain.recv(1)
        assert not tcp_option_of_peer(context["pid"], plain, socket.TCP_NODELAY)


def test_users_reach_only_their_own_notebook(demo_server):
    s1 = login(demo_server.url, "user")
    launch(s1, demo_server.url)
    s2 = login(demo_server.url, "user2")
    r = s2.get(demo_server.url + "/notebook/tree")
    assert r.status_code == 502 and "not running" in r.text
    launch(s2, demo_server.url)
    c1, c2 = user_context(demo_server, "user"), user_context(demo_server, "user2")
    assert c1["http_port"] != c2["http_port"]
    s2.get(demo_server.url + "/notebook/tree")
    headers = {"X-XSRFToken": xsrf(s2), "Origin": demo_server.url}
    r = s2.put(demo_server.url + "/notebook/api/contents/mine.txt",
               json={"type": "file", "format": "text", "content": "user2's"}, headers=headers)
    assert r.status_code == 201
    assert s1.get(demo_server.url + "/notebook/api/contents/mine.txt").status_code == 404

    anonymous = requests.get(demo_server.url + "/notebook/tree", allow_redirects=False,
                             headers={"Accept": "text/html"})
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert requests.get(demo_server.url + "/notebook/api/contents").status_code == 403
    assert requests.get(demo_server.url + "/notebook/api/contents", auth=("user", "wrong")).status_code == 403
    assert requests.get(demo_server.url + "/notebook/api/contents", auth=("user", "password")).status_code == 200


def test_shutdown_then_proxy_answers_502(demo_server):
    s = login(demo_server.url)
    launch(s, demo_server.url)
    pid = user_context(demo_server)["pid"]
    r = s.get(demo_server.url + "/notebook/shutdown", allow_redirects=False,
              headers={"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "document"})  # a click on the site
    assert r.status_code == 302 and r.headers["Location"] == demo_server.url + "/"
    assert pid not in [p.pid for p in daemons_under(demo_server.manager.notebook_folder)]
    r = s.get(demo_server.url + "/notebook/tree")
    assert r.status_code == 502 and "Launch it again" in r.text and "Traceback" not in r.text


def test_killed_notebook_gives_502_then_relaunches(demo_server):
    s = login(demo_server.url)
    launch(s, demo_server.url)
    os.kill(user_context(demo_server)["pid"], 9)
    wait_for(lambda: user_context(demo_server) is None, timeout=10, message="the daemon to be gone")
    r = s.get(demo_server.url + "/notebook/api/contents")
    assert r.status_code == 502 and "not running" in r.text
    launch(s, demo_server.url)
    assert s.get(demo_server.url + "/notebook/api/contents").status_code == 200
    assert len(daemons_under(demo_server.manager.notebook_folder)) == 1


def test_port_exhaustion_answers_503(make_demo_server):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        server = make_demo_server(**{"pyramid_notebook.port_base": str(port), "pyramid_notebook.port_range": "1"})
        s = login(server.url)
        r = s.get(server.url + "/shell1")
        assert r.status_code == 503
        assert "ports" in r.text and "Traceback" not in r.text
        folder = server.manager.notebook_folder
        assert daemons_under(folder) == []


def view_request(server, path="/shell1"):
    request = Request.blank(path, base_url=server.url)
    request.registry = server.app.registry
    return request


def test_bad_username_answers_400(demo_server):
    for name, status in (("a\x00b", 400), ("x" * 1000, 400), ("", 403)):  # no user at all: forbidden
        with pytest.raises(Exception) as e:
            launch_notebook(view_request(demo_server), name, {})
        assert e.value.status_code == status, name
        assert "Traceback" not in e.value.text


def test_start_failure_page_quotes_the_log(make_demo_server, tmp_path):
    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named jupyter_server' >&2\nexit 3\n")
    broken.chmod(0o755)
    server = make_demo_server(**{"pyramid_notebook.python": str(broken)})
    with pytest.raises(Exception) as e:
        launch_notebook(view_request(server), "user", {})
    assert e.value.status_code == 500
    assert "failed to start" in e.value.text and "No module named jupyter_server" in e.value.text


def test_alternative_domain(make_demo_server):
    """Notebook pages are served from a second host name (here: the same server as "localhost")."""
    port = free_port()
    alt = f"http://localhost:{port}"
    server = make_demo_server(**{"pyramid_notebook.alternative_domain": alt})
    s = login(server.url)
    location = launch(s, server.url)
    assert location.startswith(alt + "/notebook/notebooks/default-")
    assert user_context(server)["allow_origin"] == alt
    # Reach the same server under the alternative name, as a browser on that domain would.
    on_alt = requests.Session()
    on_alt.auth = ("user", "password")
    page_url = location.replace(alt, f"http://localhost:{server.port}")
    assert on_alt.get(page_url).status_code == 200
    xsrf_token = on_alt.cookies.get("_xsrf", path="/notebook/")
    r = on_alt.post(f"http://localhost:{server.port}/notebook/api/contents", json={"type": "notebook"},
                    headers={"Origin": alt, "X-XSRFToken": xsrf_token})
    assert r.status_code == 201, "the alternative domain is a trusted origin"
    r = on_alt.post(f"http://localhost:{server.port}/notebook/api/contents", json={"type": "notebook"},
                    headers={"Origin": "http://evil.example", "X-XSRFToken": xsrf_token})
    assert r.status_code == 403


def test_websocket_proxy_setting_is_called(make_demo_server, tmp_path):
    server = make_demo_server(**{"pyramid_notebook.websocket_proxy": "tests.test_views.recording_websocket_proxy"})
    s = login(server.url)
    launch(s, server.url)
    r = s.get(server.url + "/notebook/api/kernels/k/channels",
              headers={"Connection": "Upgrade", "Upgrade": "websocket", "Origin": server.url,
                       "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()})
    assert r.status_code == 200
    assert r.text == f"proxied to {user_context(server)['http_port']} with secret"


def recording_websocket_proxy(request, port):
    from pyramid.response import Response

    has_secret = bool(request.environ["pyramid_notebook.context"].get("token"))
    return Response(f"proxied to {port}" + (" with secret" if has_secret else ""))


def test_context_carries_shutdown_url_and_websocket_url(demo_server, make_demo_server):
    s = login(demo_server.url)
    launch(s, demo_server.url)
    context = user_context(demo_server)
    assert context["shutdown_url"] == demo_server.url + "/notebook/shutdown"
    # Notebook 7 appends "api/kernels/..." to wsUrl, so it must carry the base path.
    assert context["websocket_url"] == f"ws://127.0.0.1:{context['http_port']}/notebook/"
    page = s.get(demo_server.url + "/notebook/tree").text
    assert '"pyramidNotebookShutdownUrl": "%s/notebook/shutdown"' % demo_server.url in page
    assert "pyramid-notebook-shutdown" in s.get(demo_server.url + "/notebook/lab/api/extensions").text


def test_shutdown_url_setting(make_demo_server):
    server = make_demo_server(**{"pyramid_notebook.shutdown_url": "/bye"})
    s = login(server.url)
    launch(s, server.url)
    assert user_context(server)["shutdown_url"] == server.url + "/bye"
