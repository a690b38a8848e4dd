"""nginx accel mode: the site decides, nginx relays notebook HTTP and websockets itself.

With ``pyramid_notebook.accel_redirect = /_pyramid_notebook/`` the proxy view, once it has
checked everything it checks in any mode (the site's own view authenticated and authorized the
user, the Origin check, the owner's running notebook), does not relay the request. It answers
with an empty ``200`` carrying the *grant*::

    X-Accel-Redirect: /_pyramid_notebook/<host>:<port>/<secret>/<person>

``<person>`` is the signed person the site vouches for (:mod:`pyramid_notebook.core.person`), which
nginx sends upstream as ``X-Pyramid-Notebook-Person`` in place of any the browser sent.
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

Static files (the 2.5 MB JavaScript bundle and the rest of what a notebook page loads) are sent
by nginx from disk, as the site sends them in the other modes (:mod:`pyramid_notebook.relays.static`):
for a GET or HEAD of a file found where the running notebook publishes its static folders, the
grant also names the file and the headers Jupyter would send (:data:`STATIC_HEADERS`), and
``nginx-accel.conf`` serves it with ``try_files`` after the access phase, so only after the site
said yes. Anything else, or a site that names no file, is relayed to the notebook. When the browser accepts
brotli or gzip, the file named is the compressed copy from the site's cache, and the grant adds its
``Content-Encoding`` and ``Vary: Accept-Encoding``.

When the site refuses (login redirect, 403, 502 "not running"), ``auth_request`` can only say
401/403/500; nginx then asks the site again in a named location with
:data:`FALLBACK_HEADER` set, and passes the site's own answer and page to the browser. The same
named location handles a notebook that does not answer nginx (502/504): the site, asked with
that header, answers its clear 502 page instead of another grant. See ``docs/design.rst``.
"""
import logging
import os

from pyramid.response import Response

from pyramid_notebook.core.context import upstream_host
from pyramid_notebook.core.person import person_header_value
from pyramid_notebook.relays.base import RELAY_KIND_KEY, Relay, notebook_unreachable
from pyramid_notebook.relays.static import static_file_plan

logger = logging.getLogger(__name__)

#: Header nginx sets when it asks the site for the page to show instead of the notebook's answer.
FALLBACK_HEADER = "X-Pyramid-Notebook-Accel-Fallback"
#: Header whose value nginx follows as an internal redirect and never passes to a client.
ACCEL_HEADER = "X-Accel-Redirect"
#: The grant's headers for a file nginx sends from disk: the file, and the headers Jupyter would
#: send with it (nginx-accel.conf reads them with ``auth_request_set``; no client ever sees them).
#: ``X-Content-Type-Options: nosniff``, which Jupyter sends with every file, is in the config.
STATIC_HEADERS = {"file": "X-Pyramid-Notebook-Static-File", "Content-Type": "X-Pyramid-Notebook-Static-Type",
                  "Cache-Control": "X-Pyramid-Notebook-Static-Cache-Control",
                  "Expires": "X-Pyramid-Notebook-Static-Expires",
                  "Content-Disposition": "X-Pyramid-Notebook-Static-Disposition",
                  "Content-Security-Policy": "X-Pyramid-Notebook-Static-CSP",
                  # The file named is then the brotli or gzip copy from the site's compression cache
                  # (relays/compress.py); nginx's own ETag (mtime and size) differs per copy.
                  "Content-Encoding": "X-Pyramid-Notebook-Static-Encoding",
                  "Vary": "X-Pyramid-Notebook-Static-Vary"}


def upstream_address(context: dict) -> str:
    """``host:port`` of the notebook server (the hub's proxy or ``127.0.0.1``), per the shared contract."""
    host = upstream_host(context)
    return f"{host}:{int(context['http_port'])}"


def grant_uri(prefix: str, context: dict, person: str = None) -> str:
    """The internal URI nginx relays through: ``<prefix><host>:<port>/<secret>``, and ``/<person>``
    when the site vouches for one (the signed :data:`~pyramid_notebook.core.person.PERSON_HEADER`
    value, URI-safe by design), which nginx sends upstream as that header."""
    token = context["token"]
    if not token or any(c in token for c in "/?#% \t\r\n"):
        # token_urlsafe() secrets never do this; a hand-edited context must not bend the URI.
        raise ValueError("the notebook's secret cannot be put in an nginx internal URI")
    uri = f"{prefix}{upstream_address(context)}/{token}"
    if person:
        if any(c in person for c in "/?#% \t\r\n"):
            raise ValueError("the signed person cannot be put in an nginx internal URI")
        uri += f"/{person}"
    return uri


def is_fallback(request) -> bool:
    """True when nginx asks for the site's page because the request cannot be relayed."""
    return bool(request.headers.get(FALLBACK_HEADER))


def grant_response(request, context: dict, prefix: str, static=None) -> Response:
    """The empty answer that lets nginx relay ``request`` to the user's notebook.

    ``static`` is :func:`pyramid_notebook.relays.static.static_file_plan`'s answer for the request:
    nginx then sends that file from disk instead of asking the notebook.
    """
    response = Response(status=200, body=b"", content_type=None)
    response.headers[ACCEL_HEADER] = grant_uri(prefix, context, person_header_value(request.environ, context["token"]))
    if static is not None:
        file_path, content_type, headers = static
        # The file name's own bytes (UTF-8 or not), each as one latin-1 character: how WSGI servers
        # write header values. nginx uses them as they are; control bytes cannot be sent at all.
        raw = os.fsencode(file_path)
        if not any(b < 0x20 or b == 0x7F for b in raw):
            response.headers[STATIC_HEADERS["file"]] = raw.decode("latin-1")
            response.headers[STATIC_HEADERS["Content-Type"]] = content_type
            for name, value in headers.items():
                if name in STATIC_HEADERS:
                    response.headers[STATIC_HEADERS[name]] = value
    # Never cached anywhere: the grant is for this request only.
    response.headers["Cache-Control"] = "no-store"
    return response


class AccelRelay(Relay):
    """nginx relays: the site answers every allowed request with a grant (``X-Accel-Redirect``).

    :param prefix: ``pyramid_notebook.accel_redirect``, the internal location of nginx's relay.
    """

    def __init__(self, prefix: str):
        self.prefix = prefix

    def _refuse_fallback(self, request, context):
        if is_fallback(request):  # nginx could not reach the notebook and asks for the site's page
            logger.warning("Notebook on port %s did not answer nginx", context.get("http_port"))
            raise notebook_unreachable()
        request.environ[RELAY_KIND_KEY] = "accel"

    def http(self, request, context):
        """The grant; for a file the notebook published, nginx sends it from disk."""
        self._refuse_fallback(request, context)
        return grant_response(request, context, self.prefix, static_file_plan(request, context))

    def websocket(self, request, context):
        """The grant: nginx relays the websocket itself."""
        self._refuse_fallback(request, context)
        return grant_response(request, context, self.prefix)
