"""The fork server's own process: import Jupyter once, then fork a notebook daemon per request.

Started as ``python pyramid_notebook/forkserver/serve.py serve FOLDER`` (see :mod:`pyramid_notebook.backends.local.forkclient`
for the design and the manager's side). Nothing here runs in the web server.
"""
import contextlib
import json
import os
import signal
import socket
import struct
import sys
import time

from pyramid_notebook.core.statefolder import STDERR_LOG, STDOUT_LOG
from pyramid_notebook.core.forkprotocol import DAEMON_SCRIPT, fingerprint, idle_exit, short_path, socket_name
from pyramid_notebook.forkserver import page_preload, zygotes

#: Modules a notebook server needs, imported once before any fork.
PRELOAD = ("notebook.app", "jupyter_server.serverapp", "jupyter_server.services.kernels.kernelmanager",
           "jupyter_server.services.sessions.sessionmanager", "jupyter_server.services.contents.largefilemanager",
           "jupyterlab_server", "jupyter_client.ioloop", "nbformat", "pyramid_notebook.server.notebook_daemon",
           "pyramid_notebook.server.identity", "pyramid_notebook.server.websocket",
           "pyramid_notebook.server.static_files", "pyramid_notebook.server.warm_kernel",
           "pyramid_notebook.server.shells", "pyramid_notebook.server.spare_kernel", "pyramid_notebook.server.audit",
           "pyramid_notebook.server.config", "setproctitle")
#: Jupyter's usual server extensions: imported too if installed (``jupyterlab.labapp`` alone asks
#: node for its yarn configuration at import, a second on a small machine).
PRELOAD_OPTIONAL = ("jupyterlab.labapp", "jupyterlab.handlers.announcements", "jupyter_lsp.serverextension",
                    "jupyter_server_terminals.app", "terminado", "notebook_shim.shim", "jupyter_server.gateway.managers",
                    "IPython.core.completer", "httpx", "jinja2", "pygments.lexers.python",
                    # What kernels import: the kernel zygote each server forks (server/kernel_zygote.py)
                    # then shares these pages with every user's server (pyramid_notebook.kernel_fork).
                    "ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.debugger", "debugpy",
                    "sqlite3", "pdb", "pydoc", "pyramid_notebook.server.kernel_provisioner")

#: The fork server's folder, opened once (``[fd]``): its sockets are named relative to it.
DIR_FD = []
#: ... and its path (``[path]``), for the notebook servers it forks.
FOLDER = []


def check_pristine() -> list:
    """Reasons why forking now could share state between users (empty when safe)."""
    import threading

    problems = []
    if threading.active_count() != 1:
        problems.append(f"{threading.active_count()} threads")
    zmq = sys.modules.get("zmq")
    if zmq is not None and getattr(zmq.Context, "_instance", None) is not None:
        problems.append("a ZMQ context")
    import asyncio

    with contextlib.suppress(RuntimeError):
        if asyncio.get_event_loop_policy()._local._loop is not None:  # noqa: SLF001 - no public way to ask
            problems.append("an asyncio event loop")
    from traitlets.config import SingletonConfigurable

    for cls in _subclasses(SingletonConfigurable):
        if cls.initialized():
            problems.append(f"a {cls.__name__} instance")
    return problems


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _peer_uid(conn) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _read_line(conn, limit=1 << 20) -> dict:
    data = b""
    while not data.endswith(b"\n") and len(data) < limit:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return json.loads(data)


def serve(folder: str) -> int:
    """Import Jupyter, then answer ``ping``/``start``/``stop`` requests on the control socket."""
    import importlib

    started = time.monotonic()
    # As ipykernel sets it for its kernels: debugpy (preloaded for them) otherwise warns at import.
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    for name in PRELOAD:
        importlib.import_module(name)
    for name in PRELOAD_OPTIONAL:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    page_preload.warm_page_caches()
    built = fingerprint()
    # Move everything imported so far out of the collector's sight: children's collections then
    # neither scan it (a forked server holds more modules than one that imported what it needed)
    # nor write to its pages (which would copy them, losing the memory shared with us).
    import gc

    gc.collect()
    gc.freeze()
    problems = check_pristine()
    if problems:
        print(f"fork server refuses to serve: importing left {', '.join(problems)}", file=sys.stderr)
        return 1
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    DIR_FD[:], FOLDER[:] = [dir_fd], [folder]
    name = socket_name(sys.executable)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # the socket is created 0600: only our uid may even connect
    try:
        tmp = f".{name}.{os.getpid()}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        listener.bind(short_path(dir_fd, tmp))
        listener.listen(64)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)  # atomically replaces a stale socket
        # The socket file's own inode (a socket's fstat is the socket's, never its path's): at exit
        # the path is removed only if it is still ours, not a newer fork server's.
        bound = os.stat(name, dir_fd=dir_fd).st_ino
    finally:
        os.umask(old_umask)
    print(f"fork server {os.getpid()} ready in {time.monotonic() - started:.2f} s: {json.dumps(built)}",
          file=sys.stderr, flush=True)
    zygotes.prefork(dir_fd, close_in_child=(listener,))
    listener.settimeout(idle_exit())
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:  # unused for long: give the memory back; the next launch spawns a fresh one
            conn, stop = None, True
        if conn is None:
            break
        zygotes.reap()
        with conn:
            try:
                conn.settimeout(10)
                if _peer_uid(conn) != os.getuid():
                    continue
                message = _read_line(conn)
                answer, stop = _handle(message, built, listener, conn)
                conn.sendall(json.dumps(answer).encode() + b"\n")
            except Exception as e:  # a bad request never ends the server
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps({"ok": False, "error": repr(e)}).encode() + b"\n")
                continue
        if stop:
            break
    with contextlib.suppress(OSError):
        if os.stat(name, dir_fd=dir_fd).st_ino == bound:
            os.unlink(name, dir_fd=dir_fd)
    return 0


