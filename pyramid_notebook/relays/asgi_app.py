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
  ``pyramid_notebook.websocket_proxy = pyramid_notebook.relays.asgi_app.serve_websocket`` an approving
  view returns a marker response naming the notebook to connect to; the ASGI side then
  relays on the event loop (:mod:`pyramid_notebook.relays.asgi_relay`). Any other answer is a
  refusal and reaches the browser with its status and page.

The marker cannot be forged from outside: it is a Python object the ASGI side puts in
the environ (a key no request header can produce) and recognises by identity in the
WSGI app's return value. Only the brief authorization call uses a thread; the open
websockets live on the event loop.
"""
import asyncio
import dataclasses
import io
import logging
import os
import sys

from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi import build_environ
from pyramid.httpexceptions import HTTPBadRequest, HTTPForbidden
from pyramid.response import Response

from pyramid_notebook.relays.asgi_body import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY, BufferedBodies
from pyramid_notebook.relays.asgi_relay import refuse, relay
from pyramid_notebook.core.origin import is_cross_site_request
from pyramid_notebook.web.views import CONTEXT_ENVIRON_KEY, error_page

logger = logging.getLogger(__name__)

#: Key in a websocket handshake's WSGI environ holding the ASGI side's :class:`_Handshake`.
#: Header-derived keys are ``HTTP_*``, so no request can put anything here.
HANDSHAKE_ENVIRON_KEY = "pyramid_notebook.relays.asgi_app.handshake"
#: Default size of the thread pool running WSGI requests (HTTP and websocket authorization).
DEFAULT_THREADS = 32
#: The largest refusal page passed on to the browser.
MAX_REFUSAL_BODY = 1024 * 1024
#: Request headers passed to the notebook's handshake; everything else is the proxy's business.
FORWARDED_HEADERS = ("Origin", "Cookie", "User-Agent")
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"content-length"})


@dataclasses.dataclass(frozen=True)
class Upstream:
    """The notebook websocket an approved handshake is relayed to (BRIEF's upstream contract)."""

    #: ``context["http_host"]`` or ``127.0.0.1``.
    host: str
    #: ``context["http_port"]``.
    port: int
    #: ``context["token"]``, sent as ``Authorization: token …``; never reaches the browser.
    token: str
    #: The request's path and query string, unchanged.
    path_qs: str
    #: Extra handshake headers for the notebook: ``Origin``, ``Cookie``, ``X-Forwarded-*``...
    headers: tuple = ()

    @property
    def url(self) -> str:
        """``ws://host:port/path?query``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}{self.path_qs}"


class _Handshake:
    """The ASGI side's slot for one websocket handshake, placed in the WSGI environ."""

    __slots__ = ("upstream", "approval")

    def __init__(self):
        self.upstream = None
        self.approval = None


class _Approval(list):
    """The (empty) WSGI body of an approving response; recognised by identity."""


class WebsocketApproved(Response):
    """What :func:`serve_websocket` returns: the site approved the handshake.

    Served through Pyramid's router, it records the upstream in the ASGI side's
    handshake slot and answers ``101`` with an empty body object that the ASGI side
    checks by identity. A tween or middleware that replaces or wraps the response
    turns it into a refusal, which is the safe side.
    """

    def __init__(self, handshake: _Handshake, upstream: Upstream):
        super().__init__(status=101)
        self._handshake = handshake
        self._upstream = upstream

    def __call__(self, environ, start_response):
        if environ.get(HANDSHAKE_ENVIRON_KEY) is not self._handshake:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"websocket approval served to the wrong request"]
        start_response("101 Switching Protocols", [])
        approval = _Approval()
        self._handshake.upstream = self._upstream
        self._handshake.approval = approval
        return approval


def serve_websocket(request, port):
    """Approve the websocket handshake in ``request`` for relaying to the notebook on ``port``.

    Use as ``pyramid_notebook.websocket_proxy`` when the site runs under
    :func:`make_asgi_app` (e.g. ``egg:pyramid_notebook#uvicorn``). The view has
    authenticated the user and found their running notebook; its context is in
    ``request.environ["pyramid_notebook.context"]``. Refuses a cross-origin handshake
    with 403, and answers 400 when the site does not run under the ASGI wrapper.
    """
    handshake = request.environ.get(HANDSHAKE_ENVIRON_KEY)
    if not isinstance(handshake, _Handshake):
        return error_page(HTTPBadRequest, "Websockets are not proxied here",
                          "pyramid_notebook.relays.asgi_app.serve_websocket needs the site to run under "
                          "pyramid_notebook.relays.asgi_app (uvicorn); this server cannot relay websockets.")
    if is_cross_site_request(request):
        return error_page(HTTPForbidden, "Cross-origin websocket refused",
                          "This websocket to your notebook was opened by another web site and was refused.")
    context = request.environ.get(CONTEXT_ENVIRON_KEY) or {}
    headers = [(name, request.headers[name]) for name in FORWARDED_HEADERS if name in request.headers]
    headers += [
        ("X-Forwarded-For", request.remote_addr or ""),
        ("X-Forwarded-Host", request.host),
        ("X-Forwarded-Proto", request.scheme),
    ]
    upstream = Upstream(host=context.get("http_host") or "127.0.0.1", port=int(port),
                        token=context.get("token", ""), path_qs=request.path_qs, headers=tuple(headers))
    return WebsocketApproved(handshake, upstream)


