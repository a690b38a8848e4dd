"""The fork server's wire protocol and identity, shared by the web process and the fork server.

See :mod:`pyramid_notebook.backends.local.forkclient` for the design. One JSON object per line on a
unix socket (mode 0600, in a 0700 folder inside the notebook folder).
"""
import hashlib
import json
import os
import socket
import sys

from pyramid_notebook.core import paths

#: Seconds without any request after which a fork server exits (the site's watcher spawns a fresh
#: one; a stopped site leaves no fork server behind for long).
IDLE_EXIT = 6 * 3600
#: Environment variable overriding :data:`IDLE_EXIT` in the fork server (seconds): tests, and sites
#: that want the memory back sooner.
IDLE_EXIT_ENV = "PYRAMID_NOTEBOOK_FORK_SERVER_IDLE_EXIT"


def idle_exit() -> float:
    """:data:`IDLE_EXIT`, or the positive number of seconds :data:`IDLE_EXIT_ENV` says."""
    try:
        value = float(os.environ.get(IDLE_EXIT_ENV) or IDLE_EXIT)
    except ValueError:
        return IDLE_EXIT
    return value if value > 0 else IDLE_EXIT
#: Folder (inside the notebook folder) holding fork servers' sockets and pid files.
FOLDER_NAME = ".forkserver"
DAEMON_SCRIPT = paths.DAEMON_SCRIPT
#: Packages whose version (and, for ours, whose files) the fingerprint covers.
PACKAGES = ("pyramid_notebook", "notebook", "jupyter_server")


class ForkServerError(RuntimeError):
    """The fork server is missing, stale or did not answer; launch the plain way instead."""


def fingerprint(python=None) -> dict:
    """What a fork server was built from: interpreter, package versions, our files' mtimes."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    files = hashlib.sha256()
    # Every module of the package but the demo: whatever the fork server or its children import.
    for folder, subfolders, names in os.walk(paths.PACKAGE_FOLDER):  # subfolders sorted below: a stable order
        subfolders[:] = sorted(name for name in subfolders if name not in ("demo", "__pycache__", "labextensions"))
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                stat = os.stat(path)
                files.update(f"{path} {stat.st_mtime_ns} {stat.st_size}\n".encode())
    return {"python": python or sys.executable, "versions": versions, "package": paths.PACKAGE_FOLDER,
            "files": files.hexdigest()[:16]}


def socket_name(python: str) -> str:
    """One fork server per interpreter: its socket's file name."""
    return "fs-" + hashlib.sha256(python.encode()).hexdigest()[:12] + ".sock"


def short_path(dir_fd: int, name: str) -> str:
    # A unix socket path may be at most 107 bytes; deep notebook folders are longer.
    return f"/proc/self/fd/{dir_fd}/{name}"


def request(folder: str, python: str, message: dict, timeout: float = 10.0, name: str = "") -> dict:
    """Send ``message`` to the fork server of ``python`` (or on the socket ``name``) under ``folder``; its answer.

    Raises :class:`ForkServerError` when there is no server or it does not answer in time.
    """
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise ForkServerError(f"no fork server folder: {e}") from None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(short_path(dir_fd, name or socket_name(python)))
            s.sendall(json.dumps(message).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        answer = json.loads(data)
    except TimeoutError:
        error = ForkServerError(f"the fork server did not answer within {timeout:g} s")
        error.hung = True
        raise error from None
    except (OSError, ValueError) as e:
        raise ForkServerError(f"the fork server did not answer: {e}") from None
    finally:
        os.close(dir_fd)
    if not isinstance(answer, dict):
        raise ForkServerError("the fork server gave a malformed answer")
    return answer


