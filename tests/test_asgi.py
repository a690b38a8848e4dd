"""The site under uvicorn (pyramid_notebook.asgi): HTTP and notebook websockets through the site's port.

One uvicorn server (in a thread of this process, so its relays, asyncio tasks and sockets can be
counted) serves the demo for the whole module; the browser test runs ``pserve development.ini`` as
shipped, in a subprocess, reached as ``demo.test``.
"""
import asyncio
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import uuid

import psutil
import pytest
import requests
import uvicorn
import websocket
from pyramid.paster import get_app
from pyramid.request import Request
from pyramid.response import Response

import tests.test_views as views_tests
from pyramid_notebook.asgi import Upstream, WebsocketApproved, _Handshake, authorize, make_asgi_app, \
    serve_websocket, websocket_environ
from pyramid_notebook.notebookmanager import NotebookManager
from tests.browser import CHROMEDRIVER, CHROMIUM
from tests.conftest import write_demo_ini
from tests.helpers import KernelChannel, login, received_close_code, serve_on_free_port, stop_all_notebooks, \
    stop_process, wait_for
from tests.test_uwsgi import ECHO_TARGET, open_kernel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PSERVE = os.path.join(os.path.dirname(sys.executable), "pserve")


class UvicornThread:
    """The demo app wrapped by :func:`make_asgi_app`, served by a real uvicorn in a thread."""

    def __init__(self, wsgi_app):
        self.app = make_asgi_app(wsgi_app)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_config=None, log_level="warning"))
        self.loop = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        async def serve():
            self.loop = asyncio.get_running_loop()
            await self.server.serve(sockets=[self.sock])

        asyncio.run(serve())

    def __enter__(self):
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=30, message="uvicorn to start")
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    @property
    def manager(self):
        """The NotebookManager of the app this server runs."""
        return self.app.registry.pyramid_notebook_manager

    def task_count(self) -> int:
        """asyncio tasks alive in the server's event loop."""
        async def count():
            return len(asyncio.all_tasks())

        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(timeout=10)


@pytest.fixture(scope="module")
def asgi_site(tmp_path_factory):
    """The demo under uvicorn with pyramid_notebook.asgi.serve_websocket, for the whole module."""
    tmp = tmp_path_factory.mktemp("asgi")
    folder = tmp / "notebooks"
    folder.mkdir()
    ini = write_demo_ini(tmp, str(folder), **{"pyramid_notebook.websocket_proxy":
                                              "pyramid_notebook.asgi.serve_websocket"})
    server = UvicornThread(get_app(ini, "main")).__enter__()
    yield server
    stop_all_notebooks(str(folder))
    server.__exit__(None, None, None)


def _tcp_connections(predicate):
    return [c for c in psutil.Process().net_connections(kind="tcp") if c.raddr and predicate(c)]


# --- HTTP: the waitress path's guarantees under uvicorn ---------------------------------------

def test_static_files_from_disk_under_uvicorn(asgi_site):
    views_tests.test_static_files_come_from_disk_as_jupyter_would_send_them(asgi_site)


def test_large_upload_and_download_under_uvicorn(asgi_site):
    views_tests.test_contents_api_create_and_large_upload(asgi_site)


