"""Jupyter server extension: start the default notebook's kernel as soon as the server runs.

A kernel takes a second or more to start (importing IPython, then the context's startup
script, which typically bootstraps the whole Pyramid site). Started when the browser
opens the notebook, that second comes after the page has loaded. Started by the server
the moment it runs, it overlaps with the redirect and the page load.

The kernel is started through Jupyter's own session manager, for the default notebook's
path, so the page's ``SessionContext`` finds that session in ``api/sessions`` and attaches
to it instead of starting another kernel. The startup script runs from the IPython profile
startup folder, as for any kernel. A kernel that dies, is culled or is shut down is started
again on demand by Jupyter, as always.

Once the session exists its id is written into the context file under ``warm_session``
(or ``warm_session_error``), which the manager waits for before redirecting the browser,
so the page never races the session into being.
"""
import os
import time

from pyramid_notebook.core.contextfile import read_context, write_context
from pyramid_notebook.server.static_files import PID_FILE_ENV

#: Context key: id of the session started for the default notebook.
CONTEXT_KEY = "warm_session"
#: Context key: why the warm session could not be started.
ERROR_KEY = "warm_session_error"


def _jupyter_server_extension_points():
    return [{"module": __name__}]


def _load_jupyter_server_extension(serverapp):
    pid_file = os.environ.get(PID_FILE_ENV)
    context = read_context(pid_file) if pid_file else None
    if context and context.get("warm_kernel") and context.get("notebook_name"):
        serverapp.io_loop.add_callback(start_session, serverapp, pid_file, context["notebook_name"])


async def start_session(serverapp, pid_file: str, path: str) -> None:
    """Start a ``python3`` kernel session for ``path`` and record it in the context file."""
    started = time.monotonic()
    try:
        model = await serverapp.session_manager.create_session(
            path=path, name=path, type="notebook", kernel_name=serverapp.kernel_manager.default_kernel_name)
        update = {CONTEXT_KEY: model["id"]}
        serverapp.log.info("Warm kernel %s for %s in %.3f s", model["kernel"]["id"], path,
                           time.monotonic() - started)
    except Exception as e:  # the page then starts its kernel itself, as without this extension
        serverapp.log.exception("Could not start the kernel of %s ahead of the browser", path)
        update = {ERROR_KEY: repr(e)}
    context = read_context(pid_file) or {}
    if context.get("pid") == os.getpid():  # a newer start owns the file otherwise
        context.update(update)
        write_context(pid_file, context)
