"""The production stack for real: nginx -> uWSGI -> Pyramid -> notebook, websockets included.

uWSGI runs the shipped uwsgi.ini (demo app in production.ini); nginx runs the shipped nginx.conf
with only its two ports changed.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading

import pytest
import requests
import websocket

from tests.helpers import (CLICK, KernelChannel, daemons_under, login, received_close_code, serve_on_free_port,
                           stop_all_notebooks, stop_process, wait_for)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UWSGI = os.path.join(os.path.dirname(sys.executable), "uwsgi")
NGINX = "/usr/sbin/nginx"

pytestmark = pytest.mark.skipif(not os.path.exists(UWSGI), reason="needs uWSGI (pip install -e .[uwsgi])")

ECHO_TARGET = '''
from comm import get_comm_manager
def _echo_target(comm, open_msg):
    @comm.on_msg
    def _echo(msg):
        comm.send(data={"echoed": len(msg["buffers"][0])}, buffers=msg["buffers"])
get_comm_manager().register_target("echo", _echo_target)
"ready"
'''


def _answers(url):
    try:
        return requests.get(url + "/login", timeout=2).status_code == 200
    except requests.RequestException:
        return False


class UWSGIServer:
    """The shipped uwsgi.ini on a free port, with its own notebook folder."""

    def __init__(self, tmp_path, *extra_args, env=None):
        self.notebook_folder = str(tmp_path / "notebooks")
        self.log_path = tmp_path / "uwsgi.log"
        self.log = open(self.log_path, "wb")

        def launch(port):
            # More environment variables; "{port}" in their values becomes the server's port.
            extra = {name: value.format(port=port) for name, value in (env or {}).items()}
            environ = dict(os.environ, PYRAMID_NOTEBOOK_DEMO_PORT=str(port),
                           PYRAMID_NOTEBOOK_FOLDER=self.notebook_folder, **extra)
            return subprocess.Popen([UWSGI, "--ini", os.path.join(ROOT, "uwsgi.ini"), *extra_args], cwd=tmp_path,
                                    env=environ, stdout=self.log, stderr=subprocess.STDOUT)

        def stop(proc):
            stop_all_notebooks(self.notebook_folder)
            stop_process(proc)  # die-on-term: the master stops its workers

        self.port, self.proc = serve_on_free_port(
            launch, lambda port: _answers(f"http://127.0.0.1:{port}"), timeout=60, message="uWSGI to serve",
            log=lambda: self.log_path.read_text(errors="replace"), stop=stop)
        self.url = f"http://127.0.0.1:{self.port}"

    def worker_pids_for(self, path):
        text = self.log_path.read_text(errors="replace")
        return set(re.findall(r"\[pid: (\d+)\|app: \d+\|req: [^\]]*\] .*? GET " + re.escape(path) + r" ", text))

    def stop(self):
        stop_process(self.proc)  # die-on-term: the master stops its workers
        # After the site: its fork server watcher must not spawn another once everything is stopped.
        stop_all_notebooks(self.notebook_folder)
        self.log.close()


class Nginx:
    """The shipped nginx.conf, ports changed, in a private prefix folder."""

    def __init__(self, tmp_path, upstream_port):
        prefix = tmp_path / "nginx"
        for d in ("logs", "tmp"):
            (prefix / d).mkdir(parents=True, exist_ok=True)
        shipped = open(os.path.join(ROOT, "nginx.conf")).read()
        assert "listen 127.0.0.1:8080;" in shipped and "server 127.0.0.1:9999;" in shipped
        self.prefix = prefix
        stderr_path = prefix / "stderr.log"

        def launch(port):
            conf = shipped.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{port};")
            conf = conf.replace("server 127.0.0.1:9999;", f"server 127.0.0.1:{upstream_port};")
            (prefix / "nginx.conf").write_text(conf)
            with open(stderr_path, "wb") as stderr:
                return subprocess.Popen([NGINX, "-p", str(prefix), "-c", "nginx.conf", "-g", "daemon off;"],
                                        stdout=subprocess.DEVNULL, stderr=stderr)

        self.port, self.proc = serve_on_free_port(
            launch, lambda port: _answers(f"http://127.0.0.1:{port}"), timeout=30, message="nginx to serve",
            log=lambda: stderr_path.read_text(errors="replace"), stop=lambda proc: stop_process(proc, signal.SIGQUIT))
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        stop_process(self.proc, signal.SIGQUIT, timeout=15)


@pytest.fixture
def uwsgi_server(tmp_path):
    server = UWSGIServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture(params=["uwsgi", "nginx"])
def site(request, tmp_path, uwsgi_server):
    """The demo reached straight through uWSGI, or through nginx in front of it."""
    if request.param == "uwsgi":
        yield uwsgi_server.url
        return
    if not os.path.exists(NGINX):
        pytest.skip("needs nginx (scripts/test installs it)")
    nginx = Nginx(tmp_path, uwsgi_server.port)
    yield nginx.url
    nginx.stop()


def open_kernel(base_url, username="user", shell="shell2"):
    """Log in, launch, start a kernel; return (session, kernel ws URL, cookie header)."""
    s = login(base_url, username)
    location = s.get(f"{base_url}/{shell}", allow_redirects=False, headers=CLICK).headers["Location"]
    assert s.get(location).status_code == 200
    xsrf = s.cookies.get("_xsrf", path="/notebook/")
    r = s.post(base_url + "/notebook/api/sessions", headers={"X-XSRFToken": xsrf, "Origin": base_url},
               json={"path": location.rsplit("/", 1)[1], "type": "notebook", "kernel": {"name": "python3"}})
    assert r.status_code == 201, r.text
    kernel = r.json()["kernel"]["id"]
    cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
    ws_url = base_url.replace("http://", "ws://") + f"/notebook/api/kernels/{kernel}/channels"
    return s, ws_url, cookie


def test_kernel_protocol_through_the_proxy(site):
    _, ws_url, cookie = open_kernel(site)
    channel = KernelChannel(ws_url, origin=site, cookie=cookie)
    try:
        assert channel.ws.getsubprotocol() == KernelChannel.SUBPROTOCOL, "the notebook chose the subprotocol"
        assert channel.execute("1+1") == "2"
        assert channel.execute('print("Output of a + b is", a + b)').strip() == "Output of a + b is foobar"

        # 1 MiB of binary data to the kernel and back, in binary frames.
        assert channel.execute(ECHO_TARGET) == "'ready'"
        comm_id = "echo-comm"
        channel.send("shell", "comm_open", {"comm_id": comm_id, "target_name": "echo", "data": {}})
        payload = os.urandom(1024 * 1024)
        msg_id = channel.send("shell", "comm_msg", {"comm_id": comm_id, "data": {}}, buffers=[payload])
        for kind, content, buffers, opcode in channel.replies(msg_id):
            if kind == "comm_msg":
                assert content["data"] == {"echoed": len(payload)}
                assert opcode == websocket.ABNF.OPCODE_BINARY
                assert bytes(buffers[0]) == payload
                break
    finally:
        channel.close()


def test_static_files_are_sent_by_the_site(site, uwsgi_server):
    """The big bundles come from disk through uWSGI's file wrapper, byte for byte.

    Where the bytes came from is proven, not guessed from headers (nginx drops the upstream's
    ``Server``): once the notebook has published its static routes it is frozen (SIGSTOP), so a
    relayed request cannot be answered, and the files must still come, whole and by ranges.
    """
    import glob

    import notebook

    from pyramid_notebook.server.static_files import CONTEXT_KEY

    s = login(site)
    s.get(f"{site}/shell1", allow_redirects=False)
    context = wait_for(lambda: (lambda c: c and CONTEXT_KEY in c and c)(uwsgi_server_context(uwsgi_server)),
                       timeout=60, message="the notebook to publish its static files")
    static = os.path.join(os.path.dirname(notebook.__file__), "static")
    biggest = sorted(glob.glob(os.path.join(static, "*.js")), key=os.path.getsize)[-3:]
    os.kill(context["pid"], signal.SIGSTOP)
    try:
        # The control: with the notebook frozen, what the site relays gets no answer.
        with pytest.raises(requests.Timeout):
            s.get(f"{site}/notebook/api/contents", timeout=3)
        for path in biggest:
            url = f"{site}/notebook/static/notebook/{os.path.basename(path)}"
            r = s.get(url, timeout=10)
            assert r.status_code == 200
            with open(path, "rb") as f:
                body = f.read()
            assert r.content == body
            # A range of the file itself (with brotli or gzip accepted, it would be one of the compressed copy).
            r = s.get(url, headers={"Range": "bytes=0-9", "Accept-Encoding": "identity"}, timeout=10)
            assert r.status_code == 206 and r.content == body[:10]
    finally:
        os.kill(context["pid"], signal.SIGCONT)


def test_killed_notebook_closes_the_browser_socket_with_1001(uwsgi_server):
    """The notebook dies mid-session: the browser gets 1001 "going away", as under the ASGI relay
    (test_asgi), so the page reconnects; one decision (relays.websocket.sendable_close_code)."""
    _, ws_url, cookie = open_kernel(uwsgi_server.url)
    channel = KernelChannel(ws_url, origin=uwsgi_server.url, cookie=cookie)
    try:
        assert channel.execute("1+1") == "2"
        context = uwsgi_server_context(uwsgi_server)
        os.kill(context["pid"], signal.SIGKILL)
        assert received_close_code(channel) == 1001, "going away"
    finally:
        channel.close()


def test_json_protocol_text_frames_still_work(uwsgi_server):
    """Without the v1 subprotocol Jupyter speaks JSON in text frames; those stay text."""
    from tests.helpers import execute_over_websocket

    _, ws_url, cookie = open_kernel(uwsgi_server.url)
    out, result = execute_over_websocket(ws_url, "print(6 * 7)", uwsgi_server.url, [f"Cookie: {cookie}"])
    assert out.strip() == "42"


def test_handshakes_that_must_fail(uwsgi_server):
    base = uwsgi_server.url
    s, ws_url, cookie = open_kernel(base)
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url, origin="http://evil.example", header=[f"Cookie: {cookie}"], timeout=10)
    assert e.value.status_code == 403
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url, origin=base, timeout=10)
    assert e.value.status_code == 403

    # user2 cannot open user's kernel channel: the proxy takes user2 to user2's own notebook.
    s2 = login(base, "user2")
    cookie2 = "; ".join(f"{c.name}={c.value}" for c in s2.cookies)
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url, origin=base, header=[f"Cookie: {cookie2}"], timeout=10)
    assert e.value.status_code == 502
    s2.get(base + "/shell1", allow_redirects=False)
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url, origin=base, header=[f"Cookie: {cookie2}"], timeout=10)
    assert e.value.status_code == 404, "user's kernel does not exist in user2's notebook"

    # Garbage handshakes get a clear answer before the relay opens anything to the notebook,
    # and the worker goes on relaying.
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    for headers, status in (({"Sec-WebSocket-Version": "13"}, 400),
                            ({"Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": key}, 426),
                            ({"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": key,
                              "Sec-WebSocket-Protocol": ", ".join(f"p{i}" for i in range(1000))}, 400)):
        r = s.get(ws_url.replace("ws://", "http://"),
                  headers=dict(headers, Connection="Upgrade", Upgrade="websocket", Origin=base))
        assert r.status_code == status and "Traceback" not in r.text, (headers, r.status_code)
    channel = KernelChannel(ws_url, origin=base, cookie=cookie)
    try:
        assert channel.execute("1+1") == "2"
    finally:
        channel.close()


def test_launches_on_different_workers_keep_one_notebook(tmp_path):
    # The shipped two processes, one thread each, so concurrent launches must land on both workers.
    uwsgi_server = UWSGIServer(tmp_path, "--threads", "1")
    try:
        _launch_from_many_workers(uwsgi_server)
    finally:
        uwsgi_server.stop()


def _launch_from_many_workers(uwsgi_server):
    base = uwsgi_server.url
    sessions = [login(base) for _ in range(6)]
    locations = []

    def launch(s):
        locations.append(s.get(base + "/shell1", allow_redirects=False).headers.get("Location"))

    threads = [threading.Thread(target=launch, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(locations) == 6 and len(set(locations)) == 1 and locations[0]
    assert len(uwsgi_server.worker_pids_for("/shell1")) == 2, "both uWSGI worker processes took launches"
    assert len(daemons_under(uwsgi_server.notebook_folder)) == 1


def test_closing_the_browser_frees_the_worker(tmp_path):
    # One process with one thread: a relay that did not end would block every later request.
    server = UWSGIServer(tmp_path, "--processes", "1", "--threads", "1")
    try:
        _, ws_url, cookie = open_kernel(server.url)
        channel = KernelChannel(ws_url, origin=server.url, cookie=cookie)
        assert channel.execute("1+1") == "2"
        channel.ws.sock.shutdown(2)  # the browser tab dies: no close frame
        channel.ws.sock.close()
        r = wait_for(lambda: _get(server.url + "/login"), timeout=30, message="the worker to be free again")
        assert r.status_code == 200
        channel = KernelChannel(ws_url, origin=server.url, cookie=cookie)
        assert channel.execute("2+2") == "4"
        channel.close()  # a clean close frees it as well
        assert wait_for(lambda: _get(server.url + "/login"), timeout=30).status_code == 200
    finally:
        server.stop()


def _get(url):
    try:
        return requests.get(url, timeout=2)
    except requests.RequestException:
        return None


@pytest.mark.skipif(not (os.path.exists("/usr/bin/chromium") and os.path.exists(NGINX)),
                    reason="needs chromium, chromium-driver and nginx")
def test_browser_runs_code_through_nginx_and_uwsgi(browser, tmp_path, uwsgi_server):
    from tests.test_browser import log_in, run_in_last_cell, wait_for_output

    nginx = Nginx(tmp_path, uwsgi_server.port)
    try:
        log_in(browser, nginx.url)
        browser.find_by_id("shell2").click()
        assert browser.is_text_present("a test variable", wait_time=60)
        run_in_last_cell(browser, 'print("Output of a + b is", a + b)')
        wait_for_output(browser, "Output of a + b is foobar")
        context = uwsgi_server_context(uwsgi_server)
        assert context["websocket_url"] == "", "websockets go through the site, not to the notebook port"
    finally:
        nginx.stop()


def uwsgi_server_context(server):
    from pyramid_notebook.notebookmanager import NotebookManager

    return NotebookManager(server.notebook_folder).get_notebook_status("user")
