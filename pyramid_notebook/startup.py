"""Helpers that build a notebook's startup script (the original's :mod:`pyramid_notebook.startup`).

Kept at this dotted name for compatibility (sites, INI files and context files use it); the code
lives in :mod:`pyramid_notebook.core.startup`.
"""
from pyramid_notebook.core.startup import *  # noqa: F401,F403
import pyramid_notebook.core.startup as _impl  # noqa: E402


def __getattr__(name):  # the module's other (private or late) names, unchanged
    return getattr(_impl, name)
