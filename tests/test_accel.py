"""nginx accel mode for real: nginx (nginx-accel.conf) -> waitress or gunicorn (accel.ini) decides,
nginx relays HTTP and websockets to the notebook itself.

Each WSGI server and its nginx start once for the module; the tests share them (and the user's
notebook) and stop everything at the end.
"""
import base64
import hashlib
import json
import os
import signal
import subprocess
import sys

import psutil
import pytest
import requests
import websocket

from pyramid_notebook.relays import accel
from pyramid_notebook.notebookmanager import NotebookManager
from tests.helpers import (KernelChannel, check_user_files_as_jupyter_sends_them, execute_over_websocket, free_port,
                           login, serve_on_free_port, stop_all_notebooks, stop_if_it_fails, stop_process, wait_for)
from tests.test_uwsgi import open_kernel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
NGINX = "/usr/sbin/nginx"

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="needs nginx (scripts/test installs it)")


def _answers(url):
    try:
        return requests.get(url + "/login", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _stop(proc, sig=signal.SIGTERM):
    stop_process(proc, sig)


def start_nginx(prefix, site_port, edit=lambda conf: conf):
    """The shipped nginx-accel.conf (changed by ``edit``) on a free port; returns (process, URL)."""
    for d in ("logs", "tmp"):
        (prefix / d).mkdir(parents=True, exist_ok=True)
    shipped = open(os.path.join(ROOT, "nginx-accel.conf")).read()
    assert "listen 127.0.0.1:8080;" in shipped and "server 127.0.0.1:9999;" in shipped
    stderr_path = prefix / "stderr.log"

    def launch(port):
        conf = shipped.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{port};")
        conf = edit(conf.replace("server 127.0.0.1:9999;", f"server 127.0.0.1:{site_port};"))
        if os.geteuid() == 0:
            # nginx sends users' files itself only when its workers can read the notebook folder
            # (README: the site's group). As root, workers would be "nobody", and pytest's folders are 0700.
            conf = "user root;\n" + conf
        (prefix / "nginx.conf").write_text(conf)
        with open(stderr_path, "wb") as stderr:
            return subprocess.Popen([NGINX, "-p", str(prefix), "-c", "nginx.conf", "-g", "daemon off;"],
                                    stdout=subprocess.DEVNULL, stderr=stderr)

    port, proc = serve_on_free_port(launch, lambda port: _answers(f"http://127.0.0.1:{port}"), timeout=30,
                                    message="nginx to serve", log=lambda: stderr_path.read_text(errors="replace"),
                                    stop=lambda proc: stop_process(proc, signal.SIGQUIT))
    return proc, f"http://127.0.0.1:{port}"


class Stack:
    """The shipped accel.ini under ``kind`` (waitress or gunicorn) and nginx-accel.conf in front."""

    def __init__(self, kind, tmp_path):
        self.kind = kind
        self.folder = str(tmp_path / "notebooks")
        # The commands the README gives, from the checkout (gunicorn finds gunicorn.conf.py there).
        cmd = [os.path.join(BIN, "pserve"), "accel.ini"] if kind == "waitress" else \
            [os.path.join(BIN, "gunicorn"), "--paste", "accel.ini"]
        self.log_path = tmp_path / f"{kind}.log"
        self.log = open(self.log_path, "wb")

        def launch(port):
            env = dict(os.environ, PYRAMID_NOTEBOOK_DEMO_PORT=str(port), PYRAMID_NOTEBOOK_FOLDER=self.folder)
            return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

        def stop(proc):
            stop_all_notebooks(self.folder)
            stop_process(proc)
            self.log.close()

        self.port, self.proc = serve_on_free_port(
            launch, lambda port: _answers(f"http://127.0.0.1:{port}"), timeout=60, message=f"{kind} to serve",
            log=lambda: self.log_path.read_text(errors="replace"), stop=stop)
        stop_if_it_fails(lambda: stop(self.proc), lambda: self._start_nginx(tmp_path))

    def _start_nginx(self, tmp_path):
        self.prefix = tmp_path / "nginx"
        self.nginx, self.url = start_nginx(self.prefix, self.port)

    def context(self, user="user"):
        return NotebookManager(self.folder).get_notebook_status(user)

    def io_bytes(self):
        """Bytes the WSGI server's processes (gunicorn's workers too) have read and written through
        system calls, sockets included (/proc/PID/io's rchar + wchar)."""
        proc = psutil.Process(self.proc.pid)
        return sum(p.io_counters().read_chars + p.io_counters().write_chars
                   for p in [proc] + proc.children(recursive=True))

    def logs(self):
        return "".join((self.prefix / "logs" / name).read_text(errors="replace")
                       for name in ("nginx-access.log", "nginx-error.log")) + \
            self.log_path.read_text(errors="replace")

    def stop(self):
        _stop(self.nginx, signal.SIGQUIT)
        _stop(self.proc)  # first: the site's fork server watcher must not spawn another after stop_all
        stop_all_notebooks(self.folder)
        self.log.close()


@pytest.fixture(scope="module", params=["waitress", "gunicorn"])
def stack(request, tmp_path_factory):
    """nginx-accel.conf in front of accel.ini, under waitress and under gunicorn."""
    if request.param == "gunicorn" and not os.path.exists(os.path.join(BIN, "gunicorn")):
        pytest.skip("needs gunicorn (pip install -e .[test])")
    s = Stack(request.param, tmp_path_factory.mktemp(f"accel-{request.param}"))
    s.seen = []  # every response a client got through nginx in the running test, for the secret scan
    s.tokens = set()  # every notebook secret seen while it got them (a restart makes a new one)
    yield s
    s.stop()


def _tokens(stack):
    manager = NotebookManager(stack.folder)
    return {(manager.get_context(u) or {}).get("token") for u in ("user", "user2")} - {None}


def record(stack, session):
    """Keep every answer ``session`` gets, and the secrets alive then, for the secret scan."""
    def keep(response, *args, **kwargs):
        stack.seen.append(response)
        stack.tokens |= _tokens(stack)

    session.hooks["response"].append(keep)
    return session


def scan_for_secrets(stack):
    """No header or body of :attr:`Stack.seen` holds a notebook's secret."""
    tokens = stack.tokens | _tokens(stack)
    for response in stack.seen:
        if isinstance(response, dict):  # a websocket handshake's headers
            text = json.dumps(response).encode()
        else:
            # Bodies read whole (the streamed 150 MiB download is random bytes from the test itself).
            body = response._content if isinstance(response._content, bytes) else b""
            text = json.dumps([dict(response.headers)] + [dict(h.headers) for h in response.history]).encode()
            text += body + b"".join(h.content for h in response.history)
        for token in tokens:
            assert token.encode() not in text, f"a notebook's secret reached a client: {response}"


@pytest.fixture(autouse=True)
def no_secret_reaches_a_client(request):
    """After each test on a stack: what its clients received is scanned for the notebooks' secrets."""
    if "stack" not in request.fixturenames:
        yield
        return
    stack = request.getfixturevalue("stack")
    stack.seen.clear()
    yield
    stack.tokens |= _tokens(stack)
    try:
        scan_for_secrets(stack)
    finally:
        stack.seen.clear()


def test_grant_is_an_internal_uri_with_the_address_and_secret():
    context = {"http_port": 29001, "token": "abc_-123"}
    assert accel.grant_uri("/_pyramid_notebook/", context) == "/_pyramid_notebook/127.0.0.1:29001/abc_-123"
    context["http_host"] = "10.0.0.5"
    assert accel.upstream_address(context) == "10.0.0.5:29001"
    with pytest.raises(ValueError):
        accel.grant_uri("/_pyramid_notebook/", {"http_port": 1, "token": "a/b"})


def test_grant_names_a_file_by_its_own_bytes():
    from pyramid.request import Request

    context = {"http_port": 29001, "token": "abc"}
    static = ("/srv/n/user/d\u00e9j\u00e0 vu.csv", "text/csv", {"Cache-Control": "no-cache", "X-Other": "x"})
    headers = accel.grant_response(Request.blank("/"), context, "/_p/", static).headers
    assert headers[accel.STATIC_HEADERS["file"]] == "/srv/n/user/d\u00e9j\u00e0 vu.csv".encode().decode("latin-1")
    assert headers[accel.STATIC_HEADERS["Content-Type"]] == "text/csv"
    assert headers[accel.STATIC_HEADERS["Cache-Control"]] == "no-cache" and "X-Other" not in str(headers)
    # A name no header can carry is left to the notebook: the grant alone.
    headers = accel.grant_response(Request.blank("/"), context, "/_p/", ("/srv/a\nb", "text/plain", {})).headers
    assert accel.STATIC_HEADERS["file"] not in headers and headers[accel.ACCEL_HEADER] == "/_p/127.0.0.1:29001/abc"


def test_accel_redirect_setting_is_validated(tmp_path):
    from pyramid.exceptions import ConfigurationError

    from pyramid_notebook.core.settings import parse_settings

    base = {"pyramid_notebook.notebook_folder": str(tmp_path)}
    assert parse_settings(base).accel_redirect == ""
    assert parse_settings(dict(base, **{"pyramid_notebook.accel_redirect": "/_nb"})).accel_redirect == "/_nb/"
    with pytest.raises(ConfigurationError, match="accel_redirect"):
        parse_settings(dict(base, **{"pyramid_notebook.accel_redirect": "_nb/"}))


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs chromium and chromium-driver")
def test_browser_runs_code_through_nginx(browser, stack):
    from tests.test_browser import log_in, run_in_last_cell, wait_for_output

    # A fresh notebook, as a user's first visit opens, whatever other tests of the module ran.
    NotebookManager(stack.folder).stop_notebook("user")
    log_in(browser, stack.url)
    browser.find_by_id("shell2").click()
    assert browser.is_text_present("a test variable", wait_time=60)
    run_in_last_cell(browser, 'print("Output of a + b is", a + b)')
    wait_for_output(browser, "Output of a + b is foobar")


def test_kernel_protocol_through_nginx(stack):
    s, ws_url, cookie = open_kernel(stack.url)
    record(stack, s)
    channel = KernelChannel(ws_url, origin=stack.url, cookie=cookie)
    try:
        assert channel.ws.getsubprotocol() == KernelChannel.SUBPROTOCOL, "the notebook chose the subprotocol"
        stack.seen.append(channel.ws.getheaders())
        assert channel.execute("1+1") == "2"
        assert channel.execute('print("Output of a + b is", a + b)').strip() == "Output of a + b is foobar"
        assert channel.execute("import os; os.getpid() != 0") == "True"
    finally:
        channel.close()
    # Without the v1 subprotocol Jupyter speaks JSON in text frames.
    out, _ = execute_over_websocket(ws_url, "print(6 * 7)", stack.url, [f"Cookie: {cookie}"])
    assert out.strip() == "42"
    assert stack.context()["websocket_url"] == "", "websockets go through the site's origin"


def test_refused_before_anything_is_relayed(stack):
    s, ws_url, cookie = open_kernel(stack.url)
    record(stack, s)
    xsrf = s.cookies.get("_xsrf", path="/notebook/")
    # Cross-origin websocket handshake and POST: the site's 403, not the notebook's answer.
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url, origin="http://evil.example", header=[f"Cookie: {cookie}"], timeout=10)
    assert e.value.status_code == 403
    r = s.post(stack.url + "/notebook/api/contents", json={"type": "file"},
               headers={"X-XSRFToken": xsrf, "Origin": "http://evil.example"})
    assert r.status_code == 403 and "nginx" not in r.text and "Forbidden" in r.text
    assert not [f for f in os.listdir(NotebookManager(stack.folder).get_work_folder("user"))
                if f.startswith("untitled")], "the cross-origin POST never reached the notebook"
    # Anonymous: the site's own answers (login redirect for pages, 403 otherwise).
    r = record(stack, requests.Session()).get(stack.url + "/notebook/api/status", allow_redirects=False,
                                              headers={"Accept": "text/html"})
    assert r.status_code == 302 and r.headers["Location"].endswith("/login?came_from=/notebook/api/status")
    r = requests.get(stack.url + "/notebook/api/status")
    stack.seen.append(r)
    assert r.status_code == 403 and "Log in first" in r.text
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url, origin=stack.url, timeout=10)
    assert e.value.status_code == 403

    # Another user never reaches this user's notebook: they are taken to their own.
    NotebookManager(stack.folder).stop_notebook("user2")
    s2 = record(stack, login(stack.url, "user2"))
    cookie2 = "; ".join(f"{c.name}={c.value}" for c in s2.cookies)
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url, origin=stack.url, header=[f"Cookie: {cookie2}"], timeout=10)
    assert e.value.status_code == 502
    r = s2.get(stack.url + "/notebook/api/status")
    assert r.status_code == 502 and "Your notebook is not running" in r.text
    s2.get(stack.url + "/shell1", allow_redirects=False)
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url, origin=stack.url, header=[f"Cookie: {cookie2}"], timeout=10)
    assert e.value.status_code == 404, "user's kernel does not exist in user2's notebook"
    NotebookManager(stack.folder).stop_notebook("user2")


