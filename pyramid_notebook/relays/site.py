"""The site relays requests itself: files from disk, HTTP through a connection pool, websockets
through the configured ``pyramid_notebook.websocket_proxy``."""
import logging

from pyramid.httpexceptions import HTTPBadRequest

from pyramid_notebook.core.context import upstream_host
from pyramid_notebook.core.pages import error_page
from pyramid_notebook.relays.base import RELAY_KIND_KEY, Relay, notebook_unreachable
from pyramid_notebook.relays.http import UpstreamError, proxy_request
from pyramid_notebook.relays.static import static_file_response
from pyramid_notebook.relays.websocket import CONTEXT_ENVIRON_KEY, check_websocket_handshake

logger = logging.getLogger(__name__)


class SiteRelay(Relay):
    """Relay in the web process.

    :param websocket_proxy: ``callable(request, port)`` that relays an approved websocket handshake
        (:func:`pyramid_notebook.uwsgi.serve_websocket`, :func:`pyramid_notebook.asgi.serve_websocket`),
        or ``None`` when the browser opens websockets straight to the notebook's port (pserve mode).
    """

    def __init__(self, websocket_proxy=None):
        self.websocket_proxy = websocket_proxy

    def http(self, request, context):
        """A file from disk when the notebook published where it is, else the notebook's own answer."""
        response = static_file_response(request, context)
        if response is not None:
            request.environ[RELAY_KIND_KEY] = "static"
            return response
        request.environ[RELAY_KIND_KEY] = "http"
        try:
            return proxy_request(request, context["http_port"], context["token"], host=upstream_host(context))
        except UpstreamError as e:
            logger.warning("Notebook on port %s did not answer: %s", context["http_port"], e)
            raise notebook_unreachable() from None

    def websocket(self, request, context):
        """Check the handshake, then hand it to ``websocket_proxy`` with the context in the environ."""
        check_websocket_handshake(request)
        if self.websocket_proxy is None:
            raise error_page(HTTPBadRequest, "Websockets are not proxied here",
                             "pyramid_notebook.websocket_proxy is not set, so the notebook page connects its "
                             "websockets straight to the notebook's own port.")
        request.environ[CONTEXT_ENVIRON_KEY] = context
        request.environ[RELAY_KIND_KEY] = "websocket"
        return self.websocket_proxy(request, context["http_port"])
