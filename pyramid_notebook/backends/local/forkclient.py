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
import threading
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
    #: Seconds between the site's checks that its fork server still runs and is not stale (see
    #: :meth:`refresh`); each check is one ping on the unix socket.
    WATCH_INTERVAL = 30.0
    #: Seconds a launch waits for the watcher's first check (its spawn), so the site's first click is forked.
    FIRST_CHECK_WAIT = 10.0

    def __init__(self, notebook_folder: str, python: str):
        self.folder = os.path.join(notebook_folder, FOLDER_NAME)
        self.python = python
        self.name = socket_name(python)
        self.pid_file = os.path.join(self.folder, self.name[:-len(".sock")] + ".pid")
        self.log_file = os.path.join(self.folder, self.name[:-len(".sock")] + ".log")
        self._spawned = None
        self._respawn = None
        self._failed_at = None
        self._watch = None  # (stop event, thread) of watch()
        self._first_check = threading.Event()  # set once watch()'s thread has spawned or found one

    def start_daemon(self, pid_file, work_folder, port, kill_timeout, extra_args=()) -> int:
        """Fork a notebook daemon; return its pid. Raises :class:`ForkServerError` to ask for a plain start.

        A missing, dead or stale fork server is noted for :meth:`respawn_if_needed`.
        """
        # A fork server importing Jupyter right now (the site just started it) is ready sooner than
        # a plain start, which pays the same imports while competing with it for the CPU. A launch
        # in the site's first moments first lets the watcher spawn it (a Popen: milliseconds).
        if self._watch is not None:
            self._first_check.wait(self.FIRST_CHECK_WAIT)
        self.wait_while_booting()
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

    def wait_while_booting(self, timeout=None) -> bool:
        """If a fork server is being spawned (alive, not yet listening), wait until it listens.

        Returns True once it listens, False when none is booting or it did not make it in time
        (at most ``timeout`` seconds, by default until :attr:`SPAWN_GRACE` after its spawn).
        """
        from pyramid_notebook.core.process import read_pid_file

        socket_path = os.path.join(self.folder, self.name)
        if os.path.lexists(socket_path):
            return True
        proc = self._process(read_pid_file(self.pid_file))
        if proc is None:
            return False
        import psutil

        try:
            deadline = proc.create_time() + self.SPAWN_GRACE
        except psutil.NoSuchProcess:
            return False
        if timeout is not None:
            deadline = min(deadline, time.time() + timeout)
        while time.time() < deadline:
            if os.path.lexists(socket_path):
                return True
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    return False
            except psutil.NoSuchProcess:
                return False
            time.sleep(0.02)  # polls a file's existence, bounded by the deadline
        return os.path.lexists(socket_path)

    def refresh(self) -> None:
        """Spawn the fork server if it is not running, replace it if it is stale (never waits for it).

        What the site's watcher (:meth:`~pyramid_notebook.backends.local.manager.NotebookManager.on_site_start`)
        runs every :attr:`WATCH_INTERVAL` seconds, so that the first launch after a deploy or after the
        fork server exited is a forked start too.
        """
        answer = self.ping(timeout=2.0, check=True)
        if answer is None:
            self.ensure_running()
        elif answer.get("stale"):
            logger.info("The notebook fork server %s is stale (files or packages changed): replacing it",
                        answer.get("pid"))
            self.ensure_running(force=True, replacing=answer.get("pid"))

    def watch(self, interval=None) -> None:
        """Start the fork server now and keep it current, in a daemon thread of this process.

        A launch that comes while the fork server still imports Jupyter waits for it
        (:meth:`wait_while_booting`) rather than paying the same imports beside it. Every
        ``interval`` seconds (:attr:`WATCH_INTERVAL`) the thread runs :meth:`refresh`: the fork server
        is replaced after its idle exit, a crash or a deploy before a user's click finds out.
        Several web processes may each watch: spawns are serialised by a file lock.
        """
        if self._watch is not None:
            return
        interval = self.WATCH_INTERVAL if interval is None else float(interval)
        stop = threading.Event()

        def run():
            while not stop.is_set():
                try:
                    self.refresh()
                except Exception as e:  # never a reason to stop watching: launches fall back to plain starts
                    logger.warning("Could not start the notebook fork server: %s", e)
                self._first_check.set()
                stop.wait(interval)

        thread = threading.Thread(target=run, name="pyramid_notebook fork server watcher", daemon=True)
        self._watch = (stop, thread)
        thread.start()

    def stop_watching(self) -> None:
        """Stop :meth:`watch`'s thread (the fork server itself keeps running)."""
        watch, self._watch = self._watch, None
        if watch is not None:
            watch[0].set()
            watch[1].join(timeout=30)

    def ping(self, timeout=2.0, check=False):
        """The fork server's ``{"pid", "fingerprint"}``, or ``None`` when it does not answer.

        ``check``: the answer also says whether it is ``stale`` (built from other files or packages).
        """
        try:
            message = {"op": "ping", "check": True} if check else {"op": "ping"}
            answer = request(self.folder, self.python, message, timeout=timeout)
        except ForkServerError:
            return None
        return answer if answer.get("ok") else None

    def ensure_running(self, force=False, replacing=None) -> None:
        """Spawn the fork server unless it answers or is already being spawned (never waits for it).

        ``force``: replace it anyway; with ``replacing`` (a pid), only if that one is still the current
        one (another web process may have replaced it since).
        """
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
            # Generous: on a loaded machine a healthy fork server may take a second to answer, and a
            # short time-out here killed it and imported Jupyter again. A dead or broken one refuses at once.
            if not force and self.ping(timeout=5.0):
                return
            pid = read_pid_file(self.pid_file)
            if replacing is not None and pid != replacing:
                return
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

    def zygote(self, modules, pshell, timeout=10.0) -> dict:
        """Ask the fork server for the site's kernel zygote of ``modules`` and ``pshell`` (forked now if it
        has none); its answer (``{"ok": true, "name", "pid"}``). See ``forkserver/zygotes.py``."""
        return request(self.folder, self.python, {"op": "zygote", "modules": modules, "pshell": pshell},
                       timeout=timeout)

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
                    cmdline = psutil.Process(pid).cmdline() if pid else []
                    python = cmdline[0] if cmdline else None  # empty: a zombie, nothing left to stop
                    if python and ForkServerClient(notebook_folder, python).stop():
                        stopped += 1
    return stopped
