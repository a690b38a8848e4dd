"""Waitress for the demo, with the port overridable from the environment."""
import os

import waitress

PORT_VARIABLE = "PYRAMID_NOTEBOOK_DEMO_PORT"
HOST_VARIABLE = "PYRAMID_NOTEBOOK_DEMO_HOST"


def serve(wsgi_app, global_conf, **settings):
    """``paste.server_runner``: waitress, listening on ``$PYRAMID_NOTEBOOK_DEMO_HOST``:``$PYRAMID_NOTEBOOK_DEMO_PORT``
    if set (``egg:pyramid_notebook#uvicorn`` is the demo's default server now)."""
    port = os.environ.get(PORT_VARIABLE, "").strip()
    host = os.environ.get(HOST_VARIABLE, "").strip()
    if port or host:
        default_host, _, default_port = settings.get("listen", "127.0.0.1:0").rpartition(":")
        settings["listen"] = f"{host or default_host}:{port or default_port}"
    return waitress.serve_paste(wsgi_app, global_conf, **settings)


def serve_uwsgi(wsgi_app, global_conf, **settings):
    """``paste.server_runner``: replace this process with uWSGI running the ``ini`` setting's file
    (hub.ini: hub/uwsgi.ini), so that ``pserve`` runs the demo with websockets through the site."""
    import shutil
    import sys

    here = os.path.dirname(sys.executable)
    uwsgi = os.path.join(here, "uwsgi") if os.path.exists(os.path.join(here, "uwsgi")) else shutil.which("uwsgi")
    if not uwsgi:
        raise SystemExit("uWSGI is missing: pip install pyramid_notebook[uwsgi]")
    os.execv(uwsgi, [uwsgi, "--ini", settings["ini"]])