def websocket_environ(scope: dict, handshake: _Handshake) -> dict:
    """The WSGI environ of a websocket handshake: a ``GET`` with the browser's headers.

    Built by a2wsgi's own ``build_environ``, so paths, script name, client and headers
    are read exactly as for the site's HTTP requests.
    """
    http_scope = dict(scope, method="GET", http_version=scope.get("http_version", "1.1"),
                      scheme="https" if scope.get("scheme") == "wss" else "http")
    environ = build_environ(http_scope, io.BytesIO(b""))
    environ["wsgi.errors"] = sys.stderr
    environ["wsgi.input_terminated"] = True
    environ[HANDSHAKE_ENVIRON_KEY] = handshake
    return environ


def authorize(wsgi_app, environ: dict, handshake: _Handshake):
    """Run the handshake through the site (in a worker thread).

    Returns ``(upstream, None)`` when the site approved, else ``(None, (status, headers, body))``.
    """
    started = {}

    def start_response(status, headers, exc_info=None):
        started["status"], started["headers"] = status, headers
        return lambda data: None

    try:
        result = wsgi_app(environ, start_response)
    except Exception:
        logger.exception("Websocket handshake for %s failed in the site", environ.get("PATH_INFO"))
        return None, (500, [(b"content-type", b"text/plain")], b"Internal Server Error")
    try:
        if handshake.approval is not None and result is handshake.approval:
            return handshake.upstream, None
        body = bytearray()
        for chunk in result:
            body += chunk
            if len(body) > MAX_REFUSAL_BODY:
                del body[MAX_REFUSAL_BODY:]
                break
    finally:
        getattr(result, "close", lambda: None)()
    status = int(str(started.get("status", "500")).split(" ", 1)[0])
    if status == 101:
        status = 403  # 101 without our marker object is not an approval
    headers = [(k.strip().lower().encode("latin-1"), v.strip().encode("latin-1"))
               for k, v in started.get("headers", [])]
    headers = [(k, v) for k, v in headers if k not in _HOP_BY_HOP]
    return None, (status, headers, bytes(body))


class _InputTerminated:
    """Tell the WSGI app that ``wsgi.input`` ends at the end of the body (a2wsgi's does),
    so a chunked upload without ``Content-Length`` is streamed on to the notebook."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        environ.setdefault("wsgi.input_terminated", True)
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
    :param max_body_size: largest request body outside the notebook routes (413 beyond).
    :param body_timeout: seconds a client has for a whole request body outside the notebook
        routes (408 beyond). Such bodies are read on the event loop before a thread is taken
        (:mod:`pyramid_notebook.relays.asgi_body`), so slow bodies cannot take the pool.
    """

    def __init__(self, wsgi_app, threads: int = DEFAULT_THREADS, max_body_size: int = DEFAULT_MAX_BODY,
                 body_timeout: float = DEFAULT_BODY_TIMEOUT):
        self.wsgi_app = wsgi_app
        self.wsgi = WSGIMiddleware(_InputTerminated(wsgi_app), workers=threads)
        self.http = BufferedBodies(self.wsgi, streamed=self._streamed, max_body=max_body_size,
                                   timeout=body_timeout)
        self._streamed_prefixes = None
        #: Relay tasks of the websockets open right now.
        self.relays = set()

    def _streamed(self, path: str) -> bool:
        """Bodies under the notebook routes stream on to the notebook (see asgi_body)."""
        if self._streamed_prefixes is None:
            from pyramid_notebook.web.badinput import notebook_path_prefixes

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
        loop = asyncio.get_running_loop()
        upstream, refusal = await loop.run_in_executor(self.wsgi.executor, authorize, self.wsgi_app, environ,
                                                       handshake)
        if upstream is None:
            await refuse(scope, send, *refusal)
            return
        task = asyncio.current_task()
        self.relays.add(task)
        try:
            await relay(upstream, scope, receive, send)
        finally:
            self.relays.discard(task)


