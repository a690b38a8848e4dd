"""Start, find and stop one daemonized Jupyter server per user."""
import contextlib
import fcntl
import logging
import os
import secrets
import subprocess
import time

import urllib3

from pyramid_notebook.core.kernelpreload import site_preload
from pyramid_notebook.core import contextfile, paths
from pyramid_notebook.core.pools import close_idle
from pyramid_notebook.core import statefolder
from pyramid_notebook.backends.local.forkclient import ForkServerClient, ForkServerError
from pyramid_notebook.backends.base import NotebookBackend, NotebookStartError, TooManyNotebooks
from pyramid_notebook.backends.shells import ShellOpenError, open_shell
from pyramid_notebook.core.contextparts import context_digest, same_server
from pyramid_notebook.backends.local.startwait import WARM_SESSION_WAIT, StartWait  # noqa: F401 (importable here)
from pyramid_notebook.backends.local.ports import NoFreePort, pick_port, port_is_listening
from pyramid_notebook.core.settings import NotebookSettings, default_python
from pyramid_notebook.core.process import (
    get_daemon_process, pid_alive, process_is_stopped, remove_stale_pid_file, terminate_daemon,
)
from pyramid_notebook.core.context import RUNTIME_KEYS, site_context  # noqa: F401 (RUNTIME_KEYS: kept importable)
from pyramid_notebook.core.names import username_to_folder_name

DAEMON_SCRIPT = paths.DAEMON_SCRIPT
LOCK_FOLDER = ".locks"
#: Seconds the warm-up waits for the fork server (it imports Jupyter meanwhile) before forking the zygote.
WARM_TIMEOUT = 180.0
#: Folder in ``notebook_folder`` with one private state folder per user (see :mod:`pyramid_notebook.core.statefolder`).
STATE_FOLDER = statefolder.STATE_FOLDER
#: Context keys the manager and daemon add; they never count as a context change.
#: The progress page's record of a background start, in the user's state folder.
LAUNCH_RECORD = "launch.json"

logger = logging.getLogger(__name__)


__all__ = ["NotebookManager", "NotebookStartError", "NoFreePort", "TooManyNotebooks"]


