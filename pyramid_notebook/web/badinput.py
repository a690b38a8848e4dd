"""Clear 400 pages for requests Pyramid cannot even route.

Pyramid decodes the path as UTF-8 while matching routes, before any view runs;
an address such as ``/notebook/api/contents/%ff%fe`` raises
:class:`pyramid.exceptions.URLDecodeError`, which without an exception view is a
500 with a traceback in the log. :func:`includeme` registers an exception view
that answers 400 with the library's error page for the notebook routes only
(the paths of the ``notebook_proxy`` and ``shutdown_notebook`` routes), so the
rest of the site keeps its own error handling. A site that wants the same
everywhere registers :func:`bad_url_view` itself (the demo does)::

    config.add_exception_view(bad_url_view, context=URLDecodeError)
"""
from pyramid.exceptions import URLDecodeError
from pyramid.httpexceptions import HTTPBadRequest, HTTPClientError
from pyramid.interfaces import IRoutesMapper

#: Name of the view predicate that matches requests under the notebook routes' paths.
PREDICATE = "pyramid_notebook_path"
DEFAULT_PREFIXES = ("/notebook/",)


def _static_prefix(pattern: str) -> str:
    prefix = pattern.split("{", 1)[0].split("*", 1)[0]
    return prefix if prefix.startswith("/") else "/" + prefix


def notebook_path_prefixes(registry) -> tuple:
    """The fixed leading parts of the notebook routes' patterns (``/notebook/``)."""
    from pyramid_notebook.web.views import PROXY_ROUTE_NAME, SHUTDOWN_ROUTE_NAME

    mapper = registry.queryUtility(IRoutesMapper)
    prefixes = []
    for name in (PROXY_ROUTE_NAME, SHUTDOWN_ROUTE_NAME):
        route = mapper.get_route(name) if mapper is not None else None
        if route is not None:
            prefixes.append(_static_prefix(route.pattern))
    return tuple(prefixes) or DEFAULT_PREFIXES


def is_notebook_path(request) -> bool:
    """True if the raw (undecoded) path lies under a notebook route."""
    raw = request.environ.get("PATH_INFO", "")  # a latin-1 str: safe to look at, never decoded
    return raw.startswith(notebook_path_prefixes(request.registry))


class NotebookPathPredicate:
    """View predicate ``pyramid_notebook_path=True``: the request is under a notebook route."""

    def __init__(self, value, config):
        self.value = bool(value)

    def text(self):
        """Describes the predicate in conflict and introspection reports."""
        return f"{PREDICATE} = {self.value}"

    phash = text

    def __call__(self, context, request):
        return is_notebook_path(request) == self.value


def bad_url_view(exc, request):
    """400 with the library's error page for an address that is not valid UTF-8."""
    from pyramid_notebook.web.views import error_page

    return error_page(HTTPBadRequest, "Bad request",
                      "The address is not valid: it contains bytes that are not UTF-8 text.")


def includeme(config):
    """Answer URLDecodeError under the notebook routes with 400 (called by the package's includeme)."""
    config.add_view_predicate(PREDICATE, NotebookPathPredicate)
    config.add_exception_view(bad_url_view, context=URLDecodeError, **{PREDICATE: True})


# --- websocket handshakes -------------------------------------------------------------

class HTTPUpgradeRequired(HTTPClientError):
    """426 Upgrade Required (Pyramid has no class for it)."""

    code = 426
    title = "Upgrade Required"
    explanation = "The server requires another protocol version."


#: Most subprotocols a browser's handshake may offer, and the longest one (Jupyter offers one).
MAX_SUBPROTOCOLS = 16
MAX_SUBPROTOCOL_LENGTH = 128
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def websocket_handshake_error(request):
    """Why this websocket handshake is malformed (RFC 6455, section 4.2.1), or None.

    Checked before any relay opens a connection to the notebook, so a garbage
    handshake costs the notebook nothing and gets a clear 400 (426 for a version
    other than 13) instead of a relay failing half-way.
    """
    import base64
    import binascii

    if request.method != "GET":
        return 400, "A websocket handshake must be a GET request."
    key = request.headers.get("Sec-WebSocket-Key", "").strip()
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except (binascii.Error, ValueError):
        return 400, "The Sec-WebSocket-Key header is missing or is not 16 bytes in base64."
    if request.headers.get("Sec-WebSocket-Version", "").strip() != "13":
        return 426, "Only websocket protocol version 13 is supported."
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    if len(offered) > MAX_SUBPROTOCOLS or any(
            len(p) > MAX_SUBPROTOCOL_LENGTH or not set(p) <= _TOKEN_CHARS for p in offered):
        return 400, f"The Sec-WebSocket-Protocol header must list at most {MAX_SUBPROTOCOLS} plain names."
    return None


def check_websocket_handshake(request):
    """Raise a 400/426 error page if the websocket handshake in ``request`` is malformed."""
    from pyramid_notebook.web.views import error_page

    problem = websocket_handshake_error(request)
    if problem is None:
        return
    status, message = problem
    if status == 426:
        page = error_page(HTTPUpgradeRequired, "Unsupported websocket version", message)
        page.headers["Sec-WebSocket-Version"] = "13"
        raise page
    raise error_page(HTTPBadRequest, "Malformed websocket handshake", message)


# --- sizes Jupyter would refuse -------------------------------------------------------

#: Longest path and query the proxy forwards, and most header bytes: tornado refuses more
#: (64 KiB of header block) by closing the connection, which would read as a dead notebook.
MAX_TARGET_LENGTH = 8192
MAX_HEADER_BYTES = 32 * 1024


class HTTPRequestHeaderFieldsTooLarge(HTTPClientError):
    """431 Request Header Fields Too Large (Pyramid has no class for it)."""

    code = 431
    title = "Request Header Fields Too Large"
    explanation = "The request's headers are too large."


def check_request_size(request):
    """Raise 414/431 error pages for requests larger than the notebook server accepts."""
    from pyramid.httpexceptions import HTTPRequestURITooLong

    from pyramid_notebook.web.views import error_page

    if len(request.environ.get("PATH_INFO", "")) + len(request.environ.get("QUERY_STRING", "")) > MAX_TARGET_LENGTH:
        raise error_page(HTTPRequestURITooLong, "Address too long",
                         f"Notebook addresses are at most {MAX_TARGET_LENGTH} characters long.")
    size = sum(len(name) + len(value) + 4 for name, value in request.headers.items())
    if size > MAX_HEADER_BYTES:
        raise error_page(HTTPRequestHeaderFieldsTooLarge, "Request headers too large",
                         f"The request's headers add up to more than {MAX_HEADER_BYTES // 1024} KiB.")
