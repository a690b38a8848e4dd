"""The notebook server's recorder: one :class:`Auditor` per server, shared by everything that records.

The kernel websockets (:mod:`.audit_kernel`), the terminals (:mod:`.audit_terminals`) and the
contents API (:mod:`.audit_files`) all record through :func:`get_auditor`, so every record of a
server goes into one hash-chained stream (:mod:`pyramid_notebook.core.audit`) with the launch's
who/where/why, which come from the ``audit`` key of the notebook's context (written by the site
at each launch), never from the browser.
"""
import os
import re
import threading

from pyramid_notebook.core import audit
from pyramid_notebook.core.contextfile import get_context_file, read_context
from pyramid_notebook.server.identity import person_of
from pyramid_notebook.server.static_files import PID_FILE_ENV

#: Context keys copied into every record (the web site fills them at launch).
SESSION_KEYS = ("user", "client", "shell", "reason", "launch_url")


class Auditor:
    """The notebook server's recorder: its store and where its launch information comes from."""

    def __init__(self, store_path, context_path=None, static_context=None):
        self.store = audit.AuditStore(store_path)
        self.context_path = context_path
        self._context_key = None
        self._session = (static_context or {}).get("audit") or {}
        self._recorded_launch = None
        self._lock = threading.Lock()
        self._sensitive = ((), ())  # (the patterns' texts, compiled)

    @property
    def enabled(self) -> bool:
        """Recording is on when the launch's ``audit`` context says so (the site's default)."""
        return bool(self.session().get("enabled"))

    @property
    def debugger(self) -> str:
        """``refuse`` (the default) or ``record``: the site's ``pyramid_notebook.audit_debugger``."""
        return "record" if self.session().get("debugger") == "record" else "refuse"

    def sensitive_patterns(self) -> tuple:
        """The site's ``audit_sensitive`` patterns, compiled, when it requires a reason for a cell matching
        one (``audit_sensitive_reason = required``, from the launch's context); else none."""
        session = self.session()
        texts = tuple(p for p in session.get("sensitive") or () if isinstance(p, str)) \
            if session.get("sensitive_reason") == "required" else ()
        if texts != self._sensitive[0]:
            # The site compiled each at start; one that would not compile here is matched literally.
            self._sensitive = (texts, tuple(_compile(p) for p in texts))
        return self._sensitive[1]

    def session(self) -> dict:
        """The latest launch's audit information, re-read when ``context.json`` changes."""
        if self.context_path:
            try:
                st = os.stat(self.context_path)
                key = (st.st_mtime_ns, st.st_size, st.st_ino)
            except OSError:
                key = None
            if key != self._context_key:
                context = read_context(self.context_path) or {}
                self._session = context.get("audit") or {}
                self._context_key = key
        return self._session

    def record(self, record: dict, user=None) -> dict:
        """Store ``record`` with the launch's who/where/why; raises :class:`~pyramid_notebook.core.audit.AuditError`.

        ``owner`` is whose notebook this is (the launch's user); ``user`` is who sent it: the person
        the site vouched for on that request or websocket (``user``, a Jupyter user; see
        :mod:`.identity`) with their ``role``, else, as before, the owner.
        """
        session = self.session()
        with self._lock:
            launch = session.get("launch_id")
            owner = session.get("user")
            if launch != self._recorded_launch:
                # A new launch (maybe with a new reason) of this running server: say so once.
                self.store.append(dict({k: session.get(k) for k in SESSION_KEYS}, kind="session", owner=owner,
                                       launched_at=session.get("launched_at")))
                self._recorded_launch = launch
            full = {k: session.get(k) for k in SESSION_KEYS}
            full["owner"] = owner
            person = person_of(user if user is not None else current_user())
            if person is not None:  # the site vouched for who sent it on this request or websocket
                full["user"] = person.username
                full["role"] = person.role
            if record.get("reason") and full.get("reason") and record["reason"] != full["reason"]:
                full["launch_reason"] = full["reason"]  # a cell's own reason (a sensitive cell's) comes first
            full.update(record)
            return self.store.append(full)


def _compile(pattern: str):
    try:
        return re.compile(pattern)
    except re.error:
        return re.compile(re.escape(pattern))


def current_user():
    """The user of the request being handled (Jupyter's call context), or ``None``: how a record made
    below a handler (a contents manager's save) learns who asked."""
    try:
        from jupyter_server.base.call_context import CallContext

        handler = CallContext.get(CallContext.JUPYTER_HANDLER)
    except Exception:  # noqa: BLE001 - no handler, no person: the owner, as before
        return None
    return getattr(handler, "current_user", None) if handler is not None else None


#: The auditor of this server, made when the extension loads (or by the first message to record).
AUDITOR = None


def get_auditor(serverapp):
    """This server's :class:`Auditor`, made on first use: nothing runs unrecorded because the
    extension failed to load or loaded late."""
    global AUDITOR
    if AUDITOR is None:
        AUDITOR = make_auditor(serverapp)
    return AUDITOR


def refusal_text(error) -> str:
    """What the user reads when their code was not run."""
    return (f"Not run: the audit trail cannot be written ({error.strerror or error}). "
            "This site records every cell before it runs; ask the site's administrator.")


def make_auditor(serverapp):
    """The auditor for this server: local daemons keep the stream in their state folder,
    JupyterHub single-user servers in ``<root_dir>/.pyramid_notebook/``."""
    pid_file = os.environ.get(PID_FILE_ENV)
    if pid_file:
        state = os.path.dirname(os.path.abspath(pid_file))
        return Auditor(os.path.join(state, audit.AUDIT_FILE_NAME), context_path=get_context_file(pid_file))
    from pyramid_notebook.server.hub_extension import read_context as hub_context

    root = os.path.abspath(os.path.expanduser(serverapp.root_dir))
    return Auditor(os.path.join(root, audit.HUB_AUDIT_FOLDER, audit.AUDIT_FILE_NAME), static_context=hub_context())
