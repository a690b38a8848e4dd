"""The site's start-time work (``ApplicationCreated``), done in web processes only.

Every module of ours that starts something when the site's app exists (the backend's fork server
watcher, the warm-up, the bundles' compression, the audit trails' refresher, the grants' table)
subscribes through :func:`subscribe`, so a notebook kernel that bootstraps the site (see
:mod:`pyramid_notebook.core.inkernel`) starts none of it.
"""
from pyramid.events import ApplicationCreated

from pyramid_notebook.core.inkernel import in_kernel


def subscribe(config, handler) -> None:
    """Call ``handler(event)`` at ``ApplicationCreated``, except in a notebook kernel."""
    def on_site_start(event):
        if not in_kernel():
            handler(event)

    on_site_start.__doc__ = handler.__doc__
    config.add_subscriber(on_site_start, ApplicationCreated)
