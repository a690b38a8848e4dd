"""The library's own small HTML pages: errors, and the frame of the confirmation and progress pages.

One template for every page the library answers itself, whichever layer raises it (a view, a relay).
"""
import html

from pyramid_notebook.core.framing import refuse_framing

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>{message}</p>{details}</body></html>
"""


def page_html(title, message, details="") -> str:
    """The page's HTML, every part escaped (``details`` goes in a ``<pre>``)."""
    extra = f"<pre>{html.escape(details)}</pre>" if details else ""
    return PAGE.format(title=html.escape(title), message=html.escape(message), details=extra)


def error_page(exc_class, title, message, details=""):
    """An HTTP exception of ``exc_class`` (a :mod:`pyramid.httpexceptions` class) with the page.

    Other sites may not frame it (the site's own frames may: an embedded notebook shows its errors).
    """
    return refuse_framing(exc_class(body=page_html(title, message, details), content_type="text/html",
                                    charset="utf-8"), others_only=True)
