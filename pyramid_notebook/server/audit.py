"""Jupyter server extension: record every cell and terminal line before it runs.

The notebook server is the one place every client's code passes through, whatever
relays it (pserve's direct websockets, the uWSGI and ASGI relays, nginx in accel mode,
a JupyterHub's proxy) and whichever kernel websocket protocol it speaks. So the
recording happens here, outside the kernel that runs the code:

* :class:`AuditingKernelWebsocketConnection` (Jupyter's ``kernel_websocket_connection_class``)
  stores every shell-channel ``execute_request`` — code, ``silent``, notebook path, kernel
  id, session — before passing it to the kernel;
* the terminals' websocket handler stores every line typed (on Enter) before the Enter
  reaches the shell.

Who, from where, from which shell and why come from the ``audit`` key of the notebook's
context, which the web site writes at each launch (:mod:`pyramid_notebook.web.audit`), never
from the browser. Fail closed: a record that cannot be stored (store unwritable or full)
means the cell is answered with an error the notebook shows, and the Enter is replaced by
a line kill, so nothing unrecorded runs. The format and the stream's place are
:mod:`pyramid_notebook.core.audit`'s.
"""
import json
import logging
import logging.config
import os
import threading

from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message, deserialize_msg_from_ws_v1, serialize_msg_to_ws_v1,
)

from pyramid_notebook.core import audit
from pyramid_notebook.core.contextfile import get_context_file, read_context
from pyramid_notebook.server.static_files import PID_FILE_ENV
from pyramid_notebook.server.websocket import NoDelayKernelWebsocketConnection

V1 = "v1.kernel.websocket.jupyter.org"
#: Context keys copied into every record (the web site fills them at launch).
SESSION_KEYS = ("user", "client", "shell", "reason", "launch_url")

log = logging.getLogger(__name__)


class Auditor:
    """The notebook server's recorder: its store and where its launch information comes from."""

    def __init__(self, store_path, context_path=None, static_context=None):
        self.store = audit.AuditStore(store_path)
        self.context_path = context_path
        self._context_key = None
        self._session = (static_context or {}).get("audit") or {}
        self._recorded_launch = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Recording is on when the launch's ``audit`` context says so (the site's default)."""
        return bool(self.session().get("enabled"))

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

    def record(self, record: dict) -> dict:
        """Store ``record`` with the launch's who/where/why; raises :class:`~pyramid_notebook.core.audit.AuditError`."""
        session = self.session()
        with self._lock:
            launch = session.get("launch_id")
            if launch != self._recorded_launch:
                # A new launch (maybe with a new reason) of this running server: say so once.
                self.store.append(dict({k: session.get(k) for k in SESSION_KEYS}, kind="session",
                                       launched_at=session.get("launched_at")))
                self._recorded_launch = launch
            full = {k: session.get(k) for k in SESSION_KEYS}
            full.update(record)
            return self.store.append(full)


#: The auditor of this server, made when the extension loads (or by the first websocket message).
AUDITOR = None


def get_auditor(serverapp):
    """This server's :class:`Auditor`, made on first use: a cell never runs unrecorded because the
    extension failed to load or loaded late."""
    global AUDITOR
    if AUDITOR is None:
        AUDITOR = make_auditor(serverapp)
    return AUDITOR


def refusal_text(error) -> str:
    """What the user reads when their code was not run."""
    return (f"Not run: the audit trail cannot be written ({error.strerror or error}). "
            "This site records every cell before it runs; ask the site's administrator.")


