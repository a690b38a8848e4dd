"""The relay interface: how a request the site has allowed reaches the user's notebook.

The proxy view (:func:`pyramid_notebook.views.notebook_proxy`) authenticates the user, checks the
request (size, origin, the path is the user's own) and finds the running notebook's context; then it
hands the request to the site's relay and returns what the relay answers. It never asks which relay
it is: configuration picks the class (:func:`pyramid_notebook.relays.choice.relay_from_settings`), as it picks the backend.

Implementations define :meth:`Relay.http` and :meth:`Relay.websocket`:

* :class:`pyramid_notebook.relays.site.SiteRelay`: the site relays itself — files from disk, other
  HTTP through a connection pool, websockets through ``pyramid_notebook.websocket_proxy``
  (the uWSGI or ASGI relay) or, without one, not at all (the browser connects to the notebook's port);
* :class:`pyramid_notebook.relays.accel.AccelRelay`: nginx relays, after the site's grant.
"""
import abc

from pyramid.httpexceptions import HTTPBadGateway

from pyramid_notebook.core.pages import error_page

#: Key in ``request.environ`` where a relay says how it answered (``http``, ``static``, ``websocket``,
#: ``accel``), for the metrics (:mod:`pyramid_notebook.web.metrics`) — the view never asks which relay.
RELAY_KIND_KEY = "pyramid_notebook.relay_kind"


class Relay(abc.ABC):
    """Carries one allowed request to the notebook whose context the view found."""

    @abc.abstractmethod
    def http(self, request, context):
        """The notebook's answer (a Pyramid response) to a plain HTTP ``request``."""

    @abc.abstractmethod
    def websocket(self, request, context):
        """The answer to a websocket handshake: a response that relays the connection, or a refusal."""


def notebook_unreachable():
    """The 502 page for a notebook that did not answer the relay."""
    return error_page(HTTPBadGateway, "Your notebook does not answer",
                      "The notebook server could not be reached. Launch it again from the site.")
