"""The intent checks of destructive actions (``has_intent``, ``require_intent``, ``get_csrf_token``,
``ConfirmationRequired``), as documented in the README.

Kept at this dotted name for compatibility; the code lives in :mod:`pyramid_notebook.web.intent`.
"""
from pyramid_notebook.web.intent import *  # noqa: F401,F403
import pyramid_notebook.web.intent as _impl  # noqa: E402


def __getattr__(name):  # the module's other (private or late) names, unchanged
    return getattr(_impl, name)
