"""Terminals, recorded as typed: every byte of a terminal's input, before the shell gets it.

A shell's line editor (readline) decides what a line is: Ctrl-O runs it and fetches the next,
Ctrl-A Ctrl-U keeps half of it, Ctrl-Y yanks text back, the arrows recall history, Tab completes.
No model of that outside the shell can be trusted to agree with it, so none is kept. Instead, as
sudo's I/O log does, the input stream itself is the record: each ``stdin`` message of a terminal's
websocket is stored, exactly as received, as one ``terminal-input`` record before it is passed to
the terminal, whichever websocket of the terminal it came on. Replaying the stream in order (with
each record's ``time``) reproduces what the shell was given, byte for byte; ``pyramid-notebook
audit replay`` does (see docs/audit.rst, "Terminals").

Resize messages (``set_size``) carry no input and are passed on unrecorded; anything else that
could reach the shell but cannot be read as a ``stdin`` message with text is dropped. Fail closed:
input that cannot be recorded is not passed on, and the terminal says why.
"""
import json
import logging
import uuid

from pyramid_notebook.core import audit
from pyramid_notebook.server import recorder

#: Kind of the records this module writes.
KIND = "terminal-input"

log = logging.getLogger(__name__)


def terminal_id(terminal) -> str:
    """A name for one terminal process, unique in the trail (terminal names such as ``1`` are reused
    after the terminal or the server ends); every websocket of the terminal shares it."""
    ident = getattr(terminal, "_pyramid_notebook_id", None)
    if ident is None:
        ident = terminal._pyramid_notebook_id = uuid.uuid4().hex[:16]
    return ident


def input_record(socket, data: str) -> dict:
    """The record of ``data`` arriving on the terminal websocket ``socket``."""
    terminal = socket.terminal
    ptyproc = getattr(terminal, "ptyproc", None)
    return {"kind": KIND, "terminal": socket.term_name, "terminal_id": terminal_id(terminal),
            "pid": getattr(ptyproc, "pid", None), "data": data, "peer": socket.request.remote_ip}


def stdin_data(message):
    """``(is input, data)`` of a terminal websocket message, as terminado would read it.

    ``(False, None)``: terminado passes nothing of it to the shell (a resize, an unknown type);
    ``(True, None)``: it would or might reach the shell but cannot be recorded as text: drop it.
    """
    try:
        command = json.loads(message)
    except (ValueError, TypeError):
        return True, None
    if not isinstance(command, list):
        return True, None  # terminado would pass nothing of it on either: drop it
    if not command or command[0] != "stdin":
        return False, None
    data = command[1] if len(command) > 1 else None
    return True, data if isinstance(data, str) else None


def patch_terminals() -> bool:
    """Make the terminals' websocket handler record each ``stdin`` message before the shell gets it
    (into the server's :class:`~.recorder.Auditor`); ``False`` when there is no terminals extension."""
    try:
        from jupyter_server_terminals.handlers import TermSocket
    except ImportError:
        return False
    if getattr(TermSocket, "_pyramid_notebook_audited", False):
        return True
    original = TermSocket.on_message

    async def on_message(self, message):
        try:
            auditor = recorder.AUDITOR or recorder.get_auditor(self.settings["serverapp"])
            enabled = auditor.enabled
        except Exception as e:  # noqa: BLE001 - fail closed: unknown means record, and we cannot
            auditor, enabled, broken = None, True, audit.AuditError(0, f"no audit store ({e})")
        if not enabled or self.terminal is None:
            return await original(self, message)
        is_input, data = stdin_data(message)
        if not is_input:
            return await original(self, message)
        if data is None:
            log.warning("pyramid_notebook audit: dropped an unreadable terminal message %.80r", message)
            return None
        try:
            if auditor is None:
                raise broken
            auditor.record(input_record(self, data), self.current_user)
        except audit.AuditError as e:
            self.write_message(json.dumps(["stdout", f"\r\n[pyramid_notebook] {recorder.refusal_text(e)}\r\n"]))
            return None
        # No await between the record and this call: terminado hands the text to its one writer
        # thread before yielding, so the pty gets the inputs of all websockets in record order.
        return await original(self, message)

    TermSocket.on_message = on_message
    TermSocket._pyramid_notebook_audited = True
    return True
