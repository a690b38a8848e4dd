"""``python -m pyramid_notebook.server.hub_singleuser``: JupyterHub's single-user server with
pyramid_notebook's extension enabled. Use it as the spawner's command (``c.Spawner.cmd``).

It adds this package's ``hub_config`` folder to ``JUPYTER_CONFIG_PATH``, whose
``jupyter_server_config.d`` file enables :mod:`pyramid_notebook.server.hub_extension` the way every
Jupyter extension enables itself (config files merge, so the notebook and JupyterLab stay
enabled), then runs ``jupyterhub-singleuser`` with the arguments given. The path is found in the
single-user environment itself, so the same command works in a Docker image or a Kubernetes pod
that has pyramid_notebook installed.
"""
import os
import sys

HUB_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hub_config")


def main():
    """Enable the extension and hand over to ``jupyterhub-singleuser``."""
    paths = [HUB_CONFIG] + [p for p in os.environ.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p]
    os.environ["JUPYTER_CONFIG_PATH"] = os.pathsep.join(paths)
    from pyramid_notebook.core.extras import MissingExtra, needs_extra

    try:
        with needs_extra("hub"):
            from jupyterhub.singleuser import main as singleuser_main
    except MissingExtra as e:  # one line for the spawner's log, not a traceback
        raise SystemExit(str(e)) from None

    return singleuser_main()


if __name__ == "__main__":
    sys.exit(main())
