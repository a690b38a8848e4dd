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
