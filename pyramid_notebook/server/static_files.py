"""Jupyter server extension: tell the web site where this notebook's static files are.

A notebook page loads some 8 MB of JavaScript, CSS and fonts. Relaying that through
a second Python HTTP server costs a third of the throughput, while the site can
send the same files from disk (``sendfile`` under uWSGI) faster than Jupyter does.
Which files Jupyter serves at which URL depends on the notebook's own interpreter,
extensions and configuration, so the running server publishes its static routes
into its context file once it has started: URL prefix, the folders searched in
order, and the cache rules Jupyter applies. The site serves a file from disk only
when it finds it exactly as Jupyter would; anything else still goes to Jupyter.

The user's own files (``files/``, downloads and what notebooks link to) are published the same
way when Jupyter serves them with its stock file handler from a folder: the folder and the
headers that handler sends (its ``sandbox`` Content-Security-Policy above all, which keeps a
user's HTML file from scripting the site).

The daemon enables this extension through ``ServerApp.jpserver_extensions`` and
names its pid file (the context file lies beside it) in the ``PYRAMID_NOTEBOOK_PID_FILE``
environment variable.
"""
import os
import time

from pyramid_notebook.core.context import FILES_HEADERS, STATIC_FILES_KEY
from pyramid_notebook.core.contextfile import read_context, write_context

#: Environment variable naming the daemon's pid file; the context file lies beside it.
PID_FILE_ENV = "PYRAMID_NOTEBOOK_PID_FILE"
#: Context key holding the published routes.
CONTEXT_KEY = STATIC_FILES_KEY
#: File name asked of tornado's router to learn which handler serves a prefix.
PROBE_NAME = "pyramid-notebook-probe.js"


def _jupyter_server_extension_points():
    return [{"module": __name__}]


def _load_jupyter_server_extension(serverapp):
    # The pages this server sends load only the lab extensions that belong in the shell.
    from pyramid_notebook.server import page_config

    page_config.install(serverapp)
    pid_file = os.environ.get(PID_FILE_ENV)
    if pid_file:
        # Other extensions add their routes while loading; publish once all have loaded.
        serverapp.io_loop.add_callback(publish, serverapp, pid_file)


def _candidate_prefixes(serverapp) -> list:
    """URL prefixes under which Jupyter and its extensions serve static files."""
    from jupyter_server.utils import url_path_join

    prefixes = [serverapp.web_app.settings["static_url_prefix"]]
    for apps in serverapp.extension_manager.extension_apps.values():
        for app in apps:
            if getattr(app, "static_paths", None):
                prefixes.append(app.static_url_prefix)
            if getattr(app, "labextensions_url", None):
                prefixes.append(url_path_join(serverapp.base_url, app.labextensions_url))
    return list(dict.fromkeys(p.rstrip("/") + "/" for p in prefixes))


def _handler_for(web_app, prefix: str):
    """What tornado's own router picks for a file below ``prefix`` (handler class, kwargs, path args)."""
    from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

    probe = HTTPServerRequest(start_line=RequestStartLine("GET", prefix + PROBE_NAME, "HTTP/1.1"),
                              headers=HTTPHeaders({"Host": "127.0.0.1"}))
    return web_app.find_handler(probe)


def _route_for(web_app, prefix: str):
    """The route tornado itself picks for files below ``prefix``, if it is a plain file finder."""
    from jupyter_server.base.handlers import FileFindHandler

    delegate = _handler_for(web_app, prefix)
    handler_class = getattr(delegate, "handler_class", None)
    kwargs = getattr(delegate, "handler_kwargs", None) or {}
    # Only a FileFindHandler whose whole tail is the file name: its rules are the ones we copy.
    if not (isinstance(handler_class, type) and issubclass(handler_class, FileFindHandler)):
        return None
    path_args = [a if isinstance(a, bytes) else str(a).encode() for a in getattr(delegate, "path_args", [])]
    if path_args != [PROBE_NAME.encode()] or "path" not in kwargs:
        return None
    roots = [kwargs["path"]] if isinstance(kwargs["path"], str) else list(kwargs["path"])
    return {
        "prefix": prefix,
        "roots": [os.path.abspath(os.path.expanduser(r)) for r in roots],
        "no_cache_paths": list(kwargs.get("no_cache_paths") or []),
    }


