"""Helpers for ``jupyterhub_config.py``: pass the site's notebook context to the spawned server.

Runs inside JupyterHub, not in the web site. With any spawner::

    from pyramid_notebook.hubspawn import pre_spawn_hook, SINGLEUSER_CMD
    c.Spawner.pre_spawn_hook = pre_spawn_hook
    c.Spawner.cmd = SINGLEUSER_CMD          # or ["python", "-m", "pyramid_notebook.server.hub_singleuser"]

The site starts servers with ``user_options = {"pyramid_notebook": context}``. The hook checks the
context and puts it in the server's environment (``PYRAMID_NOTEBOOK_CONTEXT``), where
:mod:`pyramid_notebook.server.hub_extension` picks it up. A hub without pyramid_notebook
installed can do the same with ``c.Spawner.environment = {"PYRAMID_NOTEBOOK_CONTEXT": lambda
spawner: json.dumps(spawner.user_options.get("pyramid_notebook", {}))}``, without the checks.
"""
import json
import sys

from pyramid_notebook.core.context import check_context

__all__ = ["CONTEXT_ENV", "OPTIONS_KEY", "SINGLEUSER_CMD", "check_context", "pre_spawn_hook"]

#: Environment variable read by the single-user extension.
CONTEXT_ENV = "PYRAMID_NOTEBOOK_CONTEXT"
#: ``user_options`` key the site uses.
OPTIONS_KEY = "pyramid_notebook"
#: The single-user command, with this Python (local process spawners).
SINGLEUSER_CMD = [sys.executable, "-m", "pyramid_notebook.server.hub_singleuser"]
def pre_spawn_hook(spawner):
    """``c.Spawner.pre_spawn_hook``: the context from ``user_options`` into the environment.

    A server started without our ``user_options`` (e.g. by a person on the hub's own pages) is
    left as it is. A malformed context fails the spawn with a message the site shows.
    """
    context = (spawner.user_options or {}).get(OPTIONS_KEY)
    environment = dict(spawner.environment)
    environment.pop(CONTEXT_ENV, None)
    if context is not None:
        environment[CONTEXT_ENV] = json.dumps(check_context(context))
    spawner.environment = environment
