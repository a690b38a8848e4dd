"""A fork server: notebook daemons forked from a process that has already imported Jupyter.

Importing ``jupyter_server`` and ``notebook`` takes 2.4-3.3 s on a small machine, nearly
all of a notebook server's start. The fork server pays that once per notebook folder and
interpreter; each launch is then a ``fork()`` (a few milliseconds) and Jupyter's own
start-up proper.

Run as ``python forkserver/serve.py serve SOCKET_FOLDER`` by :class:`ForkServerClient`, never
by hand. Before it forks it has only *imported* modules: no event loop, no thread, no ZMQ
context, no config or traitlets singleton, no socket but its own control socket (checked
at start, see :mod:`pyramid_notebook.forkserver.process`). Each child detaches as daemonocle's daemons do
(``setsid``, a second fork, every inherited fd closed, signal handlers reset, the
environment and working folder from the request) and then runs the daemon's own
:func:`~pyramid_notebook.server.notebook_daemon.run_notebook`, under an honest command
line (``python .../notebook_daemon.py start PID_FILE WORK_FOLDER PORT KILL_TIMEOUT``) so
the pid checks of :mod:`pyramid_notebook.core.process` trust it exactly as a daemon started
from the command line.

The control socket (mode 0600, in a 0700 folder inside the notebook folder) speaks one
JSON object per line; only processes of the same uid are answered (``SO_PEERCRED``).
"""
import contextlib
import logging
import os
import subprocess
import time

from pyramid_notebook.core import paths
from pyramid_notebook.core.forkprotocol import FOLDER_NAME, IDLE_EXIT, ForkServerError, fingerprint, request, socket_name  # noqa: F401

logger = logging.getLogger(__name__)

def spawn(folder: str, python: str, log_file: str) -> subprocess.Popen:
    """Start a fork server for ``python`` under ``folder`` (returns at once; it imports for seconds)."""
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    with open(log_file, "ab") as log:
        return subprocess.Popen([python, paths.FORKSERVER_SCRIPT, "serve", folder], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, close_fds=True, cwd=folder, start_new_session=True)