#: The only headers the stock files/ handler adds to tornado's (see :func:`_files_route`).


def _files_route(serverapp):
    """The ``files/`` route if Jupyter's stock :class:`AuthenticatedFileHandler` serves it from a folder.

    A subclass, another contents manager's handler, or extra configured headers may follow other
    rules: those requests stay Jupyter's to answer.
    """
    from jupyter_server.base.handlers import AuthenticatedFileHandler
    from jupyter_server.utils import url_path_join

    web_app = serverapp.web_app
    prefix = url_path_join(serverapp.base_url, "files/")
    delegate = _handler_for(web_app, prefix)
    kwargs = getattr(delegate, "handler_kwargs", None) or {}
    if getattr(delegate, "handler_class", None) is not AuthenticatedFileHandler or \
            not isinstance(kwargs.get("path"), str) or set(web_app.settings.get("headers") or {}) - set(FILES_HEADERS):
        return None
    # Jupyter's own answer for the policy: an instance that is never run, only asked.
    handler = AuthenticatedFileHandler.__new__(AuthenticatedFileHandler)
    handler.application = web_app
    return {
        "prefix": prefix,
        "roots": [os.path.abspath(os.path.expanduser(kwargs["path"]))],
        "no_cache_paths": [],
        "kind": "files",
        "headers": {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": handler.content_security_policy},
    }


def immutable_under_base_url(serverapp) -> list:
    """Jupyter's immutable static prefixes, each lab extension's also under the server's base URL.

    jupyterlab_server marks every lab extension's ``static`` folder immutable (its files are named by
    their content hash) as ``/lab/extensions/<name>/static``, without the base URL, so under a base
    URL such as ``/notebook/`` no request matched it: every notebook page, even a second visit,
    revalidated the extensions' files (some 14, two waves of round trips). Set on the server's own
    settings too, so that Jupyter's handler and the site's answer agree.
    """
    from jupyter_server.utils import url_path_join

    settings = serverapp.web_app.settings
    found = list(settings.get("static_immutable_cache", []))
    base = serverapp.base_url
    fixed = list(dict.fromkeys(found + [url_path_join(base, p) for p in found if not p.startswith(base)]))
    settings["static_immutable_cache"] = fixed
    return fixed


def static_routes(serverapp) -> dict:
    """The server's static file routes: ``{"routes": [...], "immutable": [...]}``.

    Each route is ``{"prefix", "roots", "no_cache_paths"}`` (the ``files/`` route also has
    ``"kind": "files"`` and the ``headers`` its handler adds), taken from the handler
    tornado's router actually picks for that prefix, so that when two extensions
    register the same URL the one Jupyter uses is the one published.
    """
    routes = [_route_for(serverapp.web_app, prefix) for prefix in _candidate_prefixes(serverapp)]
    routes.append(_files_route(serverapp))
    return {
        "routes": [r for r in routes if r],
        "immutable": immutable_under_base_url(serverapp),
    }


def publish(serverapp, pid_file: str) -> None:
    """Add :func:`static_routes` to the context file of this (still current) server."""
    try:
        routes = static_routes(serverapp)
        context = read_context(pid_file) or {}
        if context.get("pid") != os.getpid():
            return  # a newer start owns the file now
        context[CONTEXT_KEY] = dict(routes, published_at=time.time())
        write_context(pid_file, context)
    except Exception:  # the site then proxies static files as before
        serverapp.log.exception("Could not publish static file routes beside %s", pid_file)
