"""Serve a Pyramid site under an ASGI server (uvicorn), the notebook's websockets included.

Pyramid is WSGI, and WSGI cannot hold a websocket. :func:`make_asgi_app` wraps the
site's WSGI application into an ASGI application:

* HTTP requests go to the WSGI app through `a2wsgi <https://github.com/abersheeran/a2wsgi>`_'s
  ``WSGIMiddleware``, in its thread pool: responses and request bodies stream (bounded
  queues, so a slow client holds a thread, not memory).
* A websocket handshake becomes a WSGI ``GET`` with the browser's ``Upgrade``,
  ``Connection``, ``Sec-WebSocket-*``, ``Origin`` and ``Cookie`` headers, and runs through
  the site's own router in a worker thread, so the site's ``notebook_proxy`` view
  authenticates and authorizes it exactly as it does HTTP (login, permission, Origin,
  the owner's running notebook). With
  ``pyramid_notebook.websocket_proxy = pyramid_notebook.asgi.serve_websocket`` an approving
  view returns a marker response naming the notebook to connect to; the ASGI side then
  relays on the event loop (:mod:`pyramid_notebook.relays.asgi_relay`; the approval is
  :mod:`pyramid_notebook.relays.asgi_approval`). Any other answer is a refusal and reaches the
  browser with its status and page.

The marker cannot be forged from outside: it is a Python object the ASGI side puts in
the environ (a key no request header can produce) and recognises by identity in the
WSGI app's return value. Only the brief authorization call uses a thread; the open
websockets live on the event loop.
"""
import asyncio
import os

from pyramid_notebook.core.extras import needs_extra

with needs_extra("asgi"):
    from a2wsgi import WSGIMiddleware

from pyramid_notebook.relays.asgi_approval import (  # noqa: F401 (the ASGI relay's names, in one place)
    HANDSHAKE_ENVIRON_KEY, Upstream, WebsocketApproved, authorize, serve_websocket, websocket_environ,
    _Handshake,
)
from pyramid_notebook.relays import counters
from pyramid_notebook.relays.asgi_logs import quiet_spurious_handshake_errors
from pyramid_notebook.relays.asgi_body import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY, BufferedBodies
from pyramid_notebook.core.routes import notebook_path_prefixes
from pyramid_notebook.relays.asgi_relay import refuse, relay

#: Default size of the thread pool running WSGI requests (HTTP and websocket authorization).
DEFAULT_THREADS = 32


class _InputTerminated:
    """Tell the WSGI app that ``wsgi.input`` ends at the end of the body (a2wsgi's does),
    so a chunked upload without ``Content-Length`` is streamed on to the notebook; and
    whether the server runs several processes (a2wsgi always says so, and
    pyramid_debugtoolbar then switches itself off)."""

    def __init__(self, app, multiprocess=True):
        self.app = app
        self.multiprocess = multiprocess

    def __call__(self, environ, start_response):
        environ.setdefault("wsgi.input_terminated", True)
        environ["wsgi.multiprocess"] = self.multiprocess
        return self.app(environ, start_response)


#: Answer headers uvicorn always sends itself: the app's copies (a proxied notebook's own ``Date``
#: and ``Server: TornadoServer``) would go out beside them, twice each.
_SERVER_HEADERS = frozenset({b"date", b"server"})


def _without_server_headers(send):
    """``send`` that drops the app's ``Date`` and ``Server`` from an answer's headers (see above)."""
    async def send_once(message):
        if message["type"] == "http.response.start":
            headers = message.get("headers") or ()
            if any(k.lower() in _SERVER_HEADERS for k, _ in headers):
                message = dict(message, headers=[(k, v) for k, v in headers if k.lower() not in _SERVER_HEADERS])
        await send(message)

    return send_once


