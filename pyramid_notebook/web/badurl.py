"""Clear 400 pages for addresses Pyramid cannot even route (not UTF-8).

Pyramid decodes the path as UTF-8 while matching routes, before any view runs;
an address such as ``/notebook/api/contents/%ff%fe`` raises
:class:`pyramid.exceptions.URLDecodeError`, which without an exception view is a
500 with a traceback in the log. :func:`includeme` registers an exception view
that answers 400 with the library's error page for the notebook routes only
(the paths of the ``notebook_proxy`` and ``shutdown_notebook`` routes), so the
rest of the site keeps its own error handling. A site that wants the same
everywhere registers :func:`bad_url_view` itself (the demo does)::

    config.add_exception_view(bad_url_view, context=URLDecodeError)
"""
from pyramid.exceptions import URLDecodeError
from pyramid.httpexceptions import HTTPBadRequest
from pyramid_notebook.core.pages import error_page
from pyramid_notebook.core.routes import (  # noqa: F401 (importable from here as before)
    DEFAULT_PREFIXES, PROXY_ROUTE_NAME, SHUTDOWN_ROUTE_NAME, notebook_path_prefixes,
)

#: Name of the view predicate that matches requests under the notebook routes' paths.
PREDICATE = "pyramid_notebook_path"
def is_notebook_path(request) -> bool:
    """True if the raw (undecoded) path lies under a notebook route."""
    raw = request.environ.get("PATH_INFO", "")  # a latin-1 str: safe to look at, never decoded
    return raw.startswith(notebook_path_prefixes(request.registry))


class NotebookPathPredicate:
    """View predicate ``pyramid_notebook_path=True``: the request is under a notebook route."""

    def __init__(self, value, config):
        self.value = bool(value)

    def text(self):
        """Describes the predicate in conflict and introspection reports."""
        return f"{PREDICATE} = {self.value}"

    phash = text

    def __call__(self, context, request):
        return is_notebook_path(request) == self.value


def bad_url_view(exc, request):
    """400 with the library's error page for an address that is not valid UTF-8."""
    return error_page(HTTPBadRequest, "Bad request",
                      "The address is not valid: it contains bytes that are not UTF-8 text.")


def includeme(config):
    """Answer URLDecodeError under the notebook routes with 400 (called by the package's includeme)."""
    config.add_view_predicate(PREDICATE, NotebookPathPredicate)
    config.add_exception_view(bad_url_view, context=URLDecodeError, **{PREDICATE: True})