def _handle(message, built, listener, conn):
    op = message.get("op")
    if op == "ping":
        answer = {"ok": True, "pid": os.getpid(), "fingerprint": built}
        if message.get("check"):
            # The site's watcher asks whether a deploy changed our files or packages since we imported
            # them: it then replaces us before the next launch finds out the slow way.
            answer["stale"] = fingerprint() != built
        return answer, False
    if op == "stop":
        return {"ok": True, "pid": os.getpid()}, True
    if op == "zygote":  # a notebook server we forked asks for the site's kernel zygote (forkserver/zygotes.py)
        if fingerprint() != built:
            return {"ok": False, "error": "stale"}, False
        return zygotes.zygote_for(message.get("modules"), DIR_FD[0], message.get("pshell"),
                                  close_in_child=(listener, conn)), False
    if op != "start":
        return {"ok": False, "error": f"unknown op {op!r}"}, False
    if message.get("python") != built["python"] or fingerprint() != built:
        # Another interpreter asks, or packages were upgraded or our files changed since we imported them.
        return {"ok": False, "error": "stale", "fingerprint": built}, True
    return {"ok": True, "pid": _fork_daemon(message, listener, conn)}, False


def _fork_daemon(message, listener, conn) -> int:
    """Fork, detach and run the notebook daemon; return the daemon's pid."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked process
        try:
            os.close(read_end)
            listener.close()
            conn.close()
            os.setsid()
            grandchild = os.fork()
            if grandchild:
                os.write(write_end, str(grandchild).encode())
                os._exit(0)
            os.close(write_end)
            _become_daemon(message)
        finally:
            os._exit(1)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(child, 0)
    if not data:
        raise RuntimeError("the daemon could not be forked")
    return int(data)


def _become_daemon(message):  # pragma: no cover - runs in the forked process
    """In the grandchild: shed everything inherited, then run the notebook like the daemon does."""
    import setproctitle

    pid_file, work_folder = message["pid_file"], message["work_folder"]
    port, kill_timeout = int(message["port"]), int(message["kill_timeout"])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD, signal.SIGPIPE, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    os.umask(0o022)
    os.chdir(work_folder)
    # stdin from /dev/null and the logs as stdout/stderr, as daemonocle does; then nothing else inherited.
    null = os.open(os.devnull, os.O_RDWR)
    # The logs are state: beside the pid file, out of the folder Jupyter serves.
    state_folder = os.path.dirname(os.path.abspath(pid_file))
    out = os.open(os.path.join(state_folder, STDOUT_LOG), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    err = os.open(os.path.join(state_folder, STDERR_LOG), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for fd, target in ((null, 0), (out, 1), (err, 2)):
        os.dup2(fd, target)
    os.closerange(3, os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") < 65536 else 65536)
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    argv = [message["python"], DAEMON_SCRIPT, "start", pid_file, work_folder, str(port), str(kill_timeout)]
    setproctitle.setproctitle(" ".join(argv))  # before the environment changes: it finds argv's memory by it
    os.environ.clear()
    os.environ.update(message.get("env") or {})
    sys.argv = argv[1:]
    fd = os.open(pid_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()}\n")
    from pyramid_notebook.server import kernel_provisioner
    from pyramid_notebook.server.notebook_daemon import run_notebook

    # Kernels are then forked from the site's zygote, which this fork server forks (forkserver/zygotes.py).
    kernel_provisioner.FORK_SERVER = (FOLDER[0], socket_name(message["python"]))

    code = 0
    try:
        run_notebook(pid_file, work_folder, port, kill_timeout, list(message.get("extra_args") or []))
    except SystemExit as e:  # Jupyter has logged why
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # the log is where a daemon's failure shows
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(OSError):
            with open(pid_file) as f:
                if f.read().strip() == str(os.getpid()):
                    os.unlink(pid_file)  # as daemonocle does on exit
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)