def test_raw_paths_ranges_and_conditional_requests(stack):
    s = record(stack, login(stack.url))
    s.get(stack.url + "/shell2", allow_redirects=False)  # the context open_kernel uses: no restart
    context = stack.context()
    work = NotebookManager(stack.folder).get_work_folder("user")
    os.makedirs(os.path.join(work, "sub"), exist_ok=True)
    for name in ("sub/plain.txt", "sub/100% naïve ü.txt"):
        with open(os.path.join(work, name), "w") as f:
            f.write("0123456789" * 10)
    direct = f"http://127.0.0.1:{context['http_port']}"
    auth = {"Authorization": f"token {context['token']}"}
    # %2F, %25 and UTF-8 reach Jupyter exactly as the browser wrote them.
    for path in ("/notebook/api/contents/sub%2Fplain.txt",
                 "/notebook/api/contents/sub/100%25%20na%C3%AFve%20%C3%BC.txt"):
        theirs = requests.get(direct + path, headers=auth)
        ours = s.get(stack.url + path)
        assert (ours.status_code, ours.json()["path"]) == (theirs.status_code, theirs.json()["path"]) == \
            (200, theirs.json()["path"]), path
    url = stack.url + "/notebook/files/sub/plain.txt"
    headers = {"Referer": stack.url + "/notebook/tree"}
    r = s.get(url, headers=dict(headers, Range="bytes=2-5"))
    assert r.status_code == 206 and r.content == b"2345"
    full = s.get(url, headers=headers)
    assert full.status_code == 200 and full.content == b"0123456789" * 10
    r = s.get(url, headers=dict(headers, **{"If-Modified-Since": full.headers["Last-Modified"]}))
    assert r.status_code == 304 and r.content == b""
    r = s.head(url, headers=headers)
    assert r.status_code == 200 and r.content == b"" and r.headers["Content-Length"] == "100"


