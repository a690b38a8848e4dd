"""The package's browser assets (``notebook-bridge.js``) at ``<site>/pyramid_notebook/``.

Pyramid's static view answers with WebOb's ``FileResponse``, which parses ``Range``,
``If-Modified-Since`` and the other conditional headers only while it writes the answer,
after every exception view: ``Range: bytes=-`` or a year 99999 there was a 500 with a
traceback, for anyone. A ``NewRequest`` subscriber drops such unparsable headers for this
route's requests first, as HTTP says to (the notebook's own static files do the same,
:func:`pyramid_notebook.relays.static.drop_unparsable_conditions`).
"""
from pyramid.events import NewRequest

from pyramid_notebook.relays.static import drop_unparsable_conditions

#: URL path prefix of the package's browser assets.
ASSETS_PATH = "pyramid_notebook"


def _drop_bad_conditions(event):
    request = event.request
    # PATH_INFO is a latin-1 str; a prefix test needs no decoding.
    if request.environ.get("PATH_INFO", "").startswith("/" + ASSETS_PATH + "/"):
        drop_unparsable_conditions(request)


def includeme(config):
    """Serve ``pyramid_notebook:assets`` at ``/pyramid_notebook/``, conditional headers checked first."""
    config.add_static_view(ASSETS_PATH, "pyramid_notebook:assets", cache_max_age=3600)
    config.add_subscriber(_drop_bad_conditions, NewRequest)
