"""Find, check and end notebook daemon processes — only ones we started.

A pid file can outlive its process and the pid can be reused by anything, so we
only ever signal a pid whose command line shows it is our daemon serving that
very pid file.
"""
import os
import signal

import psutil

DAEMON_SCRIPT = "notebook_daemon.py"


def read_pid_file(pid_file: str):
    """Return the pid in ``pid_file`` or ``None`` if missing or unreadable."""
    try:
        with open(pid_file, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def get_daemon_process(pid_file: str, pid=None):
    """Return the live ``psutil.Process`` of the daemon behind ``pid_file``, or ``None``.

    ``None`` when there is no pid, the process is gone or a zombie, or the pid now
    belongs to some unrelated process.
    """
    pid = pid if pid is not None else read_pid_file(pid_file)
    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    pid_file = os.path.abspath(pid_file)
    if any(arg.endswith(DAEMON_SCRIPT) for arg in cmdline) and pid_file in cmdline:
        return proc
    if _forked_daemon_title(pid, pid_file):
        return proc
    return None


def _forked_daemon_title(pid: int, pid_file: str) -> bool:
    """True for a daemon forked by the fork server, which titles itself as the CLI would run it.

    setproctitle rewrites the command line as one string, ``PYTHON .../notebook_daemon.py start
    PID_FILE WORK_FOLDER PORT KILL_TIMEOUT`` (psutil then splits it at spaces, which would break
    paths with spaces, so the raw ``/proc/<pid>/cmdline`` is read). Only that exact shape is
    accepted: a single argument naming our script, the ``start`` action and then this pid file.
    """
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read().rstrip(b"\0")
    except OSError:
        return False
    if b"\0" in raw:
        return False  # several arguments: an ordinary process, judged by the rule above
    title = raw.decode("utf-8", "surrogateescape")
    marker = f"{os.sep}{DAEMON_SCRIPT} start {pid_file} "
    return marker in title and " " in title.split(marker, 1)[0]


def remove_stale_pid_file(pid_file: str) -> bool:
    """Delete ``pid_file`` if no daemon of ours runs behind it. Return True if removed."""
    if os.path.exists(pid_file) and get_daemon_process(pid_file) is None:
        try:
            os.unlink(pid_file)
        except FileNotFoundError:
            pass
        return True
    return False


def terminate_daemon(pid_file: str, timeout: float = 10.0) -> bool:
    """Stop the daemon behind ``pid_file``; return True if one was running.

    SIGTERM lets Jupyter shut its kernels down and save state; if the server
    hangs past ``timeout`` we SIGKILL it together with the kernels it started,
    so nothing is orphaned.
    """
    proc = get_daemon_process(pid_file)
    if proc is None:
        remove_stale_pid_file(pid_file)
        return False
    try:
        children = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    try:
        proc.send_signal(signal.SIGTERM)
        # A server frozen by SIGSTOP (a debugger, a hung launch) handles the SIGTERM once it may run.
        proc.send_signal(signal.SIGCONT)
    except psutil.NoSuchProcess:
        pass
    gone, alive = psutil.wait_procs([proc], timeout=timeout)
    if alive:
        for p in [proc] + children:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs([proc] + children, timeout=5)
    else:
        # Jupyter stops its kernels on SIGTERM; give stragglers a moment, then end them.
        _, leftover = psutil.wait_procs(children, timeout=5)
        for p in leftover:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
    # daemonocle removes the pid file on a clean exit; after SIGKILL we do.
    remove_stale_pid_file(pid_file)
    return True


def pid_alive(pid) -> bool:
    """True if ``pid`` exists and is not a zombie.

    Asked on every proxied request, so on Linux it reads ``/proc/<pid>/stat``
    directly (~10 us; psutil's ``Process()`` costs ~200 us).
    """
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
    # The state letter follows the ")" that ends the command name.
    return stat[stat.rindex(b")") + 2:stat.rindex(b")") + 3] not in (b"Z", b"X")


def process_is_stopped(pid) -> bool:
    """True if ``pid`` is stopped (SIGSTOP, a tracer): it holds its port but never answers."""
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError, TypeError):
        return False
