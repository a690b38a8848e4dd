"""The site the benchmark drives: pyramid_notebook in a minimal Pyramid app.

The user comes from an ``X-Bench-User`` header so that many users can be launched
without a login round trip. Never deploy this: it trusts a header. The benchmark
binds it to 127.0.0.1 only.
"""
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
        return config.make_wsgi_app()


def make_app(notebook_folder, websocket_proxy=""):
    """The app with benchmark settings."""
    return main({}, **{
        "pyramid_notebook.notebook_folder": notebook_folder,
        "pyramid_notebook.port_base": "25000",
        "pyramid_notebook.port_range": "200",
        "pyramid_notebook.max_notebooks": "100",
        "pyramid_notebook.websocket_proxy": websocket_proxy,
    })


def uwsgi_application():
    """Entry point for uWSGI (``module = bench.app:uwsgi_application()``)."""
    import os

    return make_app(os.environ["BENCH_NOTEBOOK_FOLDER"], "pyramid_notebook.uwsgi.serve_websocket")
