"""Hardening, round two (issue 25): what an adversarial run and a soak run found, each with a real server.

One uvicorn server (the library's own ASGI runner, in a thread of this process so its sockets
can be counted with psutil) serves the demo for the module; the login and embed findings
also run against the demo in waitress.
"""
import http.client
import json
import logging
import os
import socket
import threading

import psutil
import pytest
import requests
import websocket
from pyramid.paster import get_app

from pyramid_notebook.relays import http as relay_http
from pyramid_notebook.relays.asgi_app import make_asgi_app, quiet_spurious_handshake_errors
from tests.conftest import write_demo_ini
from tests.helpers import CLICK, KernelChannel, login, stop_all_notebooks, wait_for
from tests.test_asgi import UvicornThread
from tests.test_uwsgi import open_kernel

#: The body limits of the module's server: small enough to be reached by a test.
BODY_TIMEOUT = 20.0
MAX_BODY = 1024 * 1024
#: WSGI threads of the module's server: fewer than the flood's connections.
THREADS = 8


class BoundedUvicorn(UvicornThread):
    """The demo under the library's ASGI wrapper with a small thread pool and body limits."""

    def __init__(self, wsgi_app):
        super().__init__(wsgi_app)
        self.app = make_asgi_app(wsgi_app, threads=THREADS, max_body_size=MAX_BODY, body_timeout=BODY_TIMEOUT)
        self.server.config.app = self.app


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("round2")
    folder = tmp / "notebooks"
    folder.mkdir()
    ini = write_demo_ini(tmp, str(folder), **{"pyramid_notebook.websocket_proxy":
                                              "pyramid_notebook.relays.asgi_app.serve_websocket"})
    quiet_spurious_handshake_errors()  # as egg:pyramid_notebook#uvicorn and from_ini do
    server = BoundedUvicorn(get_app(ini, "main")).__enter__()
    server.folder = str(folder)
    try:
        yield server
    finally:
        stop_all_notebooks(str(folder))
        server.__exit__(None, None, None)


def launch(session, base, shell="shell2"):
    r = session.get(f"{base}/{shell}", headers=CLICK, allow_redirects=False)
    assert r.status_code == 302, r.text
    return r.headers["Location"]