class ForkServerClient:
    """The manager's handle on the fork server of one notebook folder and interpreter."""

    #: Seconds a fork server being spawned is given to import Jupyter before another spawn is tried.
    SPAWN_GRACE = 120.0
    #: Seconds a start request may take before the fork server counts as hung (and is replaced).
    START_TIMEOUT = 60.0
    #: Seconds without a new spawn after one died before it ever listened (a broken install, an
    #: interpreter that cannot import Jupyter): spawning again at every launch would only burn
    #: seconds of CPU each time, while launches start the plain way anyway.
    FAILED_BACKOFF = 300.0

    def __init__(self, notebook_folder: str, python: str):
        self.folder = os.path.join(notebook_folder, FOLDER_NAME)
        self.python = python
        self.name = socket_name(python)
        self.pid_file = os.path.join(self.folder, self.name[:-len(".sock")] + ".pid")
        self.log_file = os.path.join(self.folder, self.name[:-len(".sock")] + ".log")
        self._spawned = None
        self._respawn = None
        self._failed_at = None

    def start_daemon(self, pid_file, work_folder, port, kill_timeout, extra_args=()) -> int:
        """Fork a notebook daemon; return its pid. Raises :class:`ForkServerError` to ask for a plain start.

        A missing, dead or stale fork server is noted for :meth:`respawn_if_needed`.
        """
        message = {"op": "start", "python": self.python, "pid_file": pid_file, "work_folder": work_folder,
                   "port": int(port), "kill_timeout": int(kill_timeout), "extra_args": list(extra_args),
                   "env": dict(os.environ)}
        try:
            # Generous: a fork is milliseconds, but a loaded machine must not make us start a user twice.
            answer = request(self.folder, self.python, message, timeout=self.START_TIMEOUT)
        except ForkServerError as e:
            self._respawn = "force" if getattr(e, "hung", False) else (self._respawn or "spawn")
            raise
        if not answer.get("ok"):
            if answer.get("error") == "stale":
                self._respawn = "force"
            raise ForkServerError(f"the fork server refused: {answer.get('error')}")
        return int(answer["pid"])

    def respawn_if_needed(self) -> None:
        """After a launch that could not use the fork server: (re)start it in the background.

        Called once that launch's own server is up, so the two do not compete for the CPU.
        """
        respawn, self._respawn = self._respawn, None
        if respawn:
            self.ensure_running(force=respawn == "force")

    def ping(self, timeout=2.0):
        """The fork server's ``{"pid", "fingerprint"}``, or ``None`` when it does not answer."""
        try:
            answer = request(self.folder, self.python, {"op": "ping"}, timeout=timeout)
        except ForkServerError:
            return None
        return answer if answer.get("ok") else None

    def ensure_running(self, force=False) -> None:
        """Spawn the fork server unless it answers or is already being spawned (never waits for it)."""
        import fcntl

        from pyramid_notebook.core.process import read_pid_file

        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        with open(os.path.join(self.folder, "spawn.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            socket_path = os.path.join(self.folder, self.name)
            if self._spawned is not None and self._spawned.poll() is not None:
                if self._spawned.returncode != 0 and not os.path.lexists(socket_path):
                    self._failed_at = time.monotonic()  # it died before it ever listened
                    logger.warning("The notebook fork server exited while starting (see %s); launches start "
                                   "the plain way, and it is not tried again for %g s", self.log_file,
                                   self.FAILED_BACKOFF)
                self._spawned = None  # reaped
            if not force and self._failed_at is not None and \
                    time.monotonic() - self._failed_at < self.FAILED_BACKOFF:
                return
            if not force and self.ping(timeout=0.5):
                return
            pid = read_pid_file(self.pid_file)
            proc = self._process(pid)
            if proc is not None:
                # It binds its socket once it has imported everything; we remove any old one first.
                booting = not os.path.lexists(socket_path) and time.time() - proc.create_time() < self.SPAWN_GRACE
                if booting and not force:
                    return
                self._kill(proc)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(socket_path)
            self._spawned = spawn(self.folder, self.python, self.log_file)
            with open(self.pid_file, "w") as f:
                f.write(f"{self._spawned.pid}\n")

    def wait_until_ready(self, timeout=60.0):
        """Block until the fork server answers (tests and benchmarks); return its ping answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.ping(timeout=1)
            if answer:
                return answer
            time.sleep(0.05)
        raise ForkServerError(f"the fork server did not answer within {timeout:g} s; see {self.log_file}")

    def stop(self) -> bool:
        """Stop the fork server (its notebook daemons keep running); return True if one ran."""
        from pyramid_notebook.core.process import read_pid_file

        proc = self._process(read_pid_file(self.pid_file))
        answered = False
        with contextlib.suppress(ForkServerError):
            answered = bool(request(self.folder, self.python, {"op": "stop"}, timeout=2).get("ok"))
        if proc is not None:
            self._kill(proc, gentle=answered)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pid_file)
        if self._spawned is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._spawned.wait(timeout=5)
        return answered or proc is not None

    def _process(self, pid):
        """The fork server behind ``pid``, only if its command line says it serves this folder."""
        import psutil

        if not pid:
            return None
        try:
            proc = psutil.Process(pid)
            cmdline = proc.cmdline()
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        ours = len(cmdline) >= 3 and paths.is_forkserver_script(cmdline[-3]) and cmdline[-2:] == ["serve", self.folder]
        return proc if ours and cmdline[0] == self.python else None

    @staticmethod
    def _kill(proc, gentle=False):
        import psutil

        try:
            if not gentle:
                proc.terminate()
            proc.wait(timeout=5)
            return
        except psutil.NoSuchProcess:
            return
        except psutil.TimeoutExpired:
            pass
        with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
            proc.kill()
            proc.wait(timeout=5)


def stop_all(notebook_folder: str) -> int:
    """Stop every fork server under ``notebook_folder``; return how many were running."""
    folder = os.path.join(notebook_folder, FOLDER_NAME)
    stopped = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(folder):
            if entry.startswith("fs-") and entry.endswith(".pid"):
                import psutil

                from pyramid_notebook.core.process import read_pid_file

                pid = read_pid_file(os.path.join(folder, entry))
                with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    python = psutil.Process(pid).cmdline()[0] if pid else None
                    if python and ForkServerClient(notebook_folder, python).stop():
                        stopped += 1
    return stopped
