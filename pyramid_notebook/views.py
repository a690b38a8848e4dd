"""The views a site maps: :func:`launch_notebook`, :func:`shutdown_notebook`, :func:`notebook_proxy`.

Kept at this dotted name for compatibility (sites, INI files and context files use it); the code
lives in :mod:`pyramid_notebook.web.views`.
"""
from pyramid_notebook.web.views import *  # noqa: F401,F403
import pyramid_notebook.web.views as _impl  # noqa: E402


def __getattr__(name):  # the module's other (private or late) names, unchanged
    return getattr(_impl, name)
