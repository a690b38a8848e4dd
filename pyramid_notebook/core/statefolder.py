"""Where a notebook's runtime state lives, out of reach of the user's file browser.

Jupyter serves ``notebook_folder/<user>/`` as the user's root: anything in there
shows in the file browser and the contents API, and the user can edit or delete
it. The daemon's state therefore lives in a private folder beside it::

    notebook_folder/
        .locks/                 flock files (start/stop, port choice)
        .state/<user>/          0700: notebook.pid, context.json (0600, holds the secret),
                                notebook.stdout.log, notebook.stderr.log, .jupyter/, .ipython/
        <user>/                 0700: the user's notebooks and files, nothing else of ours

Folder names come from :func:`pyramid_notebook.core.names.username_to_folder_name`,
which never starts a name with a dot, so no user folder can be ``.state`` or
``.locks``.

Earlier versions kept that state in the user's folder. :func:`migrate_user_folder`
moves it out on the next launch: a daemon still running from there is stopped
(only if its command line proves it is ours), the stale pid file is removed, and
the context, logs and configuration folders are moved into the state folder. It
only acts on a folder that carries the old layout's marker, moves nothing but
those fixed names, and never deletes or overwrites anything of the user's.
"""
import contextlib
import json
import os
import time

from pyramid_notebook.core.process import terminate_daemon

STATE_FOLDER = ".state"
PID_FILE_NAME = "notebook.pid"
CONTEXT_FILE_NAME = "context.json"
STDOUT_LOG = "notebook.stdout.log"
STDERR_LOG = "notebook.stderr.log"
#: The server's kernels forked from the site's kernel zygote, ``{kernel id: pid}`` (not its descendants).
FORKED_KERNELS_FILE = "forked-kernels.json"
#: What the old layout kept in the user's folder, besides the pid file.
LEGACY_STATE = (CONTEXT_FILE_NAME, STDOUT_LOG, STDERR_LOG, ".jupyter", ".ipython")
#: Where a name that already exists in the state folder is moved instead.
MIGRATED_FOLDER = "migrated"


def make_private_folders(*folders) -> None:
    """Create ``folders`` (and ``.state`` above a state folder) owner-only."""
    for folder in folders:
        parent = os.path.dirname(os.path.abspath(folder))
        if os.path.basename(parent) == STATE_FOLDER:
            os.makedirs(parent, mode=0o700, exist_ok=True)
        os.makedirs(folder, mode=0o700, exist_ok=True)


def pid_files(notebook_folder: str):
    """The pid file path of every user who has a state folder (whether or not it runs)."""
    root = os.path.join(notebook_folder, STATE_FOLDER)
    try:
        entries = sorted(os.listdir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [os.path.join(root, entry, PID_FILE_NAME) for entry in entries
            if os.path.isdir(os.path.join(root, entry))]


def legacy_pid_files(notebook_folder: str):
    """Pid files of the old layout (``notebook_folder/<user>/notebook.pid``) still on disk."""
    try:
        entries = sorted(os.listdir(notebook_folder))
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        if entry.startswith("."):
            continue
        folder = os.path.join(notebook_folder, entry)
        if has_legacy_state(folder):
            found.append(os.path.join(folder, PID_FILE_NAME))
    return found


def has_legacy_state(work_folder: str) -> bool:
    """True if ``work_folder`` still holds state of the old layout.

    The marker is our own: a pid file, the daemon's Jupyter config naming our
    identity provider, or a ``context.json`` carrying a ``context_hash``. A user's
    file that merely shares a name is not enough.
    """
    if os.path.isfile(os.path.join(work_folder, PID_FILE_NAME)):
        return True
    with contextlib.suppress(OSError):
        with open(os.path.join(work_folder, ".jupyter", "jupyter_server_config.json"), encoding="utf-8") as f:
            if "ProxyIdentityProvider" in f.read(65536):
                return True
    try:
        with open(os.path.join(work_folder, CONTEXT_FILE_NAME), encoding="utf-8") as f:
            context = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(context, dict) and "context_hash" in context


def migrate_user_folder(work_folder: str, state_folder: str) -> list:
    """Move old-layout state from ``work_folder`` into ``state_folder``; return what moved.

    Call with the user's lock held. A daemon still running from the old pid file is
    stopped first (it would otherwise keep writing into the user's folder).
    """
    if not has_legacy_state(work_folder):
        return []
    legacy_pid = os.path.join(work_folder, PID_FILE_NAME)
    terminate_daemon(legacy_pid, timeout=10)  # signals only our own daemon of that pid file
    with contextlib.suppress(FileNotFoundError):
        if os.path.isfile(legacy_pid):
            os.unlink(legacy_pid)  # stale by now; a pid file is no user's work
    make_private_folders(state_folder)
    moved = []
    for name in LEGACY_STATE:
        source = os.path.join(work_folder, name)
        if not os.path.lexists(source):
            continue
        target = os.path.join(state_folder, name)
        if os.path.lexists(target):
            keep = os.path.join(state_folder, MIGRATED_FOLDER)
            make_private_folders(keep)
            target = os.path.join(keep, f"{name}.{time.strftime('%Y%m%d-%H%M%S')}.{os.getpid()}")
        os.rename(source, target)  # same file system: atomic, nothing copied, nothing lost
        moved.append(name)
    return moved
