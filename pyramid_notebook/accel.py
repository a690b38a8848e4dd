"""nginx accel mode: the site decides, nginx relays notebook HTTP and websockets itself.

With ``pyramid_notebook.accel_redirect = /_pyramid_notebook/`` the proxy view, once it has
checked everything it checks in any mode (the site's own view authenticated and authorized the
user, the Origin check, the owner's running notebook), does not relay the request. It answers
with an empty ``200`` carrying the *grant*::

    X-Accel-Redirect: /_pyramid_notebook/<host>:<port>/<secret>

nginx never passes ``X-Accel-Redirect`` on to a client, so the secret never leaves nginx. The
shipped ``nginx-accel.conf`` uses the grant in two ways:

* Main path, every request under ``/notebook/``: ``auth_request`` asks the site with a bodyless
  subrequest, reads the grant with ``auth_request_set`` and proxies the original request (method,
  raw URI, streamed body, websocket upgrade) to ``<host>:<port>`` with
  ``Authorization: token <secret>``. The site never sees a notebook byte.
* Safety net: a grant reaching nginx in an ordinary proxied answer is followed as an internal
  redirect to the ``internal`` location ``/_pyramid_notebook/<host>:<port>/<secret>``, which
  proxies ``$request_uri`` to the notebook, so a grant is never forwarded anywhere else. nginx
  turns such a redirected request into a GET (HEAD and websocket handshakes stay as they are)
  and has already consumed its body: that is why ``auth_request`` is the main path.

When the site refuses (login redirect, 403, 502 "not running"), ``auth_request`` can only say
401/403/500; nginx then asks the site again in a named location with
:data:`FALLBACK_HEADER` set, and passes the site's own answer and page to the browser. The same
named location handles a notebook that does not answer nginx (502/504): the site, asked with
that header, answers its clear 502 page instead of another grant. See ``docs/design.rst``.
"""
from pyramid.response import Response

#: Header nginx sets when it asks the site for the page to show instead of the notebook's answer.
FALLBACK_HEADER = "X-Pyramid-Notebook-Accel-Fallback"
#: Header whose value nginx follows as an internal redirect and never passes to a client.
ACCEL_HEADER = "X-Accel-Redirect"


def upstream_address(context: dict) -> str:
    """``host:port`` of the notebook server (the hub's proxy or ``127.0.0.1``), per the shared contract."""
    host = context.get("http_host") or "127.0.0.1"
    return f"{host}:{int(context['http_port'])}"


def grant_uri(prefix: str, context: dict) -> str:
    """The internal URI nginx relays through: ``<prefix><host>:<port>/<secret>``."""
    token = context["token"]
    if not token or any(c in token for c in "/?#% \t\r\n"):
        # token_urlsafe() secrets never do this; a hand-edited context must not bend the URI.
        raise ValueError("the notebook's secret cannot be put in an nginx internal URI")
    return f"{prefix}{upstream_address(context)}/{token}"


def is_fallback(request) -> bool:
    """True when nginx asks for the site's page because the request cannot be relayed."""
    return bool(request.headers.get(FALLBACK_HEADER))


def grant_response(request, context: dict, prefix: str) -> Response:
    """The empty answer that lets nginx relay ``request`` to the user's notebook."""
    response = Response(status=200, body=b"", content_type=None)
    response.headers[ACCEL_HEADER] = grant_uri(prefix, context)
    # Never cached anywhere: the grant is for this request only.
    response.headers["Cache-Control"] = "no-store"
    return response