def test_large_upload_and_download_stream_past_the_site(stack):
    s = record(stack, login(stack.url))
    s.get(stack.url + "/shell2", allow_redirects=False)
    s.get(stack.url + "/notebook/tree")
    xsrf = s.cookies.get("_xsrf", path="/notebook/")
    block = base64.b64encode(os.urandom(3 * 2**18))  # 1 MiB of base64
    upload = _JSONUpload(block, 200)  # a 200 MiB request body: 150 MiB file
    before = stack.io_bytes()
    r = s.put(stack.url + "/notebook/api/contents/big.bin", data=upload, timeout=300,
              headers={"X-XSRFToken": xsrf, "Origin": stack.url, "Content-Type": "application/json"})
    assert r.status_code == 201, r.text[:500]
    r = s.get(stack.url + "/notebook/files/big.bin", stream=True, headers={"Referer": stack.url + "/notebook/tree"})
    digest, size = hashlib.sha256(), 0
    for chunk in r.iter_content(2**20):
        digest.update(chunk)
        size += len(chunk)
    assert r.status_code == 200 and size == 150 * 2**20 and digest.hexdigest() == upload.file_digest
    # 350 MiB went through nginx; the site only decided (bytes counted, not memory or time).
    moved = stack.io_bytes() - before
    assert moved < 20 * 2**20, f"the web server read or wrote {moved / 2**20:.0f} MiB"
    assert not os.listdir(stack.prefix / "tmp" / "client_body"), "nginx buffered the upload to disk"
    os.unlink(os.path.join(NotebookManager(stack.folder).get_work_folder("user"), "big.bin"))


