"""Sizes Jupyter would refuse: 414/431 pages before anything is relayed.

Tornado refuses an oversized request by closing the connection, which the site would report as a
dead notebook; checking first gives the browser a clear answer.
"""
from pyramid.httpexceptions import HTTPClientError, HTTPRequestURITooLong

from pyramid_notebook.core.pages import error_page

#: Longest path and query the proxy forwards, and most header bytes: tornado refuses more
#: (64 KiB of header block) by closing the connection, which would read as a dead notebook.
MAX_TARGET_LENGTH = 8192
MAX_HEADER_BYTES = 32 * 1024


class HTTPRequestHeaderFieldsTooLarge(HTTPClientError):
    """431 Request Header Fields Too Large (Pyramid has no class for it)."""

    code = 431
    title = "Request Header Fields Too Large"
    explanation = "The request's headers are too large."


def check_request_size(request):
    """Raise 414/431 error pages for requests larger than the notebook server accepts."""
    if len(request.environ.get("PATH_INFO", "")) + len(request.environ.get("QUERY_STRING", "")) > MAX_TARGET_LENGTH:
        raise error_page(HTTPRequestURITooLong, "Address too long",
                         f"Notebook addresses are at most {MAX_TARGET_LENGTH} characters long.")
    size = sum(len(name) + len(value) + 4 for name, value in request.headers.items())
    if size > MAX_HEADER_BYTES:
        raise error_page(HTTPRequestHeaderFieldsTooLarge, "Request headers too large",
                         f"The request's headers add up to more than {MAX_HEADER_BYTES // 1024} KiB.")
