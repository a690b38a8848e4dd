"""The launch's error pages: what the user is told when their notebook cannot be started or stopped.

One description per failure for every path that launches (the redirect, the progress page, the
contents API), so the user always reads the same page with the same status.
"""
import errno
import logging

from pyramid.httpexceptions import HTTPBadRequest, HTTPInsufficientStorage, HTTPInternalServerError, \
    HTTPServiceUnavailable

from pyramid_notebook.backends.base import BackendUnavailable, NoFreePort, NotebookStartError, TooManyNotebooks
from pyramid_notebook.core.names import BadUsername
from pyramid_notebook.core.pages import error_page

logger = logging.getLogger(__name__)


def describe_launch_error(e):
    """``(status, title, message, details)`` of the error page for a failed launch; re-raises others."""
    if isinstance(e, BadUsername):
        return 400, "Unusable username", str(e), ""
    if isinstance(e, OSError):  # the notebook folder is read-only or full
        logger.error("Notebook folder unusable: %s", e)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            return 507, "The notebook folder is full", \
                "There is no space left for your notebook's files. Ask the site's administrator.", ""
        return 503, "The notebook folder cannot be written", \
            f"Your notebook cannot be started or stopped right now ({e.strerror or e}). " \
            "Ask the site's administrator.", ""
    if isinstance(e, (NoFreePort, TooManyNotebooks)):
        return 503, "No notebook slot free", str(e), ""
    if isinstance(e, BackendUnavailable):
        logger.error("Notebook service unavailable: %s", e)
        return 503, "The notebook service is unavailable", f"{e} Try again in a few minutes.", ""
    if isinstance(e, NotebookStartError):
        logger.error("Notebook failed to start: %s\n%s", e, e.log_tail)
        return 500, "The notebook failed to start", str(e) + (" The end of its log follows." if e.log_tail else ""), \
            e.log_tail
    logger.exception("Notebook failed to start", exc_info=e)
    return 500, "The notebook failed to start", "An unexpected error occurred; the site's log has the details.", ""


def launch_error_page(status, title, message, details=""):
    """The error page (an HTTP exception) for a launch that failed with ``status``."""
    exc_class = {400: HTTPBadRequest, 503: HTTPServiceUnavailable, 507: HTTPInsufficientStorage}.get(
        status, HTTPInternalServerError)
    return error_page(exc_class, title, message, details)