class _JSONUpload:
    """A Jupyter contents-API upload made of ``count`` copies of ``block``, read piece by piece."""

    def __init__(self, block, count):
        self.parts = [b'{"type": "file", "format": "base64", "content": "'] + [block] * count + [b'"}']
        self.length = sum(len(p) for p in self.parts)
        raw = base64.b64decode(block)
        digest = hashlib.sha256()
        for _ in range(count):
            digest.update(raw)
        self.file_digest = digest.hexdigest()
        self.index, self.buffer = 0, b""

    def __len__(self):
        return self.length

    def read(self, size=-1):
        while (size < 0 or len(self.buffer) < size) and self.index < len(self.parts):
            self.buffer += self.parts[self.index]
            self.index += 1
        size = len(self.buffer) if size < 0 else size
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out


def test_notebook_dying_mid_session_gives_a_clear_502(stack):
    s, ws_url, cookie = open_kernel(stack.url, "user2", shell="shell1")
    record(stack, s)
    channel = KernelChannel(ws_url, origin=stack.url, cookie=cookie, timeout=30)
    assert channel.execute("1+1") == "2"
    os.kill(stack.context("user2")["pid"], signal.SIGKILL)
    # The open kernel connection ends instead of hanging ...
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
        for _ in range(1000):
            channel.ws.recv()
    # ... and the next request gets the site's page, not nginx's.
    r = s.get(stack.url + "/notebook/api/status")
    assert r.status_code == 502 and "Your notebook" in r.text and "nginx" not in r.text, r.text
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url, origin=stack.url, header=[f"Cookie: {cookie}"], timeout=10)
    assert e.value.status_code == 502


