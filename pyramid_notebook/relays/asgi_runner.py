"""``egg:pyramid_notebook#uvicorn``: the ``paste.server_runner`` that serves a site's INI file with uvicorn
(``pserve development.ini``), websockets included."""
import os

from pyramid_notebook.core.extras import MissingExtra, needs_extra
from pyramid_notebook.relays.asgi_body import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY
from pyramid_notebook.relays.asgi_logs import quiet_spurious_handshake_errors

#: Size of the WSGI thread pool (``pyramid_notebook.relays.asgi_app.DEFAULT_THREADS``, which needs the extra).
DEFAULT_THREADS = 32

#: Environment variables the paste server runner honours, like the demo's waitress runner.
PORT_VARIABLE = "PYRAMID_NOTEBOOK_DEMO_PORT"
HOST_VARIABLE = "PYRAMID_NOTEBOOK_DEMO_HOST"
#: ``[server:main]`` options passed on to ``uvicorn.Config``, with their types.
_UVICORN_OPTIONS = {
    "ws_max_size": int, "ws_max_queue": int, "ws_ping_interval": float, "ws_ping_timeout": float,
    "ws_per_message_deflate": "bool", "proxy_headers": "bool", "forwarded_allow_ips": str, "root_path": str,
    "timeout_keep_alive": int, "limit_concurrency": int, "backlog": int, "access_log": "bool",
}


def serve_paste(wsgi_app, global_conf, listen="127.0.0.1:8080", threads=DEFAULT_THREADS,
                max_body_size=DEFAULT_MAX_BODY, body_timeout=DEFAULT_BODY_TIMEOUT, **options):
    """``paste.server_runner`` ``egg:pyramid_notebook#uvicorn``: serve the site with uvicorn.

    ``listen = host:port``; ``$PYRAMID_NOTEBOOK_DEMO_PORT`` and ``$PYRAMID_NOTEBOOK_DEMO_HOST``
    override them. ``threads`` sizes the WSGI thread pool; ``max_body_size`` (bytes) and
    ``body_timeout`` (seconds) bound the request bodies read before a thread is taken;
    ``ws_max_size``, ``ws_ping_interval``, ``proxy_headers``, ``forwarded_allow_ips``, ``root_path``,
    ``access_log`` ... go to uvicorn.
    Logging is left to the INI file's logging sections. Without the ``asgi`` extra, start-up stops
    with one line naming ``pip install "pyramid_notebook[asgi]"``.
    """
    from pyramid.settings import asbool

    uvicorn, make_asgi_app = _load()

    host, _, port = str(listen).strip().split()[0].rpartition(":")
    host = os.environ.get(HOST_VARIABLE, "").strip() or host.strip("[]") or "127.0.0.1"
    port = int(os.environ.get(PORT_VARIABLE, "").strip() or port or 8080)
    kwargs = {}
    for key, value in options.items():
        kind = _UVICORN_OPTIONS.get(key)
        if kind is None:
            raise ValueError(f"egg:pyramid_notebook#uvicorn does not know the option {key!r}; known: listen, "
                             f"threads, max_body_size, body_timeout, {', '.join(sorted(_UVICORN_OPTIONS))}")
        kwargs[key] = asbool(value) if kind == "bool" else kind(value)
    # One process: say so (wsgi.multiprocess false), so that pyramid_debugtoolbar stays on in development.
    app = make_asgi_app(wsgi_app, threads=int(threads), multiprocess=False, max_body_size=int(max_body_size),
                        body_timeout=float(body_timeout))
    config = uvicorn.Config(app, host=host, port=port, log_config=None, **kwargs)
    quiet_spurious_handshake_errors()
    uvicorn.Server(config).run()


def _load():
    """``(uvicorn, make_asgi_app)``; without the ``asgi`` extra, exit with the line naming it."""
    try:
        with needs_extra("asgi"):
            import uvicorn

            from pyramid_notebook.relays.asgi_app import make_asgi_app
    except MissingExtra as e:  # one line, no traceback
        raise SystemExit(str(e)) from None
    return uvicorn, make_asgi_app


def server_factory(global_conf, **options):
    """``paste.server_factory`` ``egg:pyramid_notebook#uvicorn``: :func:`serve_paste` with the same
    options, whose missing extra stops ``pserve`` before it loads the site (exit status 1)."""
    _load()
    return lambda wsgi_app: serve_paste(wsgi_app, global_conf, **options)
