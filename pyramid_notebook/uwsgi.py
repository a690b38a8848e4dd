"""Websockets under uWSGI: :func:`serve_websocket`.

Kept at this dotted name for compatibility (sites, INI files and context files use it); the code
lives in :mod:`pyramid_notebook.relays.uwsgi`.
"""
from pyramid_notebook.relays.uwsgi import *  # noqa: F401,F403
import pyramid_notebook.relays.uwsgi as _impl  # noqa: E402


def __getattr__(name):  # the module's other (private or late) names, unchanged
    return getattr(_impl, name)
