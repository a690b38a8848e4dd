"""The optional parts of the package and the ``pip install`` line each one needs.

A part that needs an extra (the uvicorn runner and the ASGI relay: ``asgi``; the uWSGI relay:
``uwsgi``; JupyterHub's single-user server: ``hub``) imports its dependencies under
:func:`needs_extra`, so that a missing one is one sentence naming the command to run, not a
``ModuleNotFoundError`` traceback.
"""
import contextlib

#: The top-level modules each extra of setup.py brings.
EXTRA_MODULES = {
    "asgi": ("uvicorn", "a2wsgi", "websockets"),
    "uwsgi": ("wsproto",),
    "hub": ("jupyterhub", "jupyterhub_idle_culler"),
}

#: What needs each extra, as the message names it.
EXTRA_USERS = {
    "asgi": "egg:pyramid_notebook#uvicorn (and pyramid_notebook.asgi.serve_websocket)",
    "uwsgi": "pyramid_notebook.uwsgi.serve_websocket (the uWSGI relay)",
    "hub": "The JupyterHub backend's single-user server (python -m pyramid_notebook.server.hub_singleuser)",
}


class MissingExtra(ModuleNotFoundError):
    """A module of an extra is not installed; the message says which ``pip install`` fixes it."""


def missing_extra_message(extra: str, what: str, module: str) -> str:
    """One line: ``<what> needs ... pip install "pyramid_notebook[<extra>]"``."""
    return (f'{what} needs pyramid_notebook\'s "{extra}" extra (no module named {module!r}): '
            f'pip install "pyramid_notebook[{extra}]"')


@contextlib.contextmanager
def needs_extra(extra: str, what: str = ""):
    """Turn the ``ModuleNotFoundError`` of one of ``extra``'s modules into :class:`MissingExtra`."""
    try:
        yield
    except MissingExtra:
        raise
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top not in EXTRA_MODULES[extra]:
            raise
        raise MissingExtra(missing_extra_message(extra, what or EXTRA_USERS[extra], top), name=e.name) from None