class NotebookASGI:
    """ASGI application around a Pyramid site's WSGI app; see the module docstring.

    :param wsgi_app: the site (``config.make_wsgi_app()``).
    :param threads: size of the thread pool that runs WSGI requests; a streaming
        response holds one thread while it streams.
    :param multiprocess: ``wsgi.multiprocess``: whether other processes serve the same site
        (``uvicorn --workers N``); ``False`` when this is the only one.
    :param max_body_size: largest request body outside the notebook routes (413 beyond).
    :param body_timeout: seconds a client has for a whole request body outside the notebook
        routes (408 beyond). Such bodies are read on the event loop before a thread is taken
        (:mod:`pyramid_notebook.relays.asgi_body`), so slow bodies cannot take the pool.
    """

    def __init__(self, wsgi_app, threads: int = DEFAULT_THREADS, multiprocess: bool = True,
                 max_body_size: int = DEFAULT_MAX_BODY, body_timeout: float = DEFAULT_BODY_TIMEOUT):
        self.wsgi_app = wsgi_app
        self.multiprocess = multiprocess
        self.wsgi = WSGIMiddleware(_InputTerminated(wsgi_app, multiprocess), workers=threads)
        self.http = BufferedBodies(self.wsgi, streamed=self._streamed, max_body=max_body_size,
                                   timeout=body_timeout)
        self._streamed_prefixes = None
        #: Relay tasks of the websockets open right now.
        self.relays = set()

    def _streamed(self, path: str) -> bool:
        """Bodies under the notebook routes stream on to the notebook (see asgi_body)."""
        if self._streamed_prefixes is None:
            registry = self.registry
            self._streamed_prefixes = notebook_path_prefixes(registry) if registry is not None else ("/notebook/",)
        return path.startswith(self._streamed_prefixes)

    @property
    def registry(self):
        """The wrapped Pyramid app's registry (like ``Router.registry``)."""
        return getattr(self.wsgi_app, "registry", None)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
        elif scope["type"] == "http":
            await self.http(scope, receive, _without_server_headers(send))
        else:  # lifespan
            await self.http(scope, receive, send)

    async def websocket(self, scope, receive, send):
        """Authorize the handshake through the site, then relay or refuse it."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        handshake = _Handshake()
        environ = websocket_environ(scope, handshake)
        # As for HTTP requests: a2wsgi's environ says "several processes", and pyramid_debugtoolbar
        # then warns and switches itself off for the handshake under the one-process runner.
        environ["wsgi.multiprocess"] = self.multiprocess
        loop = asyncio.get_running_loop()
        upstream, refusal = await loop.run_in_executor(self.wsgi.executor, authorize, self.wsgi_app, environ,
                                                       handshake)
        if upstream is None:
            await refuse(scope, send, *refusal)
            return
        task = asyncio.current_task()
        self.relays.add(task)
        try:
            with counters.websocket_open():  # the metrics' open websockets
                await relay(upstream, scope, receive, send)
        finally:
            self.relays.discard(task)


def make_asgi_app(wsgi_app, threads: int = DEFAULT_THREADS, multiprocess: bool = True, **body_limits) -> NotebookASGI:
    """Wrap a Pyramid site's WSGI app for an ASGI server such as uvicorn.

    Set ``pyramid_notebook.websocket_proxy = pyramid_notebook.asgi.serve_websocket`` so
    notebook websockets go through the site::

        from pyramid_notebook.asgi import make_asgi_app
        app = make_asgi_app(config.make_wsgi_app())

    ``max_body_size`` and ``body_timeout`` go to :class:`NotebookASGI`.
    """
    return NotebookASGI(wsgi_app, threads=threads, multiprocess=multiprocess, **body_limits)


def from_ini(path: str = "", name: str = "main") -> NotebookASGI:
    """The site of a PasteDeploy INI file as an ASGI app, for ``uvicorn --factory``.

    ``PYRAMID_NOTEBOOK_INI=production.ini uvicorn --factory pyramid_notebook.asgi:from_ini``;
    ``production.ini#name`` picks another app section. Logging is configured from the file.
    ``PYRAMID_NOTEBOOK_THREADS`` sets the WSGI thread pool size (default 32).
    """
    from pyramid.paster import get_app, setup_logging

    path = path or os.environ.get("PYRAMID_NOTEBOOK_INI", "")
    if not path:
        raise RuntimeError("Set PYRAMID_NOTEBOOK_INI to the site's INI file, e.g. production.ini")
    if "#" in path:
        path, name = path.rsplit("#", 1)
    setup_logging(path)
    quiet_spurious_handshake_errors()
    threads = int(os.environ.get("PYRAMID_NOTEBOOK_THREADS", "") or DEFAULT_THREADS)
    return make_asgi_app(get_app(path, name), threads=threads)
