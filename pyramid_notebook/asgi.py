"""The site under uvicorn: :func:`serve_websocket`, :func:`from_ini`, :func:`make_asgi_app`, the
``egg:pyramid_notebook#uvicorn`` runner (:func:`serve_paste`).

Kept at this dotted name for compatibility (sites and INI files use it); the code lives in
:mod:`pyramid_notebook.relays.asgi_app`, :mod:`~pyramid_notebook.relays.asgi_approval`,
:mod:`~pyramid_notebook.relays.asgi_runner` and :mod:`~pyramid_notebook.relays.asgi_logs`.
"""
from pyramid_notebook.relays.asgi_app import DEFAULT_THREADS, NotebookASGI, from_ini, make_asgi_app  # noqa: F401
from pyramid_notebook.relays.asgi_approval import (  # noqa: F401
    HANDSHAKE_ENVIRON_KEY, Upstream, WebsocketApproved, authorize, serve_websocket, websocket_environ,
)
from pyramid_notebook.relays.asgi_logs import quiet_spurious_handshake_errors  # noqa: F401
from pyramid_notebook.relays.asgi_runner import HOST_VARIABLE, PORT_VARIABLE, serve_paste  # noqa: F401

_MODULES = ("asgi_app", "asgi_approval", "asgi_runner", "asgi_logs")


def __getattr__(name):  # the other (private or late) names of those modules, unchanged
    import importlib

    for module in _MODULES:
        implementation = importlib.import_module(f"pyramid_notebook.relays.{module}")
        if hasattr(implementation, name):
            return getattr(implementation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