class AuditingKernelWebsocketConnection(NoDelayKernelWebsocketConnection):
    """Kernel websockets that record each ``execute_request`` before the kernel gets it."""

    notebook_path = None

    async def prepare(self):
        """Find the notebook this kernel belongs to, then prepare as Jupyter does."""
        await super().prepare()
        try:
            manager = self.websocket_handler.settings["session_manager"]
            for session in await manager.list_sessions():
                if (session.get("kernel") or {}).get("id") == self.kernel_id:
                    self.notebook_path = session.get("path")
                    break
        except Exception as e:  # noqa: BLE001 - the path is informative; the code is what counts
            self.log.warning("pyramid_notebook audit: no notebook path for kernel %s: %s", self.kernel_id, e)

    def handle_incoming_message(self, incoming_msg) -> None:
        """Record an ``execute_request`` first; refuse it when it cannot be recorded."""
        if not self.channels:
            return super().handle_incoming_message(incoming_msg)
        try:
            auditor = AUDITOR or get_auditor(self.websocket_handler.settings["serverapp"])
            enabled = auditor.enabled
        except Exception as e:  # noqa: BLE001 - fail closed: unknown means record, and we cannot
            auditor, enabled = None, True
            broken = audit.AuditError(0, f"no audit store ({e})")
        if enabled:
            try:
                request = self._execute_request(incoming_msg)
            except ValueError as e:
                self.log.warning("pyramid_notebook audit: dropped %s", e)
                return
            if request is not None:
                header, content, channel = request
                try:
                    if auditor is None:
                        raise broken
                    auditor.record({
                        "kind": "execute", "code": content.get("code"), "silent": bool(content.get("silent")),
                        "notebook": self.notebook_path, "kernel": self.kernel_id,
                        "session": header.get("session"), "msg_id": header.get("msg_id"),
                        "peer": self.websocket_handler.request.remote_ip,
                    })
                except audit.AuditError as e:
                    self._refuse(channel, header, refusal_text(e))
                    return
        super().handle_incoming_message(incoming_msg)

    def _execute_request(self, ws_msg):
        """``(header, content, channel)`` if ``ws_msg`` is an ``execute_request``, else ``None``.

        On any channel: ipykernel runs ``execute_request`` on the control channel too. Parsed in
        full (no substring pre-check): JSON escapes could hide the message type from one. A message
        this cannot parse raises :class:`ValueError`; it is dropped, not passed on unrecorded.
        """
        try:
            if self.subprotocol == V1:
                channel, parts = deserialize_msg_from_ws_v1(ws_msg)
                header = json.loads(parts[0])
                if header.get("msg_type") != "execute_request":
                    return None
                return header, json.loads(parts[3]), channel
            msg = deserialize_binary_message(ws_msg) if isinstance(ws_msg, bytes) else json.loads(ws_msg)
            header = msg.get("header") or {}
            if header.get("msg_type") != "execute_request":
                return None
            return header, msg.get("content") or {}, msg.get("channel") or "shell"
        except Exception as e:  # noqa: BLE001 - whatever it is, it must not reach the kernel unrecorded
            raise ValueError(f"unparsable kernel message: {e!r}") from None

    def _refuse(self, channel, parent, text) -> None:
        """Answer the request as a failed cell: an error output and an ``execute_reply`` error."""
        content = {"ename": "AuditError", "evalue": text, "traceback": [f"AuditError: {text}"]}
        reply = dict(content, status="error", execution_count=None, user_expressions={}, payload=[])
        for chan, msg_type, body in (("iopub", "status", {"execution_state": "busy"}),
                                     ("iopub", "error", content), (channel, "execute_reply", reply),
                                     ("iopub", "status", {"execution_state": "idle"})):
            msg = self.session.msg(msg_type, body, parent=parent)
            msg["parent_header"] = parent
            if self.subprotocol == V1:
                parts = [json.dumps(msg[k], default=str).encode()
                         for k in ("header", "parent_header", "metadata", "content")]
                self.websocket_handler.write_message(serialize_msg_to_ws_v1(parts, chan), binary=True)
            else:
                msg["channel"] = chan
                msg["buffers"] = []
                self.websocket_handler.write_message(json.dumps(msg, default=str))


# --- terminals ------------------------------------------------------------------------------

LINE_ENDS = "\r\n"


def terminal_input(auditor, socket, data: str):
    """Record each line ``data`` completes; return ``(what to pass to the shell, refusal or None)``.

    Keystrokes before an Enter are passed on as typed (the shell runs nothing until Enter);
    each Enter is passed on only once its line is stored.
    """
    buffer = getattr(socket, "_pyramid_notebook_line", "")
    forward = []
    for index, char in enumerate(data):
        if char in LINE_ENDS:
            try:
                auditor.record({"kind": "terminal", "terminal": socket.term_name, "line": buffer,
                                "peer": socket.request.remote_ip})
            except audit.AuditError as e:
                socket._pyramid_notebook_line = ""
                return "".join(forward) + "\x15", refusal_text(e)  # Ctrl-U: the shell drops the line
            buffer = ""
        elif char in "\x7f\b":
            buffer = buffer[:-1]
        elif char in "\x03\x15":  # Ctrl-C, Ctrl-U: the shell forgets the line
            buffer = ""
        else:
            buffer += char
        forward.append(char)
    socket._pyramid_notebook_line = buffer
    return "".join(forward), None


