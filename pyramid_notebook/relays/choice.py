"""Which relay a site uses: the settings decide, once, and the views never ask."""
from pyramid_notebook.relays.accel import AccelRelay
from pyramid_notebook.relays.base import Relay
from pyramid_notebook.relays.site import SiteRelay


def relay_from_settings(settings) -> Relay:
    """The relay :class:`~pyramid_notebook.core.settings.NotebookSettings` choose."""
    if settings.accel_redirect:
        return AccelRelay(settings.accel_redirect)
    return SiteRelay(settings.websocket_proxy)
