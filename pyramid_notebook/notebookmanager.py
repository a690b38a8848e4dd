"""The local backend's :class:`NotebookManager` (the original's public class).

Kept at this dotted name for compatibility (sites, INI files and context files use it); the code
lives in :mod:`pyramid_notebook.backends.local.manager`.
"""
from pyramid_notebook.backends.local.manager import *  # noqa: F401,F403
import pyramid_notebook.backends.local.manager as _impl  # noqa: E402


def __getattr__(name):  # the module's other (private or late) names, unchanged
    return getattr(_impl, name)
