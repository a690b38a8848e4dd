"""``bad_url_view``, the 400 page for ``URLDecodeError`` to register site-wide, as documented in the README.

Kept at this dotted name for compatibility; the checks now live where they apply:
:mod:`pyramid_notebook.web.badurl` (addresses that are not UTF-8), :mod:`pyramid_notebook.web.limits`
(sizes) and :mod:`pyramid_notebook.relays.websocket` (websocket handshakes).
"""
from pyramid_notebook.relays.websocket import check_websocket_handshake, websocket_handshake_error  # noqa: F401
from pyramid_notebook.web.badurl import bad_url_view, includeme, is_notebook_path  # noqa: F401
from pyramid_notebook.web.limits import check_request_size  # noqa: F401
