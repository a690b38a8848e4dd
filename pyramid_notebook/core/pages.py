"""The library's error page, the same from whichever layer answers it (a view, a relay).

Rendered from ``error.html`` (:mod:`pyramid_notebook.core.templates`), which extends the shared layout.
"""
from pyramid_notebook.core.framing import refuse_framing
from pyramid_notebook.core.templates import render

#: The error page's template.
TEMPLATE = "error.html"


def page_html(title, message, details="") -> str:
    """The page's HTML, every part escaped (``details`` goes in a ``<pre>``)."""
    return render(TEMPLATE, title=title, message=message, details=details)


def error_page(exc_class, title, message, details=""):
    """An HTTP exception of ``exc_class`` (a :mod:`pyramid.httpexceptions` class) with the page.

    Other sites may not frame it (the site's own frames may: an embedded notebook shows its errors).
    """
    return refuse_framing(exc_class(body=page_html(title, message, details), content_type="text/html",
                                    charset="utf-8"), others_only=True)


class Refusal(Exception):
    """Raised by a view with the error answer to send as it is: a 403 of ours is not the site's forbidden
    view's (which sends browsers to its login page). ``config.include("pyramid_notebook")`` registers
    :func:`refusal_view` for it."""

    def __init__(self, response):
        super().__init__(response.status)
        self.response = response


def refusal_view(exc, request):
    """A :class:`Refusal`'s response."""
    return exc.response