def raw_get(port, path, headers=None):
    """(status, headers as a list of pairs, body) with duplicate headers kept apart."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def no_traceback(response):
    assert "Traceback" not in response.text and "Internal Server Error" not in response.text


# --- finding 5: bad input is a 4xx, never a 500 ------------------------------------------------

def test_bridge_script_with_unparsable_conditional_headers(site):
    path = "/pyramid_notebook/notebook-bridge.js"
    whole = requests.get(site.url + path)
    assert whole.status_code == 200 and "PyramidNotebookBridge" in whole.text
    for headers in ({"Range": "bytes=-"}, {"If-Modified-Since": "Mon, 01 Jan 99999 00:00:00 GMT"},
                    {"If-Unmodified-Since": "Mon, 01 Jan 99999 00:00:00 GMT"}, {"If-Range": "Mon, 01 Jan 99999"},
                    {"Range": "bytes=-", "If-Range": "Mon, 01 Jan 99999 00:00:00 GMT"}):
        r = requests.get(site.url + path, headers=headers)
        assert r.status_code == 200 and r.content == whole.content, (headers, r.status_code)
    # Headers it can parse still work.
    r = requests.get(site.url + path, headers={"Range": "bytes=0-9"})
    assert r.status_code == 206 and r.content == whole.content[:10]


def test_demo_answers_bad_queries_and_forms_with_400(site):
    r = requests.get(site.url + "/login?came_from=%ff%fe")
    assert r.status_code == 400 and "not UTF-8" in r.text
    no_traceback(r)
    s = login(site.url)
    r = s.get(site.url + "/embed?analysis=%ff", headers=CLICK)
    assert r.status_code == 400, r.status_code
    no_traceback(r)
    for value in ("99999999999999999999999", "-1", "0", str(2 ** 63)):
        r = s.get(site.url + "/embed?analysis=" + value, headers=CLICK)
        assert r.status_code == 404 and "No such analysis" in r.text, (value, r.status_code)
    r = s.get(site.url + "/embed?analysis=x", headers=CLICK)
    assert r.status_code == 400 and "not a number" in r.text


def test_a_body_cut_off_mid_send_reaches_no_view(site, caplog):
    """The client half-closes after 10 of 100 announced bytes: no 500, nothing logged as an error."""
    caplog.set_level(logging.WARNING)
    with socket.create_connection(("127.0.0.1", site.port), timeout=30) as sock:
        sock.sendall(b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 100\r\n\r\nusername=u")
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert not answer.startswith(b"HTTP/1.1 500"), answer[:200]
    # the server noticed and closed; give a late log record no chance to hide
    requests.get(site.url + "/login")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def test_invalid_utf8_from_the_browser_ends_the_relay_quietly(site, caplog):
    """uvicorn closes a browser that sent invalid UTF-8 (1007); the relay must not send after that.

    The browser here does not answer the close frame at once (as a busy or hostile one may not),
    so uvicorn's side stays "close sent" while the kernel's output keeps coming to the relay.
    """
    caplog.set_level(logging.WARNING)
    _, ws_url, cookie = open_kernel(site.url, "user2", shell="shell1")
    channel = KernelChannel(ws_url, origin=site.url, cookie=cookie)
    # A kernel that talks as fast as it can, so the relay always has output to send when uvicorn
    # closes the browser; the browser keeps reading it (raw bytes: no close reply is sent).
    channel.send("shell", "execute_request", {
        "code": "for i in range(100000):\n    print(i, flush=True)",
        "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False})
    channel.ws.recv_data()  # the kernel is busy
    received = bytearray()
    sock = channel.ws.sock

    def drain():
        try:
            while chunk := sock.recv(1 << 20):
                received.extend(chunk)
        except OSError:
            pass

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    wait_for(lambda: len(received) > 100_000, timeout=60, message="the kernel's output to flow")
    channel.ws.send(b"\xff\xfe not utf-8", opcode=websocket.ABNF.OPCODE_TEXT)
    wait_for(lambda: not site.app.relays, timeout=30, message="the relay to end")
    wait_for(lambda: b"\x88\x02\x03\xef" in received, timeout=30, message="uvicorn's close frame (1007)")
    sock.shutdown(socket.SHUT_RDWR)
    reader.join(timeout=30)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() + str(r.exc_info) for r in errors]
    # uvicorn's own report of it is one warning line, not a traceback a client can fill the log with.
    assert any(r.getMessage().startswith("Invalid UTF-8") and r.exc_info is None for r in caplog.records)
    # The notebook takes a new websocket to that kernel.
    channel = KernelChannel(ws_url, origin=site.url, cookie=cookie)
    try:
        assert channel.ws.getsubprotocol() == KernelChannel.SUBPROTOCOL
    finally:
        channel.close()
    site.manager.stop_notebook("user2")  # the kernel may still be printing


# --- finding 7: one Date, one Server ----------------------------------------------------------

def test_proxied_answers_carry_one_date_and_one_server(site):
    s = login(site.url)
    launch(s, site.url)
    cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
    for path in ("/notebook/api/status", "/notebook/api/contents", "/notebook/tree"):
        status, headers, _ = raw_get(site.port, path, {"Cookie": cookie})
        assert status == 200, (path, status)
        names = [k.lower() for k, _ in headers]
        assert names.count("date") == 1 and names.count("server") == 1, (path, headers)
        assert "tornado" not in dict((k.lower(), v) for k, v in headers)["server"].lower()


# --- finding 6: sockets to stopped notebooks --------------------------------------------------

def close_wait_to(port):
    return [c for c in psutil.Process().net_connections(kind="tcp")
            if c.raddr and c.raddr.port == port and c.status == psutil.CONN_CLOSE_WAIT]


def open_to(port):
    return [c for c in psutil.Process().net_connections(kind="tcp") if c.raddr and c.raddr.port == port]


def _fill_pool(session, base, n=6):
    """Several proxied requests at once, so the pool keeps several idle connections."""
    threads = [threading.Thread(target=lambda: session.get(base + "/notebook/api/contents", timeout=60))
               for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_no_sockets_left_to_stopped_notebooks(site):
    s = login(site.url, "user2")
    launch(s, site.url, "shell2")
    port = site.manager.get_notebook_status("user2")["http_port"]
    _fill_pool(s, site.url)
    assert open_to(port), "the pool keeps connections to the notebook"

    # Stopped through this web process's shutdown view: its pooled sockets go at once.
    r = s.get(site.url + "/notebook/shutdown", headers=CLICK, allow_redirects=False)
    assert r.status_code == 302
    wait_for(lambda: not open_to(port), timeout=30, message=f"no socket left to the stopped notebook: {open_to(port)}")

    # Stopped by another web process (here: the manager directly): this process's sweeper lets go.
    launch(s, site.url, "shell2")
    port = site.manager.get_notebook_status("user2")["http_port"]
    _fill_pool(s, site.url)
    assert open_to(port)
    before = open_to(port)
    site.manager.stop_notebook("user2")
    wait_for(lambda: not open_to(port), timeout=relay_http.SWEEP_INTERVAL * 3,
             message=f"the sweeper to close the sockets ({before} -> {open_to(port)})")


def test_a_notebook_left_alone_holds_no_sockets(site, monkeypatch):
    """Jupyter keeps an idle keep-alive open for an hour: once a running notebook's pool has gone
    unused for ``POOL_IDLE`` seconds, the sweeper closes its idle connections too (the soak's
    descriptors back to the baseline); the notebook runs on and the next request opens a new one."""
    monkeypatch.setattr(relay_http, "POOL_IDLE", 1.0)
    s = login(site.url, "user2")
    launch(s, site.url, "shell2")
    port = site.manager.get_notebook_status("user2")["http_port"]
    _fill_pool(s, site.url)
    assert open_to(port), "the pool keeps connections to the notebook"
    wait_for(lambda: not open_to(port), timeout=relay_http.SWEEP_INTERVAL * 3,
             message=f"the sweeper to close the idle connections ({open_to(port)})")
    assert site.manager.is_running("user2")
    assert s.get(site.url + "/notebook/api/contents", timeout=60).status_code == 200


# --- finding 2: clickjacking -----------------------------------------------------------------

def frame_refused(response, strict=True):
    csp = response.headers.get("Content-Security-Policy", "")
    xfo = response.headers.get("X-Frame-Options", "")
    if strict:
        return "frame-ancestors 'none'" in csp and xfo == "DENY"
    return "frame-ancestors 'self'" in csp and xfo == "SAMEORIGIN"


def test_framed_clicks_are_not_intent_and_the_pages_refuse_framing(site):
    s = login(site.url)
    launch(s, site.url, "shell2")
    pid = site.manager.get_notebook_status("user")["pid"]
    # The demo's pages with shell and shutdown links may not be framed by anyone.
    for path in ("/", "/login", "/embed"):
        r = s.get(site.url + path, headers=CLICK)
        assert r.status_code == 200 and frame_refused(r), (path, r.headers)
    # A click inside a framed copy of the home page (same-origin initiator, iframe destination)
    # neither stops nor restarts the notebook: the framing page may be another one.
    framed = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"}
    # Shell 3 changes the server part (a restart); Shell 1 would open beside Shell 2 and need no intent.
    for path, question in (("/notebook/shutdown", "Shut down your notebook?"), ("/shell3", "Restart your notebook?")):
        r = s.get(site.url + path, headers=framed, allow_redirects=False)
        assert r.status_code == 200 and question in r.text, (path, r.status_code)
        assert frame_refused(r), "the confirmation page itself may not be framed"
        assert site.manager.get_notebook_status("user")["pid"] == pid
    # The library's error pages refuse other sites' frames too.
    site.manager.stop_notebook("user2")
    r = requests.get(site.url + "/notebook/api/status", auth=("user2", "password"))
    assert r.status_code == 502 and frame_refused(r, strict=False), r.headers


# --- finding 3: login CSRF ---------------------------------------------------------------------

def test_login_form_refuses_another_sites_post(site):
    victim = requests.Session()
    forged = {"username": "user2", "password": "password", "came_from": "/shell2"}
    r = victim.post(site.url + "/login", data=forged, headers={"Origin": "http://evil.example"},
                    allow_redirects=False)
    assert r.status_code == 400 and "log in again" in r.text, r.status_code
    assert "auth_tkt" not in r.headers.get("Set-Cookie", "")
    assert victim.get(site.url + "/", headers={"Accept": "text/html"}, allow_redirects=False).status_code == 302, \
        "still not logged in"
    # A token from another browser's login page does not work either.
    other = requests.Session()
    page = other.get(site.url + "/login").text
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    r = victim.post(site.url + "/login", data=dict(forged, csrf_token=token), allow_redirects=False)
    assert r.status_code == 400
    # The form itself works (tests/helpers.login logs in through it).
    s = login(site.url, "user2")
    assert "user2" in s.get(site.url + "/").text


# --- finding 4: reopening a stored analysis never destroys newer work ---------------------------

def test_reopening_an_analysis_keeps_the_working_copy(site):
    s = login(site.url)
    location = launch(s, site.url, "shell2")
    context = site.manager.get_notebook_status("user")
    r = s.get(site.url + "/embed", headers=CLICK)  # shell 2 runs; the same context
    assert r.status_code == 200
    r = s.post(site.url + "/embed/save", json={"path": context["notebook_name"], "analysis_id": None},
               headers={"Origin": site.url})
    assert r.status_code == 200, r.text
    analysis = r.json()["id"]
    working = os.path.join(site.folder, "user", f"analysis-{analysis}.ipynb")
    r = s.get(site.url + f"/embed?analysis={analysis}", headers=CLICK)
    assert r.status_code == 200 and f"Reopened analysis {analysis}" in r.text
    assert os.path.exists(working), "a first reopening writes the stored copy into the folder"

    # The user edits the working copy in Jupyter without "Save to the site"...
    with open(working, encoding="utf-8") as f:
        notebook = json.load(f)
    notebook["cells"].append({"cell_type": "code", "execution_count": None, "id": "newer", "metadata": {},
                              "outputs": [], "source": "newer_work = 'not stored yet'"})
    with open(working, "w", encoding="utf-8") as f:
        json.dump(notebook, f)
    with open(working, "rb") as f:
        edited = f.read()
    # ...then another site sends them to /embed?analysis=N, or they click the link themselves.
    cross_site = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document",
                  "Referer": "http://evil.example/"}
    for headers in (cross_site, CLICK):
        r = s.get(site.url + f"/embed?analysis={analysis}", headers=headers)
        assert r.status_code == 200 and "working copy" in r.text, r.text[:500]
        with open(working, "rb") as f:
            assert f.read() == edited, "the newer work is still there"
    assert location


# --- finding 1: an anonymous slow-body flood ---------------------------------------------------

class SlowBody:
    """One connection POSTing to /login with a 100000-byte body that trickles in a byte at a time."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.sendall(b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nu")

    def trickle(self):
        try:
            self.sock.sendall(b"u")
        except OSError:
            pass

    def close(self):
        self.sock.close()


