"""Hostile input against one real notebook behind the demo (waitress): never a 500 of ours,
never a file from outside the user's folder, never the notebook's secret.

One notebook serves the whole module. The property test sends ~100 random requests
(paths, queries, headers, methods, bodies) and stays well under a minute.
"""
import base64
import http.client
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import write_demo_ini
from tests.helpers import WSGIServerThread, login, stop_all_notebooks

SENTINEL = "sentinel-outside-the-users-folder-5f1c"
AUTH = "Basic " + base64.b64encode(b"user:password").decode()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The demo in waitress with the user's notebook running, and files it must never serve."""
    from pyramid.paster import get_app

    tmp = tmp_path_factory.mktemp("hostile")
    folder = tmp / "notebooks"
    folder.mkdir()
    server = WSGIServerThread(get_app(write_demo_ini(tmp, str(folder)), "main")).__enter__()
    try:
        s = login(server.url)
        assert s.get(server.url + "/shell1", allow_redirects=False).status_code == 302
        (folder / "user2").mkdir(mode=0o700)
        (folder / "user2" / "secret.txt").write_text(SENTINEL)
        (folder / "outside.txt").write_text(SENTINEL)
        (tmp / "outside.txt").write_text(SENTINEL)
        context = server.manager.get_notebook_status("user")
        yield server, context
    finally:
        server.__exit__(None, None, None)
        stop_all_notebooks(str(folder))


