"""Waiting for a local notebook daemon to answer: the launch's readiness poll and its error messages.

A mixin of :class:`~pyramid_notebook.backends.local.manager.NotebookManager` (web process): the
manager starts the daemon (plainly or through the fork server), then polls the server's
``api/status`` with the secret until it answers, the daemon dies (an error page with the log's end)
or ``startup_timeout`` passes.
"""
import contextlib
import os
import time

from pyramid_notebook.backends.base import NotebookStartError
from pyramid_notebook.backends.status import get_status
from pyramid_notebook.core import contextfile, statefolder
from pyramid_notebook.core.context import upstream_host
from pyramid_notebook.core.files import read_tail
from pyramid_notebook.core.process import get_daemon_process, pid_alive

#: Seconds a launch waits, after the server answers, for the warm kernel's session to exist.
WARM_SESSION_WAIT = 10.0


def _disk_hint(folder) -> str:
    """A sentence naming a full disk, the usual reason a server dies without a log."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return ""
    free = st.f_bavail * st.f_frsize
    return f" The disk holding the notebook folder is full ({free // 1024} KiB free)." if free < 1 << 20 else ""


class StartWait:
    """The readiness poll; the manager provides ``get_pid_file``, ``get_state_folder``,
    ``startup_timeout`` and ``_http`` (its connection pool)."""

    def _answers(self, context, timeout) -> bool:
        return get_status(upstream_host(context), context["http_port"], context.get("notebook_path"),
                          context.get("token", ""), timeout=timeout, http=self._http) is not None

    def _wait_until_ready(self, name, launcher, context, forked=None):
        pid_file = self.get_pid_file(name)
        work_folder = self.get_state_folder(name)  # where the logs are
        deadline = time.monotonic() + self.startup_timeout
        answered_at = None
        while True:
            latest = contextfile.read_context(pid_file) or {}
            if latest.get("pid") and latest.get("token") == context["token"]:
                if get_daemon_process(pid_file, pid=latest["pid"]) is None:
                    raise NotebookStartError("The notebook server exited while starting." + _disk_hint(work_folder),
                                             self._log_tail(work_folder))
                if answered_at is None and self._answers(latest, timeout=1):
                    answered_at = time.monotonic()
                # The page must find the warm kernel's session, or it would start a second kernel.
                if answered_at is not None and (
                        not latest.get("warm_kernel") or "warm_session" in latest or "warm_session_error" in latest
                        or time.monotonic() - answered_at > WARM_SESSION_WAIT):
                    return latest
            elif forked is not None and not pid_alive(forked):
                raise NotebookStartError("The notebook server exited while starting.", self._log_tail(work_folder))
            code = launcher.poll() if launcher is not None else None
            if code not in (None, 0):
                raise NotebookStartError(f"The notebook launcher failed (exit status {code})." +
                                         _disk_hint(work_folder),
                                         self._log_tail(work_folder, launcher))
            if time.monotonic() > deadline:
                raise NotebookStartError(
                    f"The notebook server did not answer within {self.startup_timeout:g} seconds.",
                    self._log_tail(work_folder))
            # A refused connection costs microseconds; poll often so the user waits no longer
            # than the server takes to start.
            time.sleep(0.01)

    @staticmethod
    def _log_tail(state_folder, launcher=None, lines=30) -> str:
        tail = read_tail(os.path.join(state_folder, statefolder.STDERR_LOG), lines, max_bytes=16384)
        if launcher is not None and launcher.stderr:
            with contextlib.suppress(Exception):
                tail += launcher.stderr.read(16384).decode("utf-8", "replace").splitlines()
        return "\n".join(tail[-lines:])
