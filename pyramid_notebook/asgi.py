"""The site under uvicorn: :func:`serve_websocket`, :func:`from_ini`, :func:`make_asgi_app`, the ``egg:pyramid_notebook#uvicorn`` runner.

Kept at this dotted name for compatibility (sites, INI files and context files use it); the code
lives in :mod:`pyramid_notebook.relays.asgi_app`.
"""
from pyramid_notebook.relays.asgi_app import *  # noqa: F401,F403
import pyramid_notebook.relays.asgi_app as _impl  # noqa: E402


def __getattr__(name):  # the module's other (private or late) names, unchanged
    return getattr(_impl, name)
