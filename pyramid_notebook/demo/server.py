"""Waitress for the demo, with the port overridable from the environment."""
import os

import waitress

PORT_VARIABLE = "PYRAMID_NOTEBOOK_DEMO_PORT"


def serve(wsgi_app, global_conf, **settings):
    """``paste.server_runner``: waitress, listening on ``$PYRAMID_NOTEBOOK_DEMO_PORT`` if set."""
    port = os.environ.get(PORT_VARIABLE, "").strip()
    if port:
        host = settings.get("listen", "127.0.0.1:0").rsplit(":", 1)[0]
        settings["listen"] = f"{host}:{port}"
    return waitress.serve_paste(wsgi_app, global_conf, **settings)
