"""Every user's trail verified in the background (issue 32), not only when the audit review is opened.

A daemon thread of the web process brings the review's index (:mod:`pyramid_notebook.core.auditindex`) up
to date every :data:`INTERVAL` seconds: appends are read incrementally, and a stream whose ``stat`` changed
(an edit changes its size, mtime or at least its ctime) has the bytes read before checked again, so an edit
in place shows the trail broken at its record within one interval, whether or not anyone looks. Every
:data:`DEEP_EVERY` rounds every stream's bytes are checked whatever its ``stat`` says.

Started at ``ApplicationCreated`` when the site has auditors; it holds the site's registry weakly and stops
once the site (or its notebook folder) is gone, or on :meth:`TrailRefresher.stop`. A pre-forking server (uWSGI without
``lazy-apps``) forks after the site started: the forked worker has no thread, and starts its own at its
first look at the review or the console (:func:`ensure_refresher`).
"""
import logging
import os
import threading
import weakref

from pyramid_notebook.core.auditindex import audit_index
from pyramid_notebook.web.sitestart import subscribe

logger = logging.getLogger(__name__)

#: Seconds between two refreshes of the index.
INTERVAL = 10.0
#: Every this many refreshes, every stream's bytes are checked, not only those whose ``stat`` changed.
DEEP_EVERY = 30


class TrailRefresher:
    """A daemon thread that keeps ``index`` up to date while ``owner`` (weakly held) lives."""

    def __init__(self, index, owner=None, interval: float = INTERVAL, deep_every: int = DEEP_EVERY):
        self.index, self.interval, self.deep_every = index, interval, deep_every
        self._owner = weakref.ref(owner) if owner is not None else None
        self._stop = threading.Event()
        self._thread = None
        self._pid = None
        self.rounds = 0

    def start(self) -> "TrailRefresher":
        """Start the thread (again, in a forked process, where the parent's is gone)."""
        if self.running():
            return self
        self._stop.clear()
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="pyramid_notebook audit trails", daemon=True)
        self._thread.start()
        return self

    def running(self) -> bool:
        """True if this process's thread is alive."""
        return self._thread is not None and self._pid == os.getpid() and self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread and wait for the round under way to end."""
        self._stop.set()
        thread = self._thread
        if thread is not None and self._pid == os.getpid() and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            if (self._owner is not None and self._owner() is None) or not os.path.isdir(self.index.folder):
                return  # the site, or its notebook folder, is gone
            try:
                self.index.refresh(every_stream=self.rounds % self.deep_every == self.deep_every - 1)
            except Exception:  # noqa: BLE001 - the next round tries again; the review rebuilds what it must
                logger.exception("The audit trails could not be verified in the background")
            self.rounds += 1
            self._stop.wait(self.interval)


def ensure_refresher(registry):
    """The site's refresher, started in this process if it is not running here (see the module); or None."""
    refresher = getattr(registry, "pyramid_notebook_audit_trails", None)
    if refresher is not None and not refresher.running() and not refresher._stop.is_set():
        refresher.start()
    return refresher


def _on_site_start(event):
    registry = event.app.registry
    settings = getattr(registry, "pyramid_notebook_settings", None)
    if settings is None or not getattr(registry, "pyramid_notebook_audit_root", None):
        return
    index = audit_index(settings.notebook_folder, settings.audit_sensitive)
    registry.pyramid_notebook_audit_trails = TrailRefresher(index, owner=registry).start()


def includeme(config):
    """Verify the trails in the background from the site's start (included by the audit review)."""
    subscribe(config, _on_site_start)
