"""Where the package's own files are: the scripts other processes are started from, and data folders.

One place for these, because process checks recognise our daemons and fork servers by the script
named on their command line — including the names an earlier version of the package used, so that
processes started before an upgrade are still listed and stopped.
"""
import os

#: The installed ``pyramid_notebook`` folder.
PACKAGE_FOLDER = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The notebook daemon, run as a script (``python .../notebook_daemon.py start ...``).
DAEMON_SCRIPT = os.path.join(PACKAGE_FOLDER, "server", "notebook_daemon.py")
#: The fork server, run as a script (``python .../serve.py serve FOLDER``).
FORKSERVER_SCRIPT = os.path.join(PACKAGE_FOLDER, "forkserver", "serve.py")
#: Path endings of fork server scripts, this version's and the earlier flat layout's.
FORKSERVER_SCRIPT_ENDINGS = (os.path.join("forkserver", "serve.py"), os.path.join("pyramid_notebook", "forkserver.py"))
#: The shipped JupyterLab extensions (shutdown control, save bridge).
LABEXTENSION_FOLDER = os.path.join(PACKAGE_FOLDER, "labextensions")


def is_forkserver_script(path: str) -> bool:
    """True if ``path`` (from a command line) is a fork server script of this or an earlier version."""
    return any(path.endswith(ending) for ending in FORKSERVER_SCRIPT_ENDINGS)
