"""proxy_request against a small upstream HTTP server (the proxy's own collaborator)."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pyramid.request import Request

from pyramid_notebook.relays.http import UpstreamError, proxy_request
from tests.helpers import free_port


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _echo(self):
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding") == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if not size:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(length)
        if self.path.startswith("/notebook/slow"):
            # Three chunks with pauses: the proxy must pass each one on as it comes.
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(3):
                chunk = f"part{i};{time.monotonic()}\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
                time.sleep(0.3)
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path.startswith("/notebook/big"):
            self.send_response(200)
            self.send_header("Content-Length", str(1024 * 1024))
            self.end_headers()
            self.wfile.write(b"z" * 1024 * 1024)
            return
        if self.path.startswith("/notebook/truncated"):
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"only ten..")
            self.close_connection = True
            return
        payload = json.dumps({
            "method": self.command, "path": self.path, "headers": dict(self.headers.items()),
            "body_length": len(body), "client_port": self.client_address[1],
        }).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Keep-Alive", "timeout=5")
        self.send_header("Set-Cookie", "a=1; Path=/notebook/")
        self.send_header("Set-Cookie", "b=2; Path=/notebook/")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = _echo


@pytest.fixture(scope="module")
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def call(port, path="/notebook/api/x?y=1", method="GET", body=None, headers=None, environ=None):
    request = Request.blank(path, method=method, headers=headers or {}, POST=None,
                            base_url="https://site.example.com", environ=environ or {})
    if body is not None:
        request.body = body
    request.remote_addr = "10.0.0.7"
    request.host = "site.example.com"
    response = proxy_request(request, port, "s3cret")
    data = b"".join(response.app_iter)
    response.app_iter.close() if hasattr(response.app_iter, "close") else None
    return response, data


def test_headers_are_cleaned_and_forwarded(upstream):
    response, data = call(upstream, headers={
        "Authorization": "Basic dXNlcjpwYXNzd29yZA==", "Connection": "keep-alive, X-Secret-Hop",
        "X-Secret-Hop": "drop me", "Keep-Alive": "timeout=1", "TE": "trailers", "Cookie": "_xsrf=abc",
        "X-Forwarded-Host": "spoofed.example", "X-Forwarded-For": "1.2.3.4"})
    seen = json.loads(data)
    h = {k.lower(): v for k, v in seen["headers"].items()}
    assert seen["path"] == "/notebook/api/x?y=1"
    assert h["authorization"] == "token s3cret", "the browser's credentials never reach the notebook"
    assert "x-secret-hop" not in h and "te" not in h and "keep-alive" not in h
    assert h["host"] == f"127.0.0.1:{upstream}"
    assert h["x-forwarded-for"] == "1.2.3.4, 10.0.0.7"
    assert h["x-forwarded-host"] == "site.example.com" and h["x-forwarded-proto"] == "https"
    assert h["cookie"] == "_xsrf=abc"
    assert response.status_int == 201
    assert "Keep-Alive" not in response.headers
    assert response.headers.getall("Set-Cookie") == ["a=1; Path=/notebook/", "b=2; Path=/notebook/"]


def test_request_body_and_connection_reuse(upstream):
    _, first = call(upstream, method="POST", body=b"x" * 3_000_000)
    _, second = call(upstream, method="PUT", body=b"y" * 10)
    first, second = json.loads(first), json.loads(second)
    assert first["body_length"] == 3_000_000 and second["body_length"] == 10
    assert first["client_port"] == second["client_port"], "the upstream connection is reused"


def test_chunked_request_body_streams(upstream):
    chunks = iter([b"a" * 100_000, b"b" * 5])

    class Input:
        def read(self, size=-1):
            return next(chunks, b"")

    _, data = call(upstream, method="POST", environ={"wsgi.input": Input(), "wsgi.input_terminated": True,
                                                     "CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked"})
    seen = json.loads(data)
    assert seen["body_length"] == 100_005
    assert seen["headers"].get("Transfer-Encoding") == "chunked"


def test_a_get_has_no_body_even_if_the_server_terminates_input(upstream):
    """waitress sets wsgi.input_terminated on every request; a GET must not go upstream chunked."""
    _, data = call(upstream, environ={"wsgi.input_terminated": True})
    seen = json.loads(data)
    assert "Transfer-Encoding" not in seen["headers"] and "Content-Length" not in seen["headers"]


def test_response_streams_chunk_by_chunk(upstream):
    request = Request.blank("/notebook/slow", base_url="http://site.example.com")
    response = proxy_request(request, upstream, "s3cret")
    arrivals = []
    for chunk in response.app_iter:
        arrivals.append(time.monotonic())
    response.app_iter.close()
    assert len(arrivals) >= 3, "each upstream chunk is relayed as it arrives, not buffered"
    assert arrivals[-1] - arrivals[0] > 0.4


def test_unreachable_upstream():
    with pytest.raises(UpstreamError):
        call(free_port())


def test_small_answers_are_read_whole_large_ones_stream(upstream):
    request = Request.blank("/notebook/api/x", base_url="http://site.example.com")
    small = proxy_request(request, upstream, "s3cret")
    assert isinstance(small.app_iter, list) and json.loads(small.app_iter[0])["path"] == "/notebook/api/x"
    large = proxy_request(Request.blank("/notebook/big", base_url="http://site.example.com"), upstream, "s3cret")
    assert not isinstance(large.app_iter, list), "a large answer is streamed, not held in memory"
    assert sum(len(c) for c in large.app_iter) == 1024 * 1024
    large.app_iter.close()


def test_truncated_small_answer_is_an_upstream_error(upstream):
    with pytest.raises(UpstreamError):
        proxy_request(Request.blank("/notebook/truncated", base_url="http://site.example.com"), upstream, "s3cret")


def test_close_codes_the_relays_send():
    """One decision for both websocket relays: codes that must not go on the wire are mapped, the
    rest pass unchanged."""
    from pyramid_notebook.relays.websocket import sendable_close_code

    assert sendable_close_code(None) == 1000 and sendable_close_code(1005) == 1000, "no status: normal"
    assert sendable_close_code(1006) == 1001 and sendable_close_code(1015) == 1001, "abnormal end: going away"
    for code in (1000, 1001, 1008, 1011, 4000):
        assert sendable_close_code(code) == code