def test_chunked_upload_streams_to_the_notebook(asgi_site):
    """A body without Content-Length (chunked) reaches the notebook whole."""
    s = login(asgi_site.url)
    views_tests.launch(s, asgi_site.url)
    s.get(asgi_site.url + "/notebook/tree")
    body = json.dumps({"type": "file", "format": "text", "content": "x" * 300_000}).encode()
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))  # a generator: requests sends it chunked
    r = s.put(asgi_site.url + "/notebook/api/contents/chunked.txt", data=chunks,
              headers={"X-XSRFToken": views_tests.xsrf(s), "Origin": asgi_site.url,
                       "Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    folder = asgi_site.manager.get_work_folder("user")
    assert open(os.path.join(folder, "chunked.txt")).read() == "x" * 300_000


def _bytes_received(conn) -> int:
    """What the kernel has received on this process's socket ``conn`` (TCP_INFO's tcpi_bytes_received)."""
    with socket.socket(fileno=os.dup(conn.fd)) as sock:
        return struct.unpack_from("<Q", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256), 128)[0]


def test_large_download_streams_through_bounded_buffers(asgi_site):
    """100 MiB relayed from the notebook's files/ handler never sits in the server's memory: while
    the client does not read, the relay stops reading from the notebook (back-pressure). Bytes
    counted by the kernel on the relay's socket to the notebook, not memory or time."""
    size = 100 * 2**20
    s = login(asgi_site.url)
    views_tests.launch(s, asgi_site.url)
    port = asgi_site.manager.get_notebook_status("user")["http_port"]
    # Compressed: a file the site always leaves to Jupyter (it sends .gz as it is), so relayed.
    with open(os.path.join(asgi_site.manager.get_work_folder("user"), "big.bin.gz"), "wb") as f:
        f.truncate(size)
    before = {c.fd: _bytes_received(c) for c in _tcp_connections(lambda c: c.raddr.port == port)}
    r = s.get(asgi_site.url + "/notebook/files/big.bin.gz", stream=True,
              headers={"Referer": asgi_site.url + "/notebook/tree"})
    assert r.status_code == 200 and "csp-report" in r.headers.get("Content-Security-Policy", ""), \
        "relayed (Jupyter's CSP), not from disk"
    chunks = r.iter_content(2**20)
    received = len(next(chunks))  # then the client stops reading

    def upstream_received():
        return max(_bytes_received(c) - before.get(c.fd, 0) for c in _tcp_connections(lambda c: c.raddr.port == port))

    readings = []

    def stalled():  # the relay's reading from the notebook has stopped (for 1.5 s: not a busy moment)
        readings.append(upstream_received())
        return len(readings) >= 4 and len(set(readings[-4:])) == 1

    wait_for(stalled, timeout=60, interval=0.5, message="the relay to stop reading while the client does not")
    held = upstream_received()
    assert held < size / 3, f"the relay read {held / 2**20:.0f} MiB ahead of a client that stopped reading"
    received += sum(len(chunk) for chunk in chunks)
    assert received == size


# --- websockets through the site ------------------------------------------------------------

def test_kernel_protocols_through_the_sites_port(asgi_site):
    base = asgi_site.url
    _, ws_url, cookie = open_kernel(base)
    assert asgi_site.manager.get_notebook_status("user")["websocket_url"] == "", "same origin: through the site"
    # Relays of other tests' channels end on their own time: count this one's only.
    relays_before = len(asgi_site.app.relays)
    channel = KernelChannel(ws_url, origin=base, cookie=cookie)
    try:
        assert channel.ws.getsubprotocol() == KernelChannel.SUBPROTOCOL, "the notebook chose the subprotocol"
        assert channel.execute("1+1") == "2"
        assert channel.execute('print("Output of a + b is", a + b)').strip() == "Output of a + b is foobar"
        assert len(asgi_site.app.relays) - relays_before == 1, "this channel's relay"
        # 1 MiB of binary data to the kernel and back, in binary frames.
        assert channel.execute(ECHO_TARGET) == "'ready'"
        channel.send("shell", "comm_open", {"comm_id": "echo-comm", "target_name": "echo", "data": {}})
        payload = os.urandom(1024 * 1024)
        msg_id = channel.send("shell", "comm_msg", {"comm_id": "echo-comm", "data": {}}, buffers=[payload])
        for kind, content, buffers, opcode in channel.replies(msg_id):
            if kind == "comm_msg":
                assert opcode == websocket.ABNF.OPCODE_BINARY
                assert bytes(buffers[0]) == payload
                break
    finally:
        channel.close()

    # jupyter_server's JSON protocol (no subprotocol): text frames, and they stay text.
    ws = websocket.create_connection(ws_url, origin=base, header=[f"Cookie: {cookie}"], timeout=60)
    try:
        assert not ws.getsubprotocol()
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({"header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "t",
                                       "session": "t", "date": "", "version": "5.3"},
                            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                            "content": {"code": "print(6 * 7)", "silent": False}}))
        out = ""
        while True:
            opcode, data = ws.recv_data()
            assert opcode == websocket.ABNF.OPCODE_TEXT
            msg = json.loads(data)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out += msg["content"]["text"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        assert out.strip() == "42"
    finally:
        ws.close()
    wait_for(lambda: not asgi_site.app.relays, timeout=10, message="the relays to end")


def test_handshakes_that_must_fail(asgi_site):
    base = asgi_site.url
    _, ws_url, cookie = open_kernel(base)

    def refused(origin, headers):
        with pytest.raises(websocket.WebSocketBadStatusException) as e:
            websocket.create_connection(ws_url, origin=origin, header=headers, timeout=60)
        return e.value.status_code, (e.value.resp_body or b"").decode()

    assert refused("http://evil.example", [f"Cookie: {cookie}"])[0] == 403
    assert refused(base, [])[0] == 403, "anonymous"
    # user2 cannot open user's kernel channel: the view takes user2 to user2's own notebook.
    s2 = login(base, "user2")
    cookie2 = "; ".join(f"{c.name}={c.value}" for c in s2.cookies)
    status, page = refused(base, [f"Cookie: {cookie2}"])
    assert status == 502 and "Your notebook is not running" in page, "the view's status and page"
    s2.get(base + "/shell1", allow_redirects=False)
    assert refused(base, [f"Cookie: {cookie2}"])[0] == 404, "user's kernel does not exist in user2's notebook"
    # The refused relay's task ends right after its answer went out.
    wait_for(lambda: not asgi_site.app.relays, timeout=10, message="the refused relay's task to end")


def test_killed_notebook_closes_the_browser_socket_and_ends_the_relay(asgi_site):
    base = asgi_site.url
    _, ws_url, cookie = open_kernel(base, "user2", shell="shell1")
    context = asgi_site.manager.get_notebook_status("user2")
    tasks_before, relays_before = asgi_site.task_count(), len(asgi_site.app.relays)
    channel = KernelChannel(ws_url, origin=base, cookie=cookie)
    assert channel.execute("1+1") == "2"
    client_port = channel.ws.sock.getsockname()[1]
    to_notebook = len(_tcp_connections(lambda c: c.raddr.port == context["http_port"]))
    assert len(asgi_site.app.relays) == relays_before + 1 and asgi_site.task_count() > tasks_before

    os.kill(context["pid"], signal.SIGKILL)
    assert received_close_code(channel) == 1001, "going away"
    channel.ws.shutdown()
    wait_for(lambda: len(asgi_site.app.relays) <= relays_before, timeout=10, message="the relay to end")
    wait_for(lambda: asgi_site.task_count() <= tasks_before, timeout=10, message="no task left behind")
    # The relay's socket to the notebook is closed (the HTTP pool's idle ones stay until reused)...
    wait_for(lambda: len(_tcp_connections(lambda c: c.raddr.port == context["http_port"])) == to_notebook - 1,
             timeout=10, message="the relay's upstream socket to close")
    # ...and so is the server's end of the browser's socket.
    wait_for(lambda: not _tcp_connections(lambda c: c.laddr.port == asgi_site.port and c.raddr.port == client_port),
             timeout=10, message="the browser's socket to close")


def test_shutdown_then_proxy_answers_502_under_uvicorn(asgi_site):
    views_tests.test_shutdown_then_proxy_answers_502(asgi_site)


# --- the approval marker ----------------------------------------------------------------------

SCOPE = {"type": "websocket", "path": "/notebook/api/kernels/k/channels", "raw_path": b"", "query_string": b"",
         "root_path": "", "headers": [(b"host", b"site.test"), (b"upgrade", b"websocket"),
                                      (b"connection", b"Upgrade"), (b"sec-websocket-version", b"13")],
         "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000), "scheme": "ws", "subprotocols": []}


def test_only_the_marker_of_this_handshake_approves():
    upstream = Upstream("127.0.0.1", 1, "secret", "/x")
    answers = {
        "a 101 of its own": lambda environ, start_response: Response(status=101)(environ, start_response),
        "another handshake's marker": lambda environ, start_response: WebsocketApproved(_Handshake(), upstream)(
            environ, start_response),
    }
    for name, app in answers.items():
        handshake = _Handshake()
        approved, refusal = authorize(app, websocket_environ(SCOPE, handshake), handshake)
        assert approved is None and refusal[0] in (403, 500), name

    handshake = _Handshake()
    environ = websocket_environ(SCOPE, handshake)
    assert environ["REQUEST_METHOD"] == "GET" and environ["wsgi.url_scheme"] == "http"
    assert environ["HTTP_UPGRADE"] == "websocket" and environ["PATH_INFO"] == SCOPE["path"]
    approved, refusal = authorize(lambda e, s: WebsocketApproved(handshake, upstream)(e, s), environ, handshake)
    assert approved == upstream and refusal is None


def test_serve_websocket_outside_the_asgi_wrapper_answers_400():
    request = Request.blank("/notebook/api/kernels/k/channels", headers={"Upgrade": "websocket",
                                                                         "Connection": "Upgrade"})
    response = serve_websocket(request, 1)
    assert response.status_code == 400 and "pyramid_notebook.asgi" in response.text


# --- pserve development.ini, from a browser on another host name --------------------------------

@pytest.fixture
def pserve_demo(tmp_path):
    """``pserve development.ini`` as shipped (uvicorn, websockets through the site), on a free port."""
    shutil.copy(os.path.join(ROOT, "development.ini"), tmp_path)
    folder = str(tmp_path / "notebooks")
    log_path = tmp_path / "pserve.log"
    log = open(log_path, "wb")

    def launch(port):
        env = dict(os.environ, PYRAMID_NOTEBOOK_DEMO_PORT=str(port), PYRAMID_NOTEBOOK_FOLDER=folder)
        return subprocess.Popen([PSERVE, str(tmp_path / "development.ini")], cwd=tmp_path, env=env, stdout=log,
                                stderr=subprocess.STDOUT)

    def stop(proc):
        stop_all_notebooks(folder)
        stop_process(proc, signal.SIGINT)
        log.close()

    port, proc = serve_on_free_port(launch, lambda port: _answers(f"http://127.0.0.1:{port}/login"), timeout=60,
                                    message="pserve to serve", log=lambda: log_path.read_text(errors="replace"),
                                    stop=stop)
    try:
        yield port, folder
    finally:
        stop(proc)


def _answers(url):
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                    reason="needs Debian's chromium and chromium-driver (scripts/test installs them)")
def test_browser_on_another_host_name_reaches_the_kernel_through_the_site(pserve_demo, request):
    from tests.browser import make_browser, save_artifacts
    from tests.test_browser import _text_on_page, log_in, run_in_last_cell, wait_for_output

    port, folder = pserve_demo
    base = f"http://demo.test:{port}"
    browser, profile = make_browser(["--host-resolver-rules=MAP demo.test 127.0.0.1"], performance_log=True)
    try:
        log_in(browser, base)
        browser.find_by_id("shell2").click()
        # Through development.ini's progress page: the page is replaced while it is read.
        wait_for(lambda: _text_on_page(browser, "a test variable"), timeout=120, interval=0.2,
                 message="the notebook page")
        run_in_last_cell(browser, 'print("Output of a + b is", a + b)')
        wait_for_output(browser, "Output of a + b is foobar")
        urls = _websocket_urls(browser.driver)
        assert any("/api/kernels/" in u for u in urls), urls
        assert all(u.startswith(f"ws://demo.test:{port}/notebook/") for u in urls), urls
        notebook_port = NotebookManager(folder).get_notebook_status("user")["http_port"]
        assert not any(f":{notebook_port}/" in u for u in urls)
    except BaseException:
        print(f"\nScreenshot, console log and page source saved in {save_artifacts(browser, request.node.name)}")
        raise
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _websocket_urls(driver):
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.webSocketCreated":
            urls.append(message["params"]["url"])
    return urls


def test_uvicorn_factory_command_serves_an_ini(tmp_path):
    """The documented production command: ``uvicorn --factory pyramid_notebook.asgi:from_ini``."""
    shutil.copy(os.path.join(ROOT, "development.ini"), tmp_path)
    env = dict(os.environ, PYRAMID_NOTEBOOK_INI=str(tmp_path / "development.ini"),
               PYRAMID_NOTEBOOK_FOLDER=str(tmp_path / "notebooks"))
    log_path = tmp_path / "uvicorn.log"
    log = open(log_path, "wb")

    def launch(port):
        return subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "uvicorn"), "--factory",
                                 "pyramid_notebook.asgi:from_ini", "--host", "127.0.0.1",
                                 "--port", str(port)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)

    port, proc = serve_on_free_port(launch, lambda port: _answers(f"http://127.0.0.1:{port}/login"), timeout=60,
                                    message="uvicorn to serve", log=lambda: log_path.read_text(errors="replace"),
                                    stop=lambda proc: stop_process(proc, signal.SIGINT))
    try:
        with pytest.raises(websocket.WebSocketBadStatusException) as e:
            websocket.create_connection(f"ws://127.0.0.1:{port}/notebook/api/kernels/k/channels", timeout=10)
        assert e.value.status_code == 403, "anonymous: the demo's own refusal"
        assert requests.get(f"http://127.0.0.1:{port}/notebook/tree", auth=("user", "password")).status_code == 502
    finally:
        stop_process(proc, signal.SIGINT)
        log.close()
    text = log_path.read_text()
    assert '"WebSocket /notebook/api/kernels/k/channels" 403' in text
    assert "without completing handshake" not in text, "uvicorn's false error after a refusal is filtered"
