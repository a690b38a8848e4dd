"""The notebook context: its keys and types, and the one check every process applies to it.

The site's view passes a ``notebook_context`` to ``launch_notebook``; the web process completes it
(:func:`pyramid_notebook.web.views.fill_context_defaults`), a backend adds its runtime keys, and the
notebook server (or JupyterHub's spawn hook) reads it back.

A malformed value used to surface far away: a ``TypeError`` while writing ``context.json`` (a
traceback), or a daemon that died at start. It is a mistake in the site's code, so the user gets a
500 page that names the key, and the site's log gets the same message. A context that arrives from
elsewhere (JupyterHub's ``user_options``) goes through the same check, plus the rules for the keys
the web process fills in (:func:`check_context`).
"""
import json
import re
from collections.abc import Mapping

from pyramid_notebook.core.contextparts import default_notebook_name  # noqa: F401 (part of the context's rules)

#: Keys whose value must be a string.
STRING_KEYS = ("startup", "greeting", "notebook_path", "allow_origin", "websocket_url", "shutdown_url", "notebook_name",
               "context_hash")
#: Keys whose value must be a whole number of seconds, and their minimum.
SECONDS_KEYS = {"kill_timeout": 1, "idle_timeout": 0, "kernel_idle_timeout": 0}


#: Keys a backend adds to a running notebook's context; never part of what the site asked for.
RUNTIME_KEYS = ("http_port", "pid", "token", "started_at", "stopped_at", "state", "notebook_name", "username",
                "starting_at", "static_files", "warm_kernel", "warm_session", "warm_session_error", "shell_key")
#: Lists of CSP sources / origins: they go into a header, so no separators or spaces inside one.
SOURCE_LIST_KEYS = ("frame_ancestors", "parent_origins")
_SOURCE = re.compile(r"^[A-Za-z0-9'*:/.\[\]_-]+$")
#: Key under which the notebook server publishes where its static files are (``server/static_files.py``)
#: for the relays that send them from disk (``relays/static.py``).
STATIC_FILES_KEY = "static_files"
#: Headers Jupyter's files handler may add that a from-disk answer can reproduce.
FILES_HEADERS = ("X-Content-Type-Options", "Content-Security-Policy")
#: Where a backend reaches a notebook when the context names no host (a local daemon).
LOCAL_HOST = "127.0.0.1"


class InvalidNotebookContext(TypeError, ValueError):
    """The notebook context is not a dict of the documented keys and types."""


def _seconds(key, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidNotebookContext(f"notebook_context[{key!r}] must be a whole number of seconds, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise InvalidNotebookContext(
            f"notebook_context[{key!r}] must be a whole number of seconds, got {value!r}") from None
    if number < minimum:
        raise InvalidNotebookContext(f"notebook_context[{key!r}] must be at least {minimum}, got {number}")
    return number


def validate_notebook_context(notebook_context) -> dict:
    """Return a plain dict copy of ``notebook_context``; raise :class:`InvalidNotebookContext` if malformed."""
    if notebook_context is None:
        return {}
    if not isinstance(notebook_context, Mapping):
        raise InvalidNotebookContext(f"notebook_context must be a dict, got {type(notebook_context).__name__}")
    context = dict(notebook_context)
    for key, value in context.items():
        if not isinstance(key, str):
            raise InvalidNotebookContext(f"notebook_context keys must be strings, got {key!r}")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise InvalidNotebookContext(f"notebook_context[{key!r}] cannot be stored as JSON: {e}") from None
    for key in STRING_KEYS:
        if key in context and not isinstance(context[key], str):
            raise InvalidNotebookContext(
                f"notebook_context[{key!r}] must be a string, got {type(context[key]).__name__}")
    paths = context.get("extra_template_paths", [])
    if not isinstance(paths, (list, tuple)) or not all(isinstance(p, str) for p in paths):
        raise InvalidNotebookContext("notebook_context['extra_template_paths'] must be a list of folder names")
    if "extra_template_paths" in context:
        context["extra_template_paths"] = list(paths)
    for key, minimum in SECONDS_KEYS.items():
        if key in context:
            context[key] = _seconds(key, context[key], minimum)
    path = context.get("notebook_path")
    if path is not None and not (path.startswith("/") and path.endswith("/")):
        raise InvalidNotebookContext(f"notebook_context['notebook_path'] must start and end with '/', got {path!r}")
    return context


def check_context(context) -> dict:
    """Check a complete context from outside the web process (JupyterHub's ``user_options``).

    The rules of :func:`validate_notebook_context`, plus those of the keys the web process fills in
    (CSP source lists, the notebook's file name). Raises :class:`InvalidNotebookContext` (a
    ``ValueError``) whose message starts with ``pyramid_notebook:``; returns ``context``.
    """
    if not isinstance(context, dict):
        raise InvalidNotebookContext("pyramid_notebook: user_options['pyramid_notebook'] must be an object")
    try:
        validate_notebook_context(context)
    except InvalidNotebookContext as e:
        raise InvalidNotebookContext(f"pyramid_notebook: {e}") from None
    for key in SOURCE_LIST_KEYS:
        value = context.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and _SOURCE.match(v) for v in value):
            raise InvalidNotebookContext(f"pyramid_notebook: context key {key!r} must be a list of origins or CSP "
                                         f"sources, got {value!r}")
    name = context.get("notebook_name", "")
    if name and ("/" in name or name.startswith(".") or not name.endswith(".ipynb")):
        raise InvalidNotebookContext(f"pyramid_notebook: unusable notebook name {name!r}")
    return context


def site_context(context: dict, kill_timeout: int, idle_timeout: int) -> dict:
    """What the site asked for, ready for a backend: runtime keys dropped, time-outs filled in."""
    context = {k: v for k, v in context.items() if k not in RUNTIME_KEYS}
    context["kill_timeout"] = int(context.get("kill_timeout") or kill_timeout)
    context.setdefault("idle_timeout", idle_timeout)
    return context


def upstream_host(context: dict) -> str:
    """The host a relay reaches the notebook at: the context's ``http_host`` (the hub's proxy) or loopback."""
    return context.get("http_host") or LOCAL_HOST
