"""``jupyterhub_config.py`` helpers: :func:`pre_spawn_hook`, ``SINGLEUSER_CMD``.

Kept at this dotted name for compatibility (sites, INI files and context files use it); the code
lives in :mod:`pyramid_notebook.hubside.spawn`.
"""
from pyramid_notebook.hubside.spawn import *  # noqa: F401,F403
import pyramid_notebook.hubside.spawn as _impl  # noqa: E402


def __getattr__(name):  # the module's other (private or late) names, unchanged
    return getattr(_impl, name)
