"""Cross-origin checks for requests the proxy forwards to a notebook.

The notebook is remote code execution for whoever reaches it, and the proxy
reaches it with the user's site login. A page on another site must therefore
not be able to make the browser send state-changing requests or open a
websocket through the proxy (CSRF, cross-site websocket hijacking). Browsers
always send ``Origin`` on such requests, so we compare it with the site's own
origin(s).
"""
from urllib.parse import urlsplit, urlunsplit

from pyramid_notebook.core.settings import get_notebook_settings
from pyramid_notebook.core.urls import normalize_origin

__all__ = ["SAFE_METHODS", "normalize_origin", "allowed_origins", "is_websocket_upgrade", "request_origin",
           "is_cross_site_request", "route_to_alt_domain"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def allowed_origins(request) -> set:
    """The origins a notebook may be used from: the site's and the alternative domain."""
    origins = {normalize_origin(request.host_url)}
    alternative = get_notebook_settings(request.registry).alternative_domain
    if alternative:
        origins.add(normalize_origin(alternative))
    return origins


def is_websocket_upgrade(request) -> bool:
    """True for a websocket handshake (``Connection: upgrade``, ``Upgrade: websocket``)."""
    connection = request.headers.get("Connection", "")
    tokens = {t.strip().lower() for t in connection.split(",")}
    return "upgrade" in tokens and request.headers.get("Upgrade", "").lower() == "websocket"


def request_origin(request):
    """The origin the browser says the request comes from, or ``None`` if it says nothing."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin.strip()
    referer = request.headers.get("Referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}"
    return None


def is_cross_site_request(request) -> bool:
    """True if a state-changing request or websocket handshake comes from another origin.

    Safe methods are not checked (the browser's same-origin policy keeps their
    answers from other sites). A request naming no origin at all comes from a
    script, not a browser, and cannot carry a forged site login.
    """
    if request.method in SAFE_METHODS and not is_websocket_upgrade(request):
        return False
    origin = request_origin(request)
    if origin is None:
        return False
    if origin.lower() == "null":
        return True
    return normalize_origin(origin) not in allowed_origins(request)


def route_to_alt_domain(request, url: str) -> str:
    """Move ``url`` to ``pyramid_notebook.alternative_domain`` if one is set.

    The alternative domain is a full origin such as ``https://shell.example.com``;
    the path and query of ``url`` are kept.
    """
    alternative_domain = get_notebook_settings(request.registry).alternative_domain
    if not alternative_domain:
        return url
    alt = urlsplit(alternative_domain)
    parts = urlsplit(url)
    return urlunsplit((alt.scheme, alt.netloc, parts.path, parts.query, parts.fragment))