def test_notebook_not_answering_nginx_gives_the_sites_502(stack):
    """The site believes the notebook runs, but nothing answers on its port: the site's page."""
    from pyramid_notebook.core import contextfile

    s = record(stack, login(stack.url))
    s.get(stack.url + "/shell2", allow_redirects=False)
    r = s.get(stack.url + "/notebook/api/status", headers={accel.FALLBACK_HEADER: "1"})
    assert r.status_code == 200, "a client cannot ask for the fallback page: nginx clears the header"
    pid_file = NotebookManager(stack.folder).get_pid_file("user")
    context = contextfile.read_context(pid_file)
    # The notebook's socket is gone while its process lives on (as if it had closed it).
    contextfile.write_context(pid_file, dict(context, http_port=free_port()))
    try:
        r = s.get(stack.url + "/notebook/api/status")
        assert r.status_code == 502 and "Your notebook does not answer" in r.text and "nginx" not in r.text
    finally:
        contextfile.write_context(pid_file, context)
    assert s.get(stack.url + "/notebook/api/status").status_code == 200


def test_a_grant_in_an_ordinary_answer_is_relayed_not_forwarded(stack, tmp_path):
    """Without the auth_request location, the site's grant reaches nginx as an ordinary answer:
    nginx follows it into the internal location (GET and websockets), never to the site."""
    import re

    def without_auth_location(conf):
        conf = re.sub(r"\n        location /notebook/ \{.*?\n        \}\n", "\n", conf, count=1, flags=re.S)
        conf = re.sub(r"\n        location @pyramid_notebook_relay \{.*?\n        \}\n", "\n", conf, count=1, flags=re.S)
        return re.sub(r"^    map \$pyramid_notebook_grant .*?^    \}\n", "", conf, flags=re.S | re.M)

    proc, url = start_nginx(tmp_path / "nginx", stack.port, without_auth_location)
    try:
        # Launched the main way (the notebook's allowed origin is the main nginx's) ...
        s, ws_url, cookie = open_kernel(stack.url)
        record(stack, s)
        # ... then reached through the nginx without auth_request (loopback cookies ignore ports).
        r = s.get(url + "/notebook/api/status")
        assert r.status_code == 200 and "started" in r.json(), r.text
        ws = websocket.create_connection(ws_url.replace(stack.url.replace("http", "ws"), url.replace("http", "ws")),
                                         origin=stack.url, host=stack.url.split("//")[1], timeout=60,
                                         header=[f"Cookie: {cookie}"], subprotocols=[KernelChannel.SUBPROTOCOL])
        stack.seen.append(ws.getheaders())
        channel = KernelChannel.__new__(KernelChannel)  # the same protocol code over this socket
        channel.ws, channel.timeout = ws, 60
        assert channel.execute("a + b") == "'foobar'"
        channel.close()
        access = (tmp_path / "nginx" / "logs" / "nginx-access.log").read_text()
        assert "/notebook/api/status" in access
        assert stack.context()["token"] not in access + stack.log_path.read_text(errors="replace")
    finally:
        _stop(proc, signal.SIGQUIT)


def _largest_static_file(context):
    """(URL path, file) of the biggest file under the notebook's own static route."""
    import notebook

    folder = os.path.join(os.path.dirname(notebook.__file__), "static")
    name = max((n for n in os.listdir(folder) if n.endswith(".js")), key=lambda n: os.path.getsize(os.path.join(folder, n)))
    return context["notebook_path"] + "static/notebook/" + name, os.path.join(folder, name)


