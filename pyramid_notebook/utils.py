"""The original's helpers: :func:`make_dict_hash`, :func:`change_directory`, :func:`route_to_alt_domain`.

Kept at this dotted name for compatibility (sites, INI files and every existing context file's
startup script use it); the code lives in :mod:`pyramid_notebook.core.names` and
:mod:`pyramid_notebook.core.origin`.
"""
from pyramid_notebook.core.names import *  # noqa: F401,F403
from pyramid_notebook.core.origin import route_to_alt_domain  # noqa: F401
import pyramid_notebook.core.names as _impl  # noqa: E402


def __getattr__(name):  # the module's other (private or late) names, unchanged
    return getattr(_impl, name)
