"""The site the benchmark drives: pyramid_notebook in a minimal Pyramid app.

The user comes from an ``X-Bench-User`` header so that many users can be launched
without a login round trip. Never deploy this: it trusts a header. The benchmark
binds it to 127.0.0.1 only.

``/floor/...`` is the yardstick: the least any proxy inside this web server can do
(find the user's notebook, forward with the standard library's http.client on a kept-alive
connection, return the answer), with no framework, no checks and no streaming. In nginx accel
mode nginx asks ``/floor-grant/...`` instead: the grant for the user's notebook, no framework,
no checks (``bench/run``'s AccelSite routes ``/floor/notebook/`` there).
Whatever the real proxy adds beyond it is ours to cut; the rest is the price of a
second Python HTTP server in the path.
"""
import http.client
import threading

from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPForbidden, HTTPFound

from pyramid_notebook.views import launch_notebook, notebook_proxy, shutdown_notebook

STARTUP = "a = 'foo'\nb = 'bar'\n"


def _user(request):
    user = request.headers.get("X-Bench-User")
    if not user:
        raise HTTPForbidden()
    return user


def shell(request):
    """Launch with one of two contexts (``?variant=2`` differs), to measure restarts."""
    nb = {"startup": STARTUP, "greeting": f"bench {request.params.get('variant', '1')}"}
    return launch_notebook(request, _user(request), notebook_context=nb)


def shutdown(request):
    shutdown_notebook(request, _user(request))
    return HTTPFound("/")


def proxy(request):
    return notebook_proxy(request, _user(request))


class FloorProxy:
    """WSGI middleware: ``/floor/<path>`` -> the user's notebook ``/<path>``, bare."""

    def __init__(self, app, manager):
        self.app = app
        self.manager = manager
        self.local = threading.local()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/floor-grant/"):  # nginx accel mode's yardstick: a grant, no framework, no checks
            from pyramid_notebook.relays.accel import grant_uri

            context = self.manager.get_notebook_status(environ["HTTP_X_BENCH_USER"])
            start_response("200 OK", [("Content-Length", "0"),
                                      ("X-Accel-Redirect", grant_uri("/_pyramid_notebook/", context))])
            return [b""]
        if not path.startswith("/floor/"):
            return self.app(environ, start_response)
        context = self.manager.get_notebook_status(environ["HTTP_X_BENCH_USER"])
        conns = self.local.__dict__.setdefault("conns", {})
        conn = conns.get(context["http_port"])
        if conn is None:
            conn = conns[context["http_port"]] = http.client.HTTPConnection("127.0.0.1", context["http_port"])
        conn.request("GET", path[len("/floor"):], headers={"Authorization": "token " + context["token"]})
        response = conn.getresponse()
        body = response.read()
        start_response(f"{response.status} {response.reason}", [
            (k, v) for k, v in response.getheaders() if k.lower() not in ("connection", "transfer-encoding")])
        return [body]


def main(global_config, **settings):
    """WSGI app factory."""
    with Configurator(settings=settings) as config:
        config.include("pyramid_notebook")
        config.add_route("shell", "/shell")
        config.add_route("shutdown_notebook", "/notebook/shutdown")
        config.add_route("notebook_proxy", "/notebook/*remainder")
        config.add_view(shell, route_name="shell")
        config.add_view(shutdown, route_name="shutdown_notebook")
        config.add_view(proxy, route_name="notebook_proxy")
        return FloorProxy(config.make_wsgi_app(), config.registry.pyramid_notebook_manager)


def make_app(notebook_folder, websocket_proxy="", accel_redirect=""):
    """The app with benchmark settings (``accel_redirect``: nginx accel mode)."""
    return main({}, **{
        "pyramid_notebook.accel_redirect": accel_redirect,
        "pyramid_notebook.notebook_folder": notebook_folder,
        "pyramid_notebook.port_base": "25000",
        "pyramid_notebook.port_range": "200",
        "pyramid_notebook.max_notebooks": "100",
        "pyramid_notebook.websocket_proxy": websocket_proxy,
        "pyramid_notebook.fork_server": "true",
    })


def uwsgi_application():
    """Entry point for uWSGI (``module = bench.app:uwsgi_application()``)."""
    import os

    return make_app(os.environ["BENCH_NOTEBOOK_FOLDER"], "pyramid_notebook.uwsgi.serve_websocket")


def asgi_application(notebook_folder):
    """The bench app under uvicorn (``pyramid_notebook.asgi``), websockets through the site."""
    from pyramid_notebook.asgi import make_asgi_app

    return make_asgi_app(make_app(notebook_folder, "pyramid_notebook.asgi.serve_websocket"))


def make_hub_app(hub_url, hub_api_token):
    """The app on the JupyterHub backend (issue 15): the same views, the hub's servers."""
    return main({}, **{
        "pyramid_notebook.backend": "jupyterhub",
        "pyramid_notebook.hub_url": hub_url,
        "pyramid_notebook.hub_api_token": hub_api_token,
        "pyramid_notebook.startup_timeout": "300",
        "pyramid_notebook.websocket_proxy": "pyramid_notebook.uwsgi.serve_websocket",
    })
