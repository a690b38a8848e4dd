"""The original's helpers: :func:`make_dict_hash`, :func:`change_directory`, :func:`route_to_alt_domain`.

Kept at this dotted name for compatibility (sites, INI files and context files use it); the code
lives in :mod:`pyramid_notebook.core.names`.
"""
from pyramid_notebook.core.names import *  # noqa: F401,F403
import pyramid_notebook.core.names as _impl  # noqa: E402


def __getattr__(name):  # the module's other (private or late) names, unchanged
    return getattr(_impl, name)