def raw_request(port, data: bytes, timeout=30) -> bytes:
    """Send bytes as they are; return the whole answer (the server closes after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


def request(port, method, target, headers=(), body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        conn.putheader("Authorization", AUTH)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read() if method != "HEAD" else b""
        return response.status, dict(response.getheaders()), data
    finally:
        conn.close()


def assert_safe(context, status, headers, body):
    text = body.decode("latin-1")
    if status >= 500:
        assert "Tornado" in headers.get("Server", ""), f"{status} from the site, not from Jupyter: {text[:300]}"
    assert "Traceback" not in text
    assert SENTINEL not in text, "a file from outside the user's folder"
    assert context["token"] not in text and context["token"] not in str(headers), "the secret leaked"


SEGMENTS = st.one_of(
    st.sampled_from(["api", "contents", "files", "tree", "notebooks", "static", "lab", "view", "edit", "kernels",
                     "sessions", "nbconvert", "..", "%2e%2e", ".", "%2F", "%2f..%2f", ".state", "user", "user2",
                     "secret.txt", "context.json", "notebook.pid", "outside.txt", "%ff", "%00", "~", "%252e%252e",
                     "..%5c", "default.ipynb", "api/contents", "favicons", "notebook", "",
                     "static/favicons/favicon.ico", "static/notebook/main.js"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~%!$&'()*+,;=:@", max_size=20),
)
HEADER_NAMES = st.one_of(
    st.sampled_from(["Range", "Content-Type", "Accept", "Origin", "Referer", "Cookie", "X-XSRFToken", "Connection",
                     "Upgrade", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Protocol",
                     "If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since", "Accept-Encoding",
                     "X-Forwarded-For", "X-Forwarded-Host",
                     "Authorization", "Sec-Fetch-Site", "Expect", "Accept-Language", "Forwarded", "TE"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=30),
)
HEADER_VALUES = st.one_of(
    st.sampled_from(["bytes=0-9", "bytes=abc", "bytes=9-1", "bytes=-0", "bytes=0-0,1-1,2-2", "Upgrade", "websocket",
                     "close", "keep-alive, Upgrade", "null", "http://evil.example", "../../etc/passwd", "100-continue",
                     "*/*", "text/html", "gzip", "13", "99", "dGhlIHNhbXBsZSBub25jZQ==", "same-origin", "cross-site",
                     "Sat, 29 Oct 1994 19:43:31 GMT", "not a date", "Sat, 29 Oct 99999 19:43:31 GMT", "bytes=-",
                     "bytes=--1", "application/json", "multipart/form-data"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=200)
    .map(str.strip),
)
METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND",
                           "FOO", "M-SEARCH"])


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=METHODS, segments=st.lists(SEGMENTS, max_size=8),
       query=st.one_of(st.none(), st.lists(SEGMENTS, max_size=4).map("&".join)),
       headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=6),
       body=st.one_of(st.none(), st.binary(max_size=200)))
def test_random_requests_never_break_out(site, method, segments, query, headers, body):
    server, context = site
    target = "/notebook/" + "/".join(segments) + (f"?{query}" if query is not None else "")
    status, response_headers, data = request(server.port, method, target, headers, body)
    assert_safe(context, status, response_headers, data)


MALFORMED = {
    "long path": b"GET /notebook/" + b"a" * 200_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "long header": b"GET /notebook/api/status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
    "many headers": b"GET /notebook/api/status HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 20000 + b"\r\n",
    "bad content-length": b"POST /notebook/api/contents HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "negative content-length": b"POST /notebook/api/contents HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    "two content-lengths": b"POST /notebook/api/contents HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                           b"Content-Length: 3\r\n\r\nabc",
    "bad chunk": b"POST /notebook/api/contents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0"
                 b"\r\n\r\n",
    "chunked and length": b"POST /notebook/api/contents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                          b"Content-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "odd version": b"GET /notebook/api/status HTTP/7.3\r\nHost: x\r\n\r\n",
    "no target": b"GET HTTP/1.1\r\nHost: x\r\n\r\n",
    "binary garbage": bytes(range(256)) * 4 + b"\r\n\r\n",
    "CONNECT": b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n",
}


#: Not malformed enough for waitress to refuse (it answers HTTP/7.3 as 1.0, CONNECT goes to the site's
#: routes): they must simply not break anything.
ANSWERED_AS_THEY_ARE = {"odd version", "CONNECT"}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_requests_get_a_4xx(site, name):
    server, context = site
    data = MALFORMED[name]
    # Logged in, so that a request that gets through reaches the proxy.
    data = data.replace(b"Host: x\r\n", b"Host: x\r\nAuthorization: " + AUTH.encode() + b"\r\n", 1)
    answer = raw_request(server.port, data)
    status = status_of(answer)
    if name in ANSWERED_AS_THEY_ARE:
        assert 200 <= status < 500, (name, answer[:300])
    else:
        assert 400 <= status < 500 or (status == 0 and not answer), (name, answer[:300])
    assert b"Traceback" not in answer and context["token"].encode() not in answer


def test_over_long_paths_and_headers_through_the_proxy(site):
    """Within the web server's limits but past Jupyter's: a clear 414/431 from the library, not a 502."""
    server, context = site
    status, _, data = request(server.port, "GET", "/notebook/api/contents/" + "a" * 20_000)
    assert status == 414 and b"Traceback" not in data
    status, _, data = request(server.port, "GET", "/notebook/api/status", [("X-Big", "b" * 70_000)])
    assert status == 431 and b"Traceback" not in data
    # Range requests on a file sent from disk: malformed ranges are ignored or refused, never a 500.
    # (WebOb raised ValueError for "bytes=-", "bytes=--1" and a year past 9999: 500 with a traceback.)
    for name, value in (("Range", "bytes=abc"), ("Range", "bytes=9-1"), ("Range", "bytes=99999999999-"),
                        ("Range", "bytes=0-0,0-0,0-0"), ("Range", "bytes=-"), ("Range", "bytes=--1"),
                        ("If-Modified-Since", "Sat, 29 Oct 99999 19:43:31 GMT"),
                        ("If-Unmodified-Since", "Sat, 29 Oct 99999 19:43:31 GMT"), ("If-Range", "Sat, 99 Oct 1994")):
        status, headers, data = request(server.port, "GET", "/notebook/static/favicons/favicon.ico",
                                        [(name, value), ("Range", "bytes=0-3")] if name != "Range" else [(name, value)])
        assert status in (200, 206, 412, 416), (name, value, status)
        assert "Tornado" not in headers.get("Server", ""), "sent from disk by the site"
    # Afterwards the notebook still answers.
    status, _, _ = request(server.port, "GET", "/notebook/api/status")
    assert status == 200


@pytest.mark.parametrize("headers, expected", [
    ({"Sec-WebSocket-Version": "13"}, 400),  # no key
    ({"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "short"}, 400),
    ({"Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, 426),
    ({"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Protocol": ", ".join(f"p{i}" for i in range(1000))}, 400),
    ({"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Protocol": "a b"}, 400),
])
def test_garbage_websocket_handshakes(site, headers, expected):
    server, _ = site
    headers = dict(headers, Connection="Upgrade", Upgrade="websocket", Origin=server.url)
    status, response_headers, data = request(server.port, "GET", "/notebook/api/kernels/x/channels",
                                             list(headers.items()))
    assert status == expected and b"Traceback" not in data
    if expected == 426:
        assert {k.lower(): v for k, v in response_headers.items()}.get("sec-websocket-version") == "13"
