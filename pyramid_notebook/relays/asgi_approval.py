"""Websocket approval under ASGI: the site's view approves a handshake, the event loop relays it.

A websocket handshake becomes a WSGI ``GET`` (:func:`websocket_environ`) that runs through the site's
own router in a worker thread (:func:`authorize`), so the site's ``notebook_proxy`` view authenticates
and authorizes it exactly as it does HTTP. With ``pyramid_notebook.websocket_proxy =
pyramid_notebook.asgi.serve_websocket`` an approving view returns :class:`WebsocketApproved`, a marker
response naming the notebook to connect to (:class:`Upstream`); any other answer is a refusal and
reaches the browser with its status and page.

The marker cannot be forged from outside: it is a Python object the ASGI side puts in the environ (a
key no request header can produce) and recognises by identity in the WSGI app's return value.
"""
import dataclasses
import io
import logging
import sys

from pyramid.httpexceptions import HTTPBadRequest, HTTPForbidden
from pyramid.response import Response

from pyramid_notebook.core.extras import needs_extra

with needs_extra("asgi"):
    from a2wsgi.wsgi import build_environ

from pyramid_notebook.core.context import upstream_host
from pyramid_notebook.core.origin import is_cross_site_request
from pyramid_notebook.core.pages import error_page
from pyramid_notebook.relays.websocket import CONTEXT_ENVIRON_KEY, forwarded_headers

logger = logging.getLogger(__name__)

#: Key in a websocket handshake's WSGI environ holding the ASGI side's :class:`_Handshake`.
#: Header-derived keys are ``HTTP_*``, so no request can put anything here.
HANDSHAKE_ENVIRON_KEY = "pyramid_notebook.asgi.handshake"
#: The largest refusal page passed on to the browser.
MAX_REFUSAL_BODY = 1024 * 1024
#: Response headers of a refusal that describe the HTTP connection, not the page.
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
                          "pyramid_notebook.asgi.serve_websocket needs the site to run under "
                          "pyramid_notebook.asgi (uvicorn); this server cannot relay websockets.")
    if is_cross_site_request(request):
        return error_page(HTTPForbidden, "Cross-origin websocket refused",
                          "This websocket to your notebook was opened by another web site and was refused.")
    context = request.environ.get(CONTEXT_ENVIRON_KEY) or {}
    headers = forwarded_headers(request, context.get("token", ""))
    upstream = Upstream(host=upstream_host(context), port=int(port),
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
