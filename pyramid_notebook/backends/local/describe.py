"""What the local backend knows of each user's notebook, read from the notebook folder's state.

Shared by :meth:`NotebookManager.list_notebooks <pyramid_notebook.backends.local.manager.NotebookManager.list_notebooks>`
and the ``pyramid-notebook`` command line. Reading never signals a process; a stale pid file (its
process gone, or its pid now used by something else) is reported and, when asked, removed.
"""
import datetime
import os

import urllib3

from pyramid_notebook.backends.status import get_status
from pyramid_notebook.core import contextfile, statefolder
from pyramid_notebook.core.context import upstream_host
from pyramid_notebook.core.process import get_daemon_process, read_pid_file

PID_FILE_NAME = statefolder.PID_FILE_NAME


def iso_time(timestamp):
    """A UNIX time as an ISO 8601 UTC string (seconds), or None."""
    if not timestamp:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec="seconds")


def _last_activity(context):
    """Jupyter's own record of the last activity, asked over loopback with the secret."""
    status = get_status(upstream_host(context), context["http_port"], context.get("notebook_path"),
                        context.get("token", ""), timeout=urllib3.Timeout(connect=1, read=3))
    return status.get("last_activity") if status else None


def user_folders(notebook_folder):
    """``(folder name, state folder)`` of every user with notebook state.

    State lives in ``notebook_folder/.state/<user>/``; user folders that still hold
    the old layout's state (from before it moved) are listed too, so that their
    daemons can be seen and stopped after an upgrade.
    """
    if not os.path.isdir(notebook_folder):
        raise SystemExit(f"No such notebook folder: {notebook_folder}")
    found = {}
    for pid_file in statefolder.legacy_pid_files(notebook_folder) + statefolder.pid_files(notebook_folder):
        path = os.path.dirname(pid_file)
        if os.path.exists(pid_file) or os.path.exists(contextfile.get_context_file(pid_file)):
            found.setdefault(os.path.basename(path), []).append(path)
    for name in sorted(found):
        for path in found[name]:
            yield name, path


def _user_folder_of(state_path):
    parent = os.path.dirname(state_path)
    if os.path.basename(parent) == statefolder.STATE_FOLDER:
        return os.path.join(os.path.dirname(parent), os.path.basename(state_path))
    return state_path  # the old layout: state inside the user's folder


def describe(folder_name, path, clean=True) -> dict:
    """The state of one user's notebook; a stale pid file is noted and (if ``clean``) removed.

    ``path`` is the folder holding the pid file (the user's state folder).
    """
    pid_file = os.path.join(path, PID_FILE_NAME)
    context = contextfile.read_context(pid_file) or {}
    recorded_pid = read_pid_file(pid_file)
    proc = get_daemon_process(pid_file)
    info = {
        "user": context.get("username") or folder_name,
        "folder": _user_folder_of(path),
        "state_folder": path,
        "pid": proc.pid if proc else None,
        "port": context.get("http_port") if proc else None,
        "started": iso_time(context.get("started_at")),
        "last_activity": _last_activity(context) if proc and context.get("http_port") else None,
        "context_hash": context.get("context_hash"),
        "alive": proc is not None,
        "stale": None,
    }
    if proc is None and recorded_pid is not None:
        info["stale"] = f"pid {recorded_pid} in {PID_FILE_NAME} is not this folder's notebook daemon"
        if clean:
            os.unlink(pid_file)
            info["stale"] += " (pid file removed, process left alone)"
    return info


def find_user(notebook_folder, user):
    """``(folder name, state folder)`` of ``user`` (a folder name or a username); SystemExit if none."""
    for folder_name, path in user_folders(notebook_folder):
        context = contextfile.read_context(os.path.join(path, PID_FILE_NAME)) or {}
        if user in (folder_name, context.get("username")):
            return folder_name, path
    raise SystemExit(f"No notebook state for user {user!r} in {notebook_folder}")