def _patch_terminals() -> bool:
    """Wrap the terminals' websocket handler so that typed lines are recorded first."""
    try:
        from jupyter_server_terminals.handlers import TermSocket
    except ImportError:
        return False
    if getattr(TermSocket, "_pyramid_notebook_audited", False):
        return True
    original = TermSocket.on_message

    async def on_message(self, message):
        auditor = AUDITOR
        if auditor is None or not auditor.enabled:
            return await original(self, message)
        try:
            command = json.loads(message)
        except ValueError:
            return await original(self, message)
        if not (isinstance(command, list) and len(command) > 1 and command[0] == "stdin"
                and isinstance(command[1], str)):
            return await original(self, message)
        forward, refusal = terminal_input(auditor, self, command[1])
        if forward:
            await original(self, json.dumps(["stdin", forward]))
        if refusal:
            self.write_message(json.dumps(["stdout", f"\r\n[pyramid_notebook] {refusal}\r\n"]))

    TermSocket.on_message = on_message
    TermSocket._pyramid_notebook_audited = True
    return True


# --- the reason, shown in the notebook ---------------------------------------------------------

BANNER = ('<div id="pyramid-notebook-audit-reason" title="Recorded with everything you run here" '
          'style="position:fixed;bottom:0;left:0;z-index:10000;padding:2px 8px;font:12px sans-serif;'
          'background:#fff3cd;color:#664d03;border:1px solid #ffe69c">Audited session. Reason: {reason}</div>')


def reason_transform_class():
    """A tornado output transform that puts the launch's reason on every notebook HTML page.

    Made on first use so that importing this module does not need tornado's internals.
    """
    import html

    from tornado.web import OutputTransform

    class ReasonBanner(OutputTransform):
        """Adds :data:`BANNER` before ``</body>`` of HTML pages while a reason is on record."""

        def transform_first_chunk(self, status_code, headers, chunk, finishing):
            """The page with the banner (whole pages only: Jupyter renders them in one piece)."""
            auditor = AUDITOR
            if auditor is not None and status_code == 200 and finishing and \
                    str(headers.get("Content-Type", "")).startswith("text/html") and b"</body>" in chunk:
                reason = auditor.session().get("reason")
                if reason and auditor.enabled:
                    banner = BANNER.format(reason=html.escape(reason)).encode("utf-8")
                    chunk = chunk.replace(b"</body>", banner + b"</body>", 1)
                    if "Content-Length" in headers:
                        headers["Content-Length"] = str(len(chunk))
            return status_code, headers, chunk

    return ReasonBanner


# --- the extension --------------------------------------------------------------------------


def _jupyter_server_extension_points():
    return [{"module": __name__}]


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


def _load_jupyter_server_extension(serverapp):
    get_auditor(serverapp)
    if not issubclass(serverapp.kernel_websocket_connection_class, AuditingKernelWebsocketConnection):
        serverapp.log.error("pyramid_notebook audit: kernel_websocket_connection_class is %s; cells are NOT recorded",
                            serverapp.kernel_websocket_connection_class)
    # First, so that it sees the page before any compression does.
    serverapp.web_app.transforms.insert(0, reason_transform_class())
    if not _patch_terminals():
        serverapp.log.info("pyramid_notebook audit: no terminals extension; nothing to record there")
    _configure_logging(AUDITOR.session().get("log_config"), serverapp.log)
    serverapp.log.info("pyramid_notebook audit: recording to %s", AUDITOR.store.path)


def _configure_logging(path, app_log) -> None:
    """Apply the site's logging configuration (an INI file) so audit records leave the box
    as the site's own log records do; without one, they go to this server's stderr log."""
    audit_logger = logging.getLogger(audit.LOGGER_NAME)
    audit_logger.setLevel(logging.INFO)
    if path:
        try:
            logging.config.fileConfig(path, defaults={"here": os.path.dirname(os.path.abspath(path)),
                                                      "__file__": os.path.abspath(path)},
                                      disable_existing_loggers=False)
            return
        except Exception as e:  # noqa: BLE001 - a broken logging section must not stop the notebook
            app_log.error("pyramid_notebook audit: cannot apply the logging configuration of %s: %s", path, e)
    if not audit_logger.handlers:
        # Jupyter's own handlers take warnings and up only: give the records a handler of their own.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        audit_logger.addHandler(handler)
        audit_logger.propagate = False
