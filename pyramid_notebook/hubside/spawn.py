"""Helpers for ``jupyterhub_config.py``: pass the site's notebook context to the spawned server.

Runs inside JupyterHub, not in the web site. With any spawner::

    from pyramid_notebook.hubside.spawn import pre_spawn_hook, SINGLEUSER_CMD
    c.Spawner.pre_spawn_hook = pre_spawn_hook
    c.Spawner.cmd = SINGLEUSER_CMD          # or ["python", "-m", "pyramid_notebook.server.hub_singleuser"]

The site starts servers with ``user_options = {"pyramid_notebook": context}``. The hook checks the
context and puts it in the server's environment (``PYRAMID_NOTEBOOK_CONTEXT``), where
:mod:`pyramid_notebook.server.hub_extension` picks it up. A hub without pyramid_notebook
installed can do the same with ``c.Spawner.environment = {"PYRAMID_NOTEBOOK_CONTEXT": lambda
spawner: json.dumps(spawner.user_options.get("pyramid_notebook", {}))}``, without the checks.
"""
import json
import re
import sys

#: Environment variable read by the single-user extension.
CONTEXT_ENV = "PYRAMID_NOTEBOOK_CONTEXT"
#: ``user_options`` key the site uses.
OPTIONS_KEY = "pyramid_notebook"
#: The single-user command, with this Python (local process spawners).
SINGLEUSER_CMD = [sys.executable, "-m", "pyramid_notebook.server.hub_singleuser"]
_STRINGS = ("startup", "greeting", "notebook_name", "shutdown_url", "allow_origin", "context_hash")
#: Lists of CSP sources / origins: they go into a header, so no separators or spaces inside one.
_SOURCE_LISTS = ("frame_ancestors", "parent_origins")
_SOURCE = re.compile(r"^[A-Za-z0-9'*:/.\[\]_-]+$")


def check_context(context) -> dict:
    """Raise ``ValueError`` saying what is wrong with a context; return it when it is usable."""
    if not isinstance(context, dict):
        raise ValueError("pyramid_notebook: user_options['pyramid_notebook'] must be an object")
    for key in _STRINGS:
        if not isinstance(context.get(key, ""), str):
            raise ValueError(f"pyramid_notebook: context key {key!r} must be a string")
    for key in ("kill_timeout", "idle_timeout", "kernel_idle_timeout"):
        value = context.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"pyramid_notebook: context key {key!r} must be a whole number of seconds, "
                             f"got {value!r}")
    for key in _SOURCE_LISTS:
        value = context.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and _SOURCE.match(v) for v in value):
            raise ValueError(f"pyramid_notebook: context key {key!r} must be a list of origins or CSP "
                             f"sources, got {value!r}")
    name = context.get("notebook_name", "")
    if name and ("/" in name or name.startswith(".") or not name.endswith(".ipynb")):
        raise ValueError(f"pyramid_notebook: unusable notebook name {name!r}")
    return context


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
