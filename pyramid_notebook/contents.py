"""Read and write a user's notebook files from the site (``read_notebook``, ``write_notebook``,
``create_notebook``, ``list_files``, ``delete_file``), as documented in the README.

Kept at this dotted name for compatibility; the code lives in :mod:`pyramid_notebook.web.contents`.
"""
from pyramid_notebook.web.contents import *  # noqa: F401,F403
import pyramid_notebook.web.contents as _impl  # noqa: E402


def __getattr__(name):  # the module's other (private or late) names, unchanged
    return getattr(_impl, name)