class NotebookManager(StartWait, NotebookBackend):
    """Manage per-user notebook daemons under ``notebook_folder``.

    Each user gets ``notebook_folder/<user>/``, the folder Jupyter serves, holding
    only their own files. The daemon's pid file, ``context.json``, logs and Jupyter
    and IPython configuration live in ``notebook_folder/.state/<user>/``, out of reach
    of the notebook's file browser and contents API. All methods are safe to call from many
    threads and web server processes at once: a per-user file lock serialises
    starts and stops of the same user.
    """

    #: Starts are tracked beside the user's pid file (see :attr:`NotebookBackend.progress_pages`).
    progress_pages = True

    def progress_record_path(self, name) -> str:
        """``launch.json`` in the user's state folder, beside the pid file."""
        return os.path.join(self.get_state_folder(name), LAUNCH_RECORD)

    def answers(self, context) -> bool:
        """True if something listens on the notebook's port."""
        return port_is_listening(context["http_port"])

    def __init__(self, notebook_folder, min_port=29000, port_range=100, kill_timeout=3600, python=None,
                 startup_timeout=60.0, max_notebooks=None, idle_timeout=0, fork_server=NotebookSettings.fork_server, warm_kernel=True,
                 kernel_fork=NotebookSettings.kernel_fork, kernel_preload=()):
        self.notebook_folder = os.path.abspath(notebook_folder)
        self.min_port = int(min_port)
        self.port_range = int(port_range)
        self.kill_timeout = int(kill_timeout)
        self.python = python or default_python()
        self.startup_timeout = float(startup_timeout)
        self.max_notebooks = max_notebooks
        self.idle_timeout = int(idle_timeout)
        #: Start daemons by forking a pre-imported server (see :mod:`pyramid_notebook.backends.local.forkclient`), or ``None``.
        #: The default is the settings' (``pyramid_notebook.fork_server``), built from settings or not.
        self.fork_server = ForkServerClient(self.notebook_folder, self.python) if fork_server else None
        #: Start the default notebook's kernel with the server (see ``server/warm_kernel.py``).
        self.warm_kernel = bool(warm_kernel)
        #: Kernels forked from a zygote, and what it preloads (``server/kernel_zygote.py``): each context's default.
        self.kernel_fork, self.kernel_preload = bool(kernel_fork), list(kernel_preload)
        # pid file -> ((pid file mtime, context mtime), context): the proxy asks on every request.
        self._status_cache = {}
        # Readiness polls reuse connections; one pool per port, made on demand.
        self._http = urllib3.PoolManager(maxsize=4, retries=False, timeout=urllib3.Timeout(connect=1, read=10))

    @classmethod
    def from_settings(cls, settings):
        """Build a manager from :class:`~pyramid_notebook.core.settings.NotebookSettings`."""
        return cls(settings.notebook_folder, min_port=settings.port_base, port_range=settings.port_range,
                   kill_timeout=settings.kill_timeout, python=settings.python,
                   startup_timeout=settings.startup_timeout, max_notebooks=settings.max_notebooks,
                   idle_timeout=settings.idle_timeout, fork_server=settings.fork_server,
                   warm_kernel=settings.warm_kernel, kernel_fork=settings.kernel_fork,
                   kernel_preload=settings.kernel_preload)

    def start_fork_server(self, respawn_only=False) -> None:
        """Spawn the fork server now (if enabled and not running) so that the first launch is fast.

        Returns at once; until the fork server has imported Jupyter, launches start daemons the plain
        way. ``respawn_only``: only if a launch found it missing, dead or stale.
        """
        if self.fork_server is not None:
            try:
                if respawn_only:
                    self.fork_server.respawn_if_needed()
                else:
                    self.fork_server.ensure_running()
            except OSError as e:  # never a reason to fail: launches fall back to a plain start
                logger.warning("Could not start the notebook fork server: %s", e)

    def on_site_start(self) -> None:
        """Start the fork server now and keep it current, in a background thread of this process.

        The first launch after the site starts (after a deploy, too) is then a forked start; see
        :meth:`ForkServerClient.watch`. Does nothing without a fork server.
        """
        if self.fork_server is not None:
            self.fork_server.watch()

    def warm_kernels(self, context) -> None:
        """Have the fork server fork the site's kernel zygote for ``context`` now (once it is up), so that
        the first launch's kernel is forked from a zygote that has already imported the site."""
        if self.fork_server is None or not context.get("kernel_fork", self.kernel_fork):
            return
        modules, pshell = site_preload(dict(context, kernel_preload=context.get("kernel_preload", self.kernel_preload)))
        self.fork_server.wait_until_ready(timeout=WARM_TIMEOUT)
        answer = self.fork_server.zygote(modules, pshell)
        if not answer.get("ok"):
            raise ForkServerError(f"the fork server forked no kernel zygote: {answer.get('error')}")

    def close(self) -> None:
        """Stop :meth:`on_site_start`'s watcher thread (the fork server and notebooks keep running)."""
        if self.fork_server is not None:
            self.fork_server.stop_watching()

    # --- where things are -------------------------------------------------

    def get_work_folder(self, name) -> str:
        """The user's folder; raises :class:`~pyramid_notebook.core.names.BadUsername` for unusable names."""
        return os.path.join(self.notebook_folder, username_to_folder_name(name))

    def get_state_folder(self, name) -> str:
        """The user's private runtime state folder (pid file, context, logs, Jupyter config)."""
        return os.path.join(self.notebook_folder, STATE_FOLDER, username_to_folder_name(name))

    def get_pid_file(self, name) -> str:
        """Path of the user's daemon pid file; ``context.json`` and the logs lie beside it."""
        return os.path.join(self.get_state_folder(name), statefolder.PID_FILE_NAME)

    @contextlib.contextmanager
    def _lock(self, lock_name):
        folder = os.path.join(self.notebook_folder, LOCK_FOLDER)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        # A fresh open file per acquisition: flock then excludes other threads too.
        with open(os.path.join(folder, lock_name + ".lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def user_lock(self, name):
        """Exclusive lock held while one user's notebook is started or stopped."""
        return self._lock("user-" + username_to_folder_name(name))

    # --- state ------------------------------------------------------------

    def get_context(self, name):
        """The user's context dict as last written, or ``None``."""
        return contextfile.read_context(self.get_pid_file(name))

    def is_running(self, name) -> bool:
        """True if the user's daemon process is alive."""
        return get_daemon_process(self.get_pid_file(name)) is not None

    def get_notebook_status(self, name):
        """The context of the user's running notebook, or ``None`` if it is not running.

        The full check (the pid is our daemon's, the context is its) is cached until the pid
        file or context file changes; a cached answer is only re-checked for the process being
        alive. Nothing is ever signalled on the strength of the cache.
        """
        pid_file = self.get_pid_file(name)
        try:
            key = (os.stat(pid_file).st_mtime_ns, os.stat(contextfile.get_context_file(pid_file)).st_mtime_ns)
        except OSError:
            self._status_cache.pop(pid_file, None)
            return None
        cached = self._status_cache.get(pid_file)
        if cached and cached[0] == key and pid_alive(cached[1]["pid"]):
            return cached[1]
        proc = get_daemon_process(pid_file)
        context = contextfile.read_context(pid_file) if proc else None
        if not context or context.get("pid") != proc.pid:
            self._status_cache.pop(pid_file, None)
            return None
        self._status_cache[pid_file] = (key, context)
        return context

    def list_notebooks(self) -> list:
        """Every user folder's notebook state, as ``pyramid-notebook list`` shows it."""
        from pyramid_notebook.backends.local.describe import describe, user_folders

        if not os.path.isdir(self.notebook_folder):
            return []
        return [describe(name, path, clean=False) for name, path in user_folders(self.notebook_folder)]

    def update_audit(self, name, audit: dict) -> None:
        """Put a new launch's ``audit`` information in the running notebook's context; its
        server reads it for the records that follow (see :mod:`pyramid_notebook.server.audit`).

        Never waits: while a start or stop holds the user's lock, the notebook keeps the
        information it is being started with (a progress page's polls must not block).
        """
        folder = os.path.join(self.notebook_folder, LOCK_FOLDER)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        with open(os.path.join(folder, "user-" + username_to_folder_name(name) + ".lock"), "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            try:
                pid_file = self.get_pid_file(name)
                context = contextfile.read_context(pid_file)
                if context and context.get("state") == "running" and context.get("audit") != audit:
                    context["audit"] = audit
                    contextfile.write_context(pid_file, context)
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def notebook_inventory(self, cpu=True) -> list:
        """Every user's notebook with kernels, memory, CPU and log (see :mod:`pyramid_notebook.backends.local.inventory`)."""
        from pyramid_notebook.backends.local.inventory import inventory

        return inventory(self.notebook_folder, cpu=cpu)

    # --- start and stop ---------------------------------------------------

    def start_notebook_on_demand(self, name, context):
        """Make sure the user's notebook runs with ``context``; return ``(context, created)``.

        A running notebook with the same ``context_hash`` is reused; one whose server part is the
        same (``server_hash``) opens this context's shell beside the others, with its own welcome
        notebook and kernel (:mod:`pyramid_notebook.backends.shells`); one with a different server
        part is restarted. Dead daemons, stale pid files and corrupt context files are cleaned up
        on the way.
        """
        with self.user_lock(name):
            running = self.get_notebook_status(name)
            if running and port_is_listening(running["http_port"]) and not process_is_stopped(running["pid"]):
                if running.get("context_hash") == context.get("context_hash") and (
                        not same_server(running, context) or
                        self._last_shell(name) in (None, context_digest(running.get("context_hash")))):
                    return running, False
                if same_server(running, context):
                    try:
                        return open_shell(self._http, running, context, timeout=self.startup_timeout), False
                    except ShellOpenError as e:  # never restart (and lose work) because of this
                        raise NotebookStartError(str(e)) from None
            if self.is_running(name):
                self._stop(name)
            return self._start(name, context), True

    def start_notebook(self, name, context, fg=False):
        """Start the user's notebook with ``context`` and wait until it answers.

        With ``fg=True`` run it in the foreground instead (blocks; for debugging).
        Returns the completed context.
        """
        if fg:
            return self._start(name, context, fg=True)
        with self.user_lock(name):
            return self._start(name, context)

    def _last_shell(self, name):
        """Digest of the shell opened last in the user's server (``server/shells.py``), or None.

        New notebooks start with that shell's context: reopening the server's own shell after
        another one goes through the server, which then makes it the last one again.
        """
        path = os.path.join(self.get_state_folder(name), ".ipython", "pyramid_notebook_contexts", "last")
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().strip()
        except OSError:
            return None

    def stop_notebook(self, name) -> bool:
        """Stop the user's notebook; return True if one was running."""
        with self.user_lock(name):
            return self._stop(name)

    def _stop(self, name) -> bool:
        stopped = terminate_daemon(self.get_pid_file(name), timeout=10)
        # A daemon started before the state moved out of the user's folder (upgrade).
        legacy = os.path.join(self.get_work_folder(name), statefolder.PID_FILE_NAME)
        if os.path.isfile(legacy):
            stopped = terminate_daemon(legacy, timeout=10) or stopped
        return stopped

    def _reserved_ports(self, own_folder):
        """Ports promised to other users' notebooks that are running or starting."""
        reserved = set()
        for pid_file in statefolder.pid_files(self.notebook_folder):
            if os.path.dirname(pid_file) == own_folder:
                continue
            context = contextfile.read_context(pid_file)
            if not context or not context.get("http_port"):
                continue
            starting = context.get("state") == "starting" and \
                time.time() - context.get("starting_at", 0) < self.startup_timeout
            if starting or get_daemon_process(pid_file) is not None:
                reserved.add(context["http_port"])
        return reserved

    #: How often a start is retried when another process takes the port before Jupyter binds it.
    PORT_RACE_RETRIES = 3

    def _start(self, name, context, fg=False):
        for attempt in range(self.PORT_RACE_RETRIES):
            try:
                return self._start_once(name, context, fg)
            except NotebookStartError as e:
                if "is not available" not in e.log_tail or attempt == self.PORT_RACE_RETRIES - 1:
                    raise

    def _start_once(self, name, context, fg=False):
        work_folder = self.get_work_folder(name)
        state_folder = self.get_state_folder(name)
        pid_file = self.get_pid_file(name)
        statefolder.make_private_folders(work_folder, state_folder)
        statefolder.migrate_user_folder(work_folder, state_folder)
        remove_stale_pid_file(pid_file)

        context = site_context(context, self.kill_timeout, self.idle_timeout)
        context["warm_kernel"] = self.warm_kernel
        context.setdefault("kernel_fork", self.kernel_fork)  # a site's context may say otherwise
        context.setdefault("kernel_preload", self.kernel_preload)
        with self._lock("ports"):
            reserved = self._reserved_ports(state_folder)
            if self.max_notebooks and len(reserved) >= self.max_notebooks:
                raise TooManyNotebooks(
                    f"{len(reserved)} users already have a notebook running, the most this site allows "
                    f"(pyramid_notebook.max_notebooks = {self.max_notebooks}). Try again when one has stopped.")
            port = pick_port(self.min_port, self.port_range, reserved)
            context.update(http_port=port, token=secrets.token_urlsafe(32), state="starting",
                           starting_at=time.time(), username=name)
            if "{port}" in (context.get("websocket_url") or ""):
                context["websocket_url"] = context["websocket_url"].replace("{port}", str(port))
            contextfile.write_context(pid_file, context)

        cmd = [self.python, DAEMON_SCRIPT, "fg" if fg else "start", pid_file, work_folder, str(port),
               str(context["kill_timeout"])]
        if fg:
            subprocess.run(cmd, check=False)
            return contextfile.read_context(pid_file)
        launcher = forked = None
        if self.fork_server is not None:
            try:
                forked = self.fork_server.start_daemon(pid_file, work_folder, port, context["kill_timeout"])
            except (ForkServerError, OSError) as e:
                logger.info("Starting %r's notebook without the fork server: %s", name, e)
        if forked is None:
            # Do not wait for the launcher: daemonocle's parent lingers a second after
            # forking. We poll the server instead and reap the launcher afterwards.
            launcher = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, close_fds=True, cwd=work_folder)
        try:
            try:
                return self._wait_until_ready(name, launcher, context, forked)
            finally:
                # The readiness polls' keep-alive socket would outlive the notebook in CLOSE_WAIT.
                close_idle(self._http, False, "127.0.0.1", context["http_port"])
        except BaseException:
            terminate_daemon(pid_file, timeout=5)
            raise
        finally:
            if launcher is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    launcher.wait(timeout=5)
                if launcher.stderr:
                    launcher.stderr.close()
                if self.fork_server is not None:
                    self.start_fork_server(respawn_only=True)