def make_asgi_app(wsgi_app, threads: int = DEFAULT_THREADS, **body_limits) -> NotebookASGI:
    """Wrap a Pyramid site's WSGI app for an ASGI server such as uvicorn.

    Set ``pyramid_notebook.websocket_proxy = pyramid_notebook.relays.asgi_app.serve_websocket`` so
    notebook websockets go through the site::

        from pyramid_notebook.relays.asgi_app import make_asgi_app
        app = make_asgi_app(config.make_wsgi_app())

    ``max_body_size`` and ``body_timeout`` go to :class:`NotebookASGI`.
    """
    return NotebookASGI(wsgi_app, threads=threads, **body_limits)


def from_ini(path: str = "", name: str = "main") -> NotebookASGI:
    """The site of a PasteDeploy INI file as an ASGI app, for ``uvicorn --factory``.

    ``PYRAMID_NOTEBOOK_INI=production.ini uvicorn --factory pyramid_notebook.relays.asgi_app:from_ini``;
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


#: Environment variables the paste server runner honours, like the demo's waitress runner.
PORT_VARIABLE = "PYRAMID_NOTEBOOK_DEMO_PORT"
HOST_VARIABLE = "PYRAMID_NOTEBOOK_DEMO_HOST"
#: ``[server:main]`` options passed on to ``uvicorn.Config``, with their types.
_UVICORN_OPTIONS = {
    "ws_max_size": int, "ws_max_queue": int, "ws_ping_interval": float, "ws_ping_timeout": float,
    "ws_per_message_deflate": "bool", "proxy_headers": "bool", "forwarded_allow_ips": str, "root_path": str,
    "timeout_keep_alive": int, "limit_concurrency": int, "backlog": int, "access_log": "bool",
}


def serve_paste(wsgi_app, global_conf, listen="127.0.0.1:8080", threads=DEFAULT_THREADS,
                max_body_size=DEFAULT_MAX_BODY, body_timeout=DEFAULT_BODY_TIMEOUT, **options):
    """``paste.server_runner`` ``egg:pyramid_notebook#uvicorn``: serve the site with uvicorn.

    ``listen = host:port``; ``$PYRAMID_NOTEBOOK_DEMO_PORT`` and ``$PYRAMID_NOTEBOOK_DEMO_HOST``
    override them. ``threads`` sizes the WSGI thread pool; ``max_body_size`` (bytes) and
    ``body_timeout`` (seconds) bound the request bodies read before a thread is taken;
    ``ws_max_size``, ``ws_ping_interval``, ``proxy_headers``, ``forwarded_allow_ips``, ``root_path``,
    ``access_log`` ... go to uvicorn.
    Logging is left to the INI file's logging sections.
    """
    import uvicorn
    from pyramid.settings import asbool

    host, _, port = str(listen).strip().split()[0].rpartition(":")
    host = os.environ.get(HOST_VARIABLE, "").strip() or host.strip("[]") or "127.0.0.1"
    port = int(os.environ.get(PORT_VARIABLE, "").strip() or port or 8080)
    kwargs = {}
    for key, value in options.items():
        kind = _UVICORN_OPTIONS.get(key)
        if kind is None:
            raise ValueError(f"egg:pyramid_notebook#uvicorn does not know the option {key!r}; known: listen, "
                             f"threads, max_body_size, body_timeout, {', '.join(sorted(_UVICORN_OPTIONS))}")
        kwargs[key] = asbool(value) if kind == "bool" else kind(value)
    app = make_asgi_app(wsgi_app, threads=int(threads), max_body_size=int(max_body_size),
                        body_timeout=float(body_timeout))
    config = uvicorn.Config(app, host=host, port=port, log_config=None, **kwargs)
    quiet_spurious_handshake_errors()
    uvicorn.Server(config).run()


#: uvicorn's error for a browser's text frame that is not UTF-8: the browser's fault, not the site's.
_INVALID_UTF8 = "Invalid UTF-8 sequence received from client."


class _SpuriousHandshakeError(logging.Filter):
    def filter(self, record):
        if record.getMessage() == _INVALID_UTF8:
            # uvicorn closes that websocket with 1007 and logs a traceback at ERROR: a client
            # could fill the log with them. One warning line says it all.
            record.levelno, record.levelname, record.exc_info, record.exc_text = logging.WARNING, "WARNING", None, None
            return True
        return record.getMessage() != "ASGI callable returned without completing handshake."


def quiet_spurious_handshake_errors():
    """Drop uvicorn's false "returned without completing handshake" error after a refusal.

    uvicorn's websockets-sansio protocol logs it after every ``websocket.http.response``
    although the refusal was sent (uvicorn pull request #3138). :class:`NotebookASGI`
    always accepts or answers a handshake, so in its process the message is never true.
    Its traceback for a browser's invalid UTF-8 text frame becomes a one-line warning.
    """
    error_logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _SpuriousHandshakeError) for f in error_logger.filters):
        error_logger.addFilter(_SpuriousHandshakeError())
