"""Test helpers: real servers on loopback, waiting with deadlines, cleanup by pid."""
import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
import uuid

import psutil
import requests
import waitress.server

from pyramid_notebook.core import paths, statefolder
from pyramid_notebook.core.process import terminate_daemon


def free_port() -> int:
    """A port nothing uses right now, between 10000 and 20000.

    Not the OS's pick (``bind(0)``): that comes from the ephemeral range (32768-60999 on Linux),
    where the outgoing connections and the kernels' ZMQ sockets of tests running beside this one
    take ports all the time, so the port is more likely gone before the server binds it. Not
    :func:`random_port_base`'s range either (20000-32000), where notebooks pick their ports.
    """
    rng = random.SystemRandom()  # pytest-randomly seeds ``random`` alike for every test
    for _ in range(200):
        port = rng.randrange(10000, 20000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 10000 and 20000")


#: What a server says when the port :func:`free_port` gave it was taken before it could bind it.
ADDRESS_IN_USE = re.compile(r"(?i)address already in use|EADDRINUSE|connection in use")


def stop_process(proc, sig=signal.SIGTERM, timeout=30):
    """Stop ``proc`` (a Popen) by its pid with ``sig``, then kill it, and every child it had, if they linger."""
    if proc.poll() is not None:
        return
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    _, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        child.kill()


def serve_on_free_port(launch, ready, log, timeout, message, stop=stop_process, attempts=3):
    """Start a server on a free port and wait until it serves; return ``(port, process)``.

    ``launch(port)`` starts it (a Popen), ``ready(port)`` says whether it serves, ``log()`` is its
    output so far. Between :func:`free_port` and the server's bind another process may take the
    port: then (the log says so) it starts again on another one. Whatever goes wrong after the
    start — a timeout, an early exit, an interrupt — the process is stopped (``stop(process)``)
    before the error goes on, so that a failed start leaves nothing running.
    """
    for attempt in range(attempts):
        port = free_port()
        proc = launch(port)
        try:
            try:
                wait_for(lambda: proc.poll() is not None or ready(port), timeout=timeout, message=message)
            except AssertionError as e:
                raise AssertionError(f"{e}; its output ends:\n{log()[-3000:]}") from None
            if proc.poll() is None:
                return port, proc
            text = log()
            if attempt + 1 < attempts and ADDRESS_IN_USE.search(text):
                continue  # lost the race for the port: another one
            raise AssertionError(f"{message}: exited with {proc.returncode}:\n{text[-3000:]}")
        except BaseException:
            stop(proc)
            raise
    raise AssertionError("unreachable")


def stop_if_it_fails(stop, check):
    """``check()``; if it raises, ``stop()`` what was started before the error goes on."""
    try:
        return check()
    except BaseException:
        stop()
        raise


def tcp_option_of_peer(pid, client_socket, option=socket.TCP_NODELAY) -> int:
    """The TCP option ``option`` of the socket in process ``pid`` at the other end of our ``client_socket``.

    Read from that very socket: a copy of the process's file descriptor (``pidfd_getfd``, Linux 5.6+,
    for a process of ours or as root) is asked with ``getsockopt``; the connection is not touched.
    Skips the test where the system does not allow it.
    """
    import ctypes

    import pytest

    local_port = client_socket.getsockname()[1]
    conns = [c for c in psutil.Process(pid).net_connections(kind="tcp") if c.raddr and c.raddr.port == local_port]
    assert len(conns) == 1, f"process {pid} has no single connection from our port {local_port}: {conns}"
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        fd = libc.syscall(438, pidfd, conns[0].fd, 0)  # SYS_pidfd_getfd, the same number on every architecture
        if fd < 0:
            pytest.skip(f"pidfd_getfd not allowed here: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(pidfd)
    peer = socket.socket(fileno=fd)
    try:
        return peer.getsockopt(socket.IPPROTO_TCP, option)
    finally:
        peer.detach()
        os.close(fd)  # our copy only: the process's own descriptor and the connection live on


def listening_socket():
    """A loopback socket bound to a port the OS picked, listening: the port is ours until it is
    closed (no race with another process, as a port from :func:`free_port` has)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def random_port_base(size=20) -> int:
    """A start for a notebook port range unlikely to collide with another test run.

    Below the kernel's ephemeral port range (32768-60999 on Linux), where outgoing
    connections and kernels' ZMQ sockets would otherwise race us for ports.
    """
    # The system's randomness: pytest-randomly seeds ``random`` alike for every test.
    return random.SystemRandom().randrange(20000, 32000 - size)


#: The fetch metadata a browser sends for a click on one of the site's own links: a launch that
#: restarts a notebook with another context needs that intent (pyramid_notebook.web.intent).
CLICK = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}


def wait_for(condition, timeout=30.0, interval=0.05, message="condition"):
    """Poll ``condition()`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def stop_all_notebooks(notebook_folder):
    """Stop every daemon under ``notebook_folder`` (only pids recorded there, and only ours).

    Both layouts: ``.state/<user>/notebook.pid`` and the old ``<user>/notebook.pid``.
    """
    if not os.path.isdir(notebook_folder):
        return
    from pyramid_notebook.backends.local import forkclient as forkserver

    forkserver.stop_all(notebook_folder)
    for pid_file in statefolder.pid_files(notebook_folder) + statefolder.legacy_pid_files(notebook_folder):
        if os.path.exists(pid_file):
            terminate_daemon(pid_file, timeout=10)


def join_background_starts(timeout=120.0):
    """Wait for the progress page's background starts (threads of this process) to finish.

    A site stopped by a test fixture would otherwise leave a start running that launches a
    notebook after the test's clean-up.
    """
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread.name.startswith("pyramid_notebook start "):
            thread.join(max(0.0, deadline - time.monotonic()))


def fork_servers_under(folder):
    """Live fork server processes serving a notebook folder inside ``folder``."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] == psutil.STATUS_ZOMBIE or len(cmdline) < 3:
            continue
        # cmdline[-3] is the script: forkserver/serve.py (an earlier layout's pyramid_notebook/forkserver.py).
        if paths.is_forkserver_script(cmdline[-3]) and cmdline[-1].startswith(str(folder)):
            found.append(proc)
    return found


def daemons_under(folder):
    """Live notebook daemon processes whose command line points into ``folder``."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if any(a.endswith("notebook_daemon.py") for a in cmdline) and any(a.startswith(str(folder)) for a in cmdline):
            found.append(proc)
    return found


class WSGIServerThread:
    """A real waitress server on a free loopback port, in a background thread."""

    def __init__(self, app, threads=8, port=0, sock=None):
        self.app = app
        # ``sock``: a listening socket of :func:`listening_socket`, for a port the app must know first.
        where = {"sockets": [sock]} if sock is not None else {"host": "127.0.0.1", "port": port}
        self.server = waitress.server.create_server(app, threads=threads, clear_untrusted_proxy_headers=True, **where)
        self.port = self.server.effective_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.closing = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.server.run()
        except OSError:
            if not self.closing:  # closing the sockets under select() is how waitress stops
                raise

    def __enter__(self):
        self.thread.start()
        wait_for(lambda: _answers(self.url), timeout=10, message="waitress to listen")
        return self

    @property
    def manager(self):
        """The NotebookManager of the app this server runs."""
        return self.app.registry.pyramid_notebook_manager

    def __exit__(self, *exc):
        self.closing = True
        self.server.close()
        self.thread.join(timeout=5)
        # The site's fork server watcher, so that it spawns nothing once the test stops everything.
        manager = getattr(getattr(self.app, "registry", None), "pyramid_notebook_manager", None)
        if manager is not None:
            manager.close()


def _answers(url):
    try:
        requests.get(url + "/login", timeout=1)
        return True
    except requests.ConnectionError:
        return False


def login(base_url, username="user", password="password") -> requests.Session:
    """A requests session logged in to the demo through its login form."""
    s = requests.Session()
    r = s.post(base_url + "/login", data={"username": username, "password": password,
                                          "csrf_token": login_form_token(s, base_url)}, allow_redirects=False)
    assert r.status_code == 302, r.text
    return s


def login_form_token(session, base_url) -> str:
    """The CSRF token of the demo's login form, as a browser that opened it holds it (cookie in ``session``)."""
    import re

    page = session.get(base_url + "/login", allow_redirects=False)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    return found.group(1) if found else ""


def execute_over_websocket(ws_url, code, origin, headers=(), timeout=60.0, subprotocols=None):
    """Run ``code`` in a kernel over its channels websocket; return (stdout text, result text)."""
    import websocket

    ws = websocket.create_connection(ws_url, header=list(headers), origin=origin, timeout=timeout,
                                     subprotocols=subprotocols)
    try:
        msg_id = uuid.uuid4().hex
        session = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": session,
                       "date": "", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        stdout, result, errors = [], [], []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                stdout.append(msg["content"]["text"])
            elif kind == "execute_result":
                result.append(msg["content"]["data"].get("text/plain", ""))
            elif kind == "error":
                errors.append("\n".join(msg["content"]["traceback"]))
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                break
        assert not errors, re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(errors))
        return "".join(stdout), "".join(result)
    finally:
        ws.close()


class KernelChannel:
    """A kernel's channels websocket speaking the v1 protocol (binary frames)."""

    SUBPROTOCOL = "v1.kernel.websocket.jupyter.org"

    def __init__(self, ws_url, origin=None, cookie=None, timeout=60.0, headers=(), **options):
        import websocket

        self.timeout = timeout
        headers = list(headers) + ([f"Cookie: {cookie}"] if cookie else [])
        self.ws = websocket.create_connection(ws_url, origin=origin, header=headers, timeout=timeout,
                                              subprotocols=[self.SUBPROTOCOL], **options)

    def send(self, channel, msg_type, content, buffers=()):
        from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1

        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": msg_type, "username": "test", "session": "test", "date": "",
                  "version": "5.3"}
        parts = [json.dumps(p).encode() for p in (header, {}, {}, content)] + list(buffers)
        self.ws.send_binary(serialize_msg_to_ws_v1(parts, channel))
        return msg_id

    def replies(self, msg_id):
        """Yield (msg_type, content, buffers, opcode) of messages answering ``msg_id``."""
        from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1

        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            opcode, data = self.ws.recv_data()
            _, parts = deserialize_msg_from_ws_v1(data)
            header, parent = json.loads(parts[0]), json.loads(parts[1])
            if parent.get("msg_id") == msg_id:
                yield header["msg_type"], json.loads(parts[3]), parts[4:], opcode
        raise AssertionError(f"no complete answer to {msg_id} within {self.timeout}s")

    def execute(self, code):
        """Run ``code``; return its result's text/plain (or stdout if no result)."""
        msg_id = self.send("shell", "execute_request", {"code": code, "silent": False, "store_history": False,
                                                        "user_expressions": {}, "allow_stdin": False,
                                                        "stop_on_error": True})
        result, out = None, ""
        for kind, content, _, _ in self.replies(msg_id):
            if kind == "execute_result":
                result = content["data"]["text/plain"]
            elif kind == "stream":
                out += content["text"]
            elif kind == "error":
                raise AssertionError("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                return result if result is not None else out

    def close(self):
        self.ws.close()


def pserve_kernel_channel(session, server, kernel, username="user"):
    """The kernel's channels as the browser's notebook page opens them in pserve mode: straight to
    the notebook's port, with the cookies the site's proxy gave the browser."""
    context = server.manager.get_notebook_status(username)
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies if c.path.startswith("/notebook"))
    return KernelChannel(f"ws://127.0.0.1:{context['http_port']}/notebook/api/kernels/{kernel}/channels",
                         origin=server.url, cookie=cookie, timeout=120)


#: The user's files a browser may fetch through files/, each as Jupyter answers it: name -> body.
USER_FILES = {
    "page.html": b"<script>parent.document.title = 'pwned'</script>",
    "notes.txt": b"plain text\n",
    "nb.ipynb": b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}',
    "data.bin": bytes(range(256)) * 4,
    "sub dir/\u00fc + x.css": b"body {}",
}
#: Headers of a files/ answer that must be Jupyter's, whoever sends it.
FILES_PARITY_HEADERS = ("Content-Type", "Cache-Control", "Content-Security-Policy", "Content-Disposition",
                        "X-Content-Type-Options")


def check_user_files_as_jupyter_sends_them(session, site_url, context, work_folder, from_disk):
    """Fetch :data:`USER_FILES` (and some Jupyter refuses) through the site and straight from the
    notebook; the bodies and :data:`FILES_PARITY_HEADERS` must agree. ``from_disk(response)`` says
    whether the site sent a file itself; it must for the plain files and must not for the others."""
    from urllib.parse import quote

    for name, body in USER_FILES.items():
        os.makedirs(os.path.dirname(os.path.join(work_folder, name)), exist_ok=True)
        with open(os.path.join(work_folder, name), "wb") as f:
            f.write(body)
    with open(os.path.join(work_folder, ".hidden.txt"), "wb") as f:
        f.write(b"hidden")
    outside = os.path.join(os.path.dirname(work_folder.rstrip("/")), "outside.txt")
    with open(outside, "wb") as f:
        f.write(b"outside")
    link = os.path.join(work_folder, "link.txt")
    if not os.path.lexists(link):
        os.symlink(outside, link)
    direct = f"http://127.0.0.1:{context['http_port']}"
    auth = {"Authorization": "token " + context["token"]}
    base = context.get("notebook_path") or "/notebook/"
    referer = {"Referer": site_url + base + "tree"}
    for name, body in USER_FILES.items():
        for query in ("", "?download=1", "?v=2"):
            path = base + "files/" + quote(name) + query
            ours = session.get(site_url + path, headers=referer)
            theirs = requests.get(direct + path, headers=dict(auth, **referer))
            assert ours.status_code == theirs.status_code == 200, (path, ours.status_code, theirs.status_code)
            assert ours.content == theirs.content == body, path
            for header in FILES_PARITY_HEADERS:
                assert ours.headers.get(header) == theirs.headers.get(header), (path, header, ours.headers, theirs.headers)
            assert ("Expires" in ours.headers) == ("Expires" in theirs.headers), path
            assert from_disk(ours), f"{path} was relayed, not sent from disk"
    assert "sandbox" in session.get(site_url + base + "files/page.html", headers=referer).headers[
        "Content-Security-Policy"]
    # What Jupyter refuses or may judge otherwise stays Jupyter's to answer: hidden files, links out,
    # and a request without the site's Referer (Jupyter's guard against cross-site inclusion).
    for name, headers in ((".hidden.txt", referer), ("link.txt", referer), ("missing.txt", referer),
                          ("sub%20dir", referer), ("notes.txt", {}),
                          ("notes.txt", {"Referer": "https://elsewhere.example/page"})):
        path = base + "files/" + name
        ours = session.get(site_url + path, headers=headers)
        theirs = requests.get(direct + path, headers=dict(auth, **headers))
        assert ours.status_code == theirs.status_code, (path, headers, ours.status_code, theirs.status_code)
        assert ours.content == theirs.content or ours.status_code >= 400, path
        assert not from_disk(ours), f"{path} was sent from disk"
    assert session.get(site_url + base + "files/notes.txt").status_code == 403


def received_close_code(channel) -> int:
    """Read frames from a :class:`KernelChannel` until the server closes it; the close frame's code."""
    import struct

    import websocket

    while True:
        opcode, frame = channel.ws.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return struct.unpack("!H", frame.data[:2])[0]


def run_cell(ch, code):
    """``(error name or None, everything printed or returned)`` of running ``code`` on a kernel channel
    (:func:`pserve_kernel_channel`)."""
    msg_id = ch.send("shell", "execute_request", {"code": code, "silent": False, "store_history": False,
                                                   "user_expressions": {}, "allow_stdin": False,
                                                   "stop_on_error": True})
    error, out = None, ""
    for kind, content, _, _ in ch.replies(msg_id):
        if kind == "error":
            error = content["ename"]
        elif kind == "stream":
            out += content["text"]
        elif kind == "execute_result":
            out += content["data"]["text/plain"]
        elif kind == "status" and content["execution_state"] == "idle":
            return error, out


def socket_inodes(pid) -> set:
    """The sockets (``socket:[inode]``) process ``pid`` holds open."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            inodes.add(target)
    return inodes


def interrupt_a_long_cell(ch, session, base_url, kernel_id, headers) -> list:
    """Run a two-minute cell on ``ch``, interrupt the kernel through the notebook's REST API as the
    page's Interrupt button does, and return the error names the cell ended with."""
    msg_id = ch.send("shell", "execute_request", {"code": "import time; time.sleep(120)", "silent": False,
                                                   "store_history": False, "user_expressions": {},
                                                   "allow_stdin": False, "stop_on_error": True})
    replies = ch.replies(msg_id)
    for kind, content, _, _ in replies:
        if kind == "status" and content["execution_state"] == "busy":
            break
    r = session.post(f"{base_url}/notebook/api/kernels/{kernel_id}/interrupt", headers=headers)
    assert r.status_code == 204, r.text
    errors = []
    for kind, content, _, _ in replies:
        if kind == "error":
            errors.append(content["ename"])
        if kind == "status" and content["execution_state"] == "idle":
            break
    return errors
