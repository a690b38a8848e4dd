"""The websocket rules every relay shares: which handshakes are refused, which browser headers go on
to the notebook, and which close code the browser gets.

One place for each, so the uWSGI relay (:mod:`.uwsgi`), the ASGI relay (:mod:`.asgi_relay`) and the
site's own check agree.
"""
import base64
import binascii

from pyramid.httpexceptions import HTTPBadRequest, HTTPClientError

from pyramid_notebook.core.pages import error_page
from pyramid_notebook.core.person import PERSON_HEADER, person_header_value

#: Key in ``request.environ`` under which a websocket relay finds the notebook's context.
CONTEXT_ENVIRON_KEY = "pyramid_notebook.context"
#: The browser's handshake headers a relay passes on to the notebook (Jupyter checks Origin itself;
#: Cookie carries its XSRF cookie; User-Agent for its logs).
FORWARDED_HEADERS = ("Origin", "Cookie", "User-Agent")
#: What the browser is sent for close codes that must not go on the wire (RFC 6455, 7.4.1):
#: no status (1005) is a normal close; an abnormal end (1006: the notebook died or the
#: connection dropped) and a TLS failure (1015) are "going away", so the page reconnects.
_UNSENDABLE = {None: 1000, 1005: 1000, 1006: 1001, 1015: 1001}


def sendable_close_code(code) -> int:
    """The close code to send the other side for ``code`` (what was received, or None)."""
    return _UNSENDABLE.get(code, code)


def forwarded_headers(request, token: str = "") -> list:
    """``[(name, value)]`` for the notebook's handshake: the browser's headers that go on, the
    ``X-Forwarded-*`` headers saying where the browser is (as the site saw it), and the person the
    site vouches for, signed with the notebook's secret ``token`` (never the browser's copy)."""
    headers = [(name, request.headers[name]) for name in FORWARDED_HEADERS if name in request.headers]
    headers += [("X-Forwarded-For", request.remote_addr or ""), ("X-Forwarded-Host", request.host),
                ("X-Forwarded-Proto", request.scheme)]
    person = person_header_value(request.environ, token)
    if person:
        headers.append((PERSON_HEADER, person))
    return headers


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
    problem = websocket_handshake_error(request)
    if problem is None:
        return
    status, message = problem
    if status == 426:
        page = error_page(HTTPUpgradeRequired, "Unsupported websocket version", message)
        page.headers["Sec-WebSocket-Version"] = "13"
        raise page
    raise error_page(HTTPBadRequest, "Malformed websocket handshake", message)