def test_static_files_are_sent_by_nginx_from_disk_with_jupyters_headers(stack):
    s = record(stack, login(stack.url))
    s.get(stack.url + "/shell2", allow_redirects=False)  # the context open_kernel uses: no restart
    wait_for(lambda: "static_files" in (stack.context() or {}), timeout=30, message="static folders published")
    context = stack.context()
    path, file_path = _largest_static_file(context)
    direct = f"http://127.0.0.1:{context['http_port']}"
    auth = {"Authorization": f"token {context['token']}"}
    with open(file_path, "rb") as f:
        content = f.read()
    for query in ("", "?v=0123abcd"):
        theirs = requests.get(direct + path + query, headers=auth)
        ours = s.get(stack.url + path + query)
        assert ours.status_code == theirs.status_code == 200
        assert ours.content == theirs.content == content
        for name in ("Content-Type", "Cache-Control"):
            assert ours.headers.get(name) == theirs.headers.get(name), (name, query)
        assert ("Expires" in ours.headers) == ("Expires" in theirs.headers), query
        assert ours.headers["X-Content-Type-Options"] == "nosniff"
        assert not any(h.lower().startswith("x-pyramid-notebook") for h in ours.headers), ours.headers
    # Ranges, conditional requests and HEAD, as HTTP says (of the file itself: test_compress.py checks
    # the compressed copies).
    identity = {"Accept-Encoding": "identity"}
    r = s.get(stack.url + path, headers={"Range": "bytes=10-19", **identity})
    assert r.status_code == 206 and r.content == content[10:20]
    r = s.get(stack.url + path, headers={"If-Modified-Since": ours.headers["Last-Modified"]})
    assert r.status_code == 304 and r.content == b""
    r = s.head(stack.url + path, headers=identity)
    assert r.status_code == 200 and r.content == b"" and int(r.headers["Content-Length"]) == len(content)
    # From disk, not through Jupyter: with the notebook frozen, the file still comes, whole.
    notebook = psutil.Process(context["pid"])
    notebook.suspend()
    try:
        r = s.get(stack.url + path, timeout=20)
        assert r.status_code == 200 and r.content == content
    finally:
        notebook.resume()
    # A name Jupyter has no file for is still Jupyter's to answer (its 404), and only the owner
    # gets anything: an anonymous client gets the site's login, not the file.
    missing = context["notebook_path"] + "static/notebook/no-such-file.js"
    assert s.get(stack.url + missing).status_code == requests.get(direct + missing, headers=auth).status_code == 404
    r = record(stack, requests.Session()).get(stack.url + path, allow_redirects=False)
    assert r.status_code == 403 and r.content != content


def test_user_files_are_sent_by_nginx_from_disk_with_jupyters_headers(stack):
    s = record(stack, login(stack.url))
    s.get(stack.url + "/shell2", allow_redirects=False)  # the context open_kernel uses: no restart
    wait_for(lambda: "static_files" in (stack.context() or {}), timeout=30, message="static folders published")
    # Jupyter sends no ETag for files/, nginx does for a file it sends itself.
    check_user_files_as_jupyter_sends_them(s, stack.url, stack.context(),
                                           NotebookManager(stack.folder).get_work_folder("user"),
                                           from_disk=lambda r: "ETag" in r.headers)


def test_secret_never_reaches_a_client(stack):
    """nginx's and the web server's logs hold no secret; and the scan run after each test
    (:func:`no_secret_reaches_a_client`) knows a secret when it sees one."""
    s = record(stack, login(stack.url))
    s.get(stack.url + "/shell2", allow_redirects=False)
    assert s.get(stack.url + "/notebook/api/contents").status_code == 200
    tokens = _tokens(stack)
    assert tokens and stack.seen
    # The access logs are written a moment after the answer (gunicorn's, nginx's): wait for the request.
    logs = wait_for(lambda: (lambda text: text if "/notebook/" in text else None)(stack.logs()), timeout=30,
                    message="the proxied request in the logs")
    for token in tokens:
        assert token not in logs, "the secret is in a log"
    # The control: an answer that carried the secret would fail the scan.
    leaky = requests.models.Response()
    leaky._content, leaky.headers["X-Leak"] = b"", next(iter(tokens))
    with pytest.raises(AssertionError, match="secret reached a client"):
        scan_for_secrets(type("Stack", (), {"seen": [leaky], "tokens": tokens, "folder": stack.folder})())
