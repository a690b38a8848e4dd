"""Read a request's body on the event loop, with a deadline and a size limit, before a WSGI thread runs it.

Under :mod:`pyramid_notebook.relays.asgi_app` every WSGI call takes one thread of a fixed
pool, and a view that reads the body blocks its thread until the body is in. A client
that announces ``Content-Length: 100000`` and then sends one byte every few seconds
would hold a thread for as long as it likes: forty such anonymous connections to the
login form took every thread, and the site stopped answering everyone else.

:class:`~pyramid_notebook.relays.asgi_body.BufferedBodies` takes the body first, on the event loop, where a waiting
connection costs a coroutine and a socket but no thread, the way waitress and nginx
do it:

* at most ``max_body`` bytes (``Content-Length`` above it: 413 at once; a chunked body
  that grows past it: 413), kept in memory up to :data:`~pyramid_notebook.relays.asgi_body.IN_MEMORY` and in a temporary file
  beyond;
* within ``timeout`` seconds for the whole body (else 408 and the connection closes);
* a client that goes away mid-body is dropped without calling the site (no half body
  reaches a view, so no ``DisconnectionError`` 500).

Only then is the WSGI app called, with the whole body ready. Requests without a body,
and requests under the notebook routes (``streamed``), pass straight through: notebook
uploads stream to the notebook server chunk by chunk, and the site's view refuses a
request that is not the notebook's owner's before it reads a byte.
"""
import asyncio
import tempfile

from pyramid_notebook.core.pages import page_html

#: Bytes of a body kept in memory; larger bodies go to a temporary file.
IN_MEMORY = 1024 * 1024
#: Default largest body outside the notebook routes (waitress's default is 1 GiB; a site's
#: forms need far less, and the notebook's uploads are not limited here).
DEFAULT_MAX_BODY = 100 * 1024 * 1024
#: Default seconds a client has to send a whole body (nginx's ``client_body_timeout`` is 60 s
#: between two reads; this is for the whole body, so a slow trickle ends too).
DEFAULT_BODY_TIMEOUT = 120.0
#: Size of the pieces the buffered body is handed to the WSGI side in.
CHUNK = 256 * 1024

class _TooLarge(Exception):
    pass


class _Gone(Exception):
    pass


def _header(scope, name: bytes):
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value
    return None


def announced_length(scope):
    """``(has_body, length or None)`` from the request's ``Content-Length`` and ``Transfer-Encoding``."""
    length = _header(scope, b"content-length")
    if length is not None:
        try:
            length = int(length)
        except ValueError:  # the server's parser refuses these; be safe anyway
            return True, None
        return length > 0, length
    chunked = b"chunked" in (_header(scope, b"transfer-encoding") or b"").lower()
    return chunked, None


async def answer(send, status: int, title: str, message: str):
    """A small HTML error answer that closes the connection (the rest of the body is not read)."""
    body = page_html(title, message).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"), (b"content-security-policy", b"frame-ancestors 'none'")]})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive, limit: int):
    """The whole body from ``receive``: a ``SpooledTemporaryFile`` rewound to its start."""
    spool = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY)
    size = 0
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _TooLarge()
            spool.write(chunk)
            if not message.get("more_body", False):
                spool.seek(0)
                return spool
    except BaseException:
        spool.close()
        raise


def replay(spool, receive):
    """An ASGI ``receive`` that hands out the buffered body, then the client's own messages."""
    done = False

    async def receive_buffered():
        nonlocal done
        if done:
            return await receive()  # an http.disconnect, when the client goes
        chunk = spool.read(CHUNK)
        more = bool(chunk) and spool.tell() < _size(spool)
        if not more:
            done = True
            spool.close()
        return {"type": "http.request", "body": chunk, "more_body": more}

    return receive_buffered


def _size(spool) -> int:
    position = spool.tell()
    end = spool.seek(0, 2)
    spool.seek(position)
    return end


class BufferedBodies:
    """ASGI middleware: the body is read on the event loop before ``app`` (a WSGI bridge) runs.

    :param app: the ASGI app to call with the whole body ready (a2wsgi's ``WSGIMiddleware``).
    :param streamed: ``callable(path) -> bool``; True for paths whose bodies stream through
        unbuffered (the notebook routes).
    :param max_body: largest body in bytes; larger ones get 413.
    :param timeout: seconds for the whole body; slower ones get 408.
    """

    def __init__(self, app, streamed=lambda path: False, max_body: int = DEFAULT_MAX_BODY,
                 timeout: float = DEFAULT_BODY_TIMEOUT):
        self.app = app
        self.streamed = streamed
        self.max_body = max_body
        self.timeout = timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        has_body, length = announced_length(scope)
        if not has_body or self.streamed(scope.get("path") or ""):
            return await self.app(scope, receive, send)
        if length is not None and length > self.max_body:
            return await answer(send, 413, "Request too large",
                                f"This site takes request bodies of at most {self.max_body} bytes.")
        try:
            spool = await asyncio.wait_for(read_body(receive, self.max_body), self.timeout)
        except asyncio.TimeoutError:
            return await answer(send, 408, "Request timed out",
                                f"The request's body did not arrive within {self.timeout:g} seconds.")
        except _TooLarge:
            return await answer(send, 413, "Request too large",
                                f"This site takes request bodies of at most {self.max_body} bytes.")
        except _Gone:
            return None  # nobody to answer; the site never saw half a body
        try:
            return await self.app(scope, replay(spool, receive), send)
        finally:
            spool.close()
