"""Check the ``notebook_context`` a site passes to ``launch_notebook``.

A malformed value used to surface far away: a ``TypeError`` while writing
``context.json`` (a traceback), or a daemon that died at start. It is a mistake
in the site's code, so the user gets a 500 page that names the key, and the site's
log gets the same message.
"""
import json
from collections.abc import Mapping

#: Keys whose value must be a string.
STRING_KEYS = ("startup", "greeting", "notebook_path", "allow_origin", "websocket_url", "shutdown_url")
#: Keys whose value must be a whole number of seconds, and their minimum.
SECONDS_KEYS = {"kill_timeout": 1, "idle_timeout": 0, "kernel_idle_timeout": 0}


class InvalidNotebookContext(TypeError):
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