def test_slow_body_flood_leaves_the_site_up_for_others(site):
    s = login(site.url, "user2")
    launch(s, site.url, "shell1")
    attackers = []
    stop = threading.Event()

    def keep_trickling():
        while not stop.wait(1.0):
            for a in attackers:
                a.trickle()

    trickler = threading.Thread(target=keep_trickling, daemon=True)
    try:
        for _ in range(40):
            attackers.append(SlowBody(site.port))
        trickler.start()
        server_side = lambda: [c for c in psutil.Process().net_connections(kind="tcp")  # noqa: E731
                               if c.laddr.port == site.port and c.status == psutil.CONN_ESTABLISHED]
        wait_for(lambda: len(server_side()) >= 40, timeout=30, message="the server to take the 40 connections")
        # While they trickle (they never finish during the test), the other user is served.
        for _ in range(3):
            r = s.get(site.url + "/", timeout=60)
            assert r.status_code == 200 and "user2" in r.text
            r = s.get(site.url + "/notebook/api/status", timeout=60)
            assert r.status_code == 200 and "started" in r.json()
        # A new kernel websocket's handshake goes through the site's view in a thread too.
        _, ws_url, cookie = open_kernel(site.url, "user2", shell="shell1")
        channel = KernelChannel(ws_url, origin=site.url, cookie=cookie)
        try:
            assert channel.execute("1 + 1") == "2"
        finally:
            channel.close()
    finally:
        stop.set()
        for a in attackers:
            a.close()


def test_slow_or_huge_bodies_get_408_and_413(site):
    # A body that does not arrive within the deadline: 408, and the connection closes.
    slow = SlowBody(site.port)
    try:
        slow.sock.settimeout(BODY_TIMEOUT * 4)
        answer = b""
        while chunk := slow.sock.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    finally:
        slow.close()
    # More than max_body announced: 413 before a byte of it is read.
    with socket.create_connection(("127.0.0.1", site.port), timeout=30) as sock:
        sock.sendall(b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1))
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # A chunked body that grows past it: 413 too.
    with socket.create_connection(("127.0.0.1", site.port), timeout=30) as sock:
        sock.sendall(b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = b"u" * 65536
        try:
            for _ in range(MAX_BODY // len(piece) + 2):
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        except OSError:
            pass  # the server answered and closed
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # An ordinary form still logs in (its body is read on the event loop first).
    assert login(site.url).get(site.url + "/").status_code == 200
