"""Kernel websockets that let through only what the audit trail has recorded or may pass unrecorded.

Jupyter's ``kernel_websocket_connection_class`` (see ``server/config.py``): every message a client sends
is parsed once here, in the notebook server, whatever relayed it (pserve's direct websockets, the
uWSGI and ASGI relays, nginx in accel mode, a JupyterHub's proxy) and in both kernel websocket
protocols, and :mod:`.kernel_messages` decides: record it and then pass it on, pass it on, or
refuse it (an error reply the notebook shows, and a ``refused`` record). Fail closed: a record
that cannot be stored means the message never reaches the kernel. A watcher (the person the site
vouched for has role ``watch``, :mod:`.identity`) is refused everything but what showing the kernel
needs (:data:`~.kernel_messages.WATCH_ALLOWED`), audit trail or not; records name the person as
``user`` beside the notebook's ``owner``.

On the way back it notes each ``input_request`` (so the ``input_reply`` answering it is recorded
with its prompt, a password masked) and, with the debugger refused, says in ``kernel_info_reply``
that the kernel has no debugger, so Notebook 7 and JupyterLab show it off.
"""
import json
import logging

from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message, deserialize_msg_from_ws_v1, serialize_msg_to_ws_v1,
)

from pyramid_notebook.core.audit import AuditError
from pyramid_notebook.core.person import WATCH
from pyramid_notebook.server import kernel_messages, recorder
from pyramid_notebook.server.identity import role_of
from pyramid_notebook.server.kernel_messages import RECORD, Refusal
from pyramid_notebook.server.websocket import NoDelayKernelWebsocketConnection

V1 = "v1.kernel.websocket.jupyter.org"
#: Replies from the kernel this connection looks into: input prompts, and the kernel's info (its debugger).
WATCHED_REPLIES = (b'"input_request"', b'"kernel_info_reply"')

log = logging.getLogger(__name__)


def _check_frame(ws_msg, v1: bool) -> None:
    """Refuse a binary frame whose table of offsets is longer than the frame itself.

    Jupyter's deserializers build that table before looking at the frame's length: one forged
    count in the first bytes (``2**62`` offsets) hangs the whole notebook server.
    """
    if v1:
        if not isinstance(ws_msg, bytes):
            raise ValueError("a text frame on the v1 protocol")
        count = int.from_bytes(ws_msg[:8], "little")
        if count < 2 or 8 * (count + 1) > len(ws_msg):
            raise ValueError("a frame whose offsets do not fit in it")
    elif isinstance(ws_msg, bytes):
        count = int.from_bytes(ws_msg[:4], "big", signed=True)
        if count < 1 or 4 * (count + 1) > len(ws_msg):
            raise ValueError("a frame whose buffer offsets do not fit in it")


class AuditingKernelWebsocketConnection(NoDelayKernelWebsocketConnection):
    """Kernel websockets that record before the kernel gets a message, or refuse it."""

    notebook_path = None
    #: The kernel's pending ``input_request`` (its prompt, whether it is a password, its parent).
    _pending_input = None

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

    def _auditor(self):
        """``(auditor or None, enabled, debugger mode, error)``; unknown means recording is on."""
        try:
            auditor = recorder.AUDITOR or recorder.get_auditor(self.websocket_handler.settings["serverapp"])
            return auditor, auditor.enabled, auditor.debugger, None
        except Exception as e:  # noqa: BLE001 - fail closed: unknown means record, and we cannot
            return None, True, "refuse", AuditError(0, f"no audit store ({e})")

    # --- from the client -------------------------------------------------------------------

    def handle_incoming_message(self, incoming_msg) -> None:
        """Record, pass on or refuse one client message (see :mod:`.kernel_messages`)."""
        if not self.channels:
            return super().handle_incoming_message(incoming_msg)  # closed: Jupyter ignores it
        auditor, enabled, debugger, broken = self._auditor()
        user = self._user()
        role = role_of(user)
        if not enabled and role != WATCH:
            return super().handle_incoming_message(incoming_msg)
        if not enabled:  # no trail to keep, but a watcher still changes nothing
            auditor = None
        try:
            channel, header, content, message = self._parse(incoming_msg)
        except ValueError as e:
            self._refused(auditor, "", {}, None, str(e))
            return
        try:
            action = kernel_messages.decide(channel, header, content, debugger, role)
            if not enabled:
                return self._send(channel, header, message)
            record = kernel_messages.record_for(channel, header, content, self._prompt(header)) \
                if action == RECORD else None
            if record is not None and auditor is not None:  # a sensitive cell needs a reason (if the site says so)
                kernel_messages.check_sensitive(record, auditor.sensitive_patterns())
        except Refusal as e:
            self._refused(auditor, channel, header, content, str(e), e)
            return
        if record is not None:
            record.update(notebook=self.notebook_path, kernel=self.kernel_id, channel=channel,
                          session=header.get("session"), msg_id=header.get("msg_id"),
                          peer=self.websocket_handler.request.remote_ip)
            try:
                if auditor is None:
                    raise broken
                auditor.record(record, user)
            except AuditError as e:
                self._answer_refusal(channel, header, content, recorder.refusal_text(e))
                return
            if header["msg_type"] == "input_reply":
                self._pending_input = None
        self._send(channel, header, message)

    def _user(self):
        """Who this websocket is: the person the site vouched for when it opened (:mod:`.identity`)."""
        return getattr(self.websocket_handler, "current_user", None)

    def _parse(self, ws_msg):
        """``(channel, header, content, message to send)``; :class:`ValueError` if unparsable.

        Parsed in full, with the same JSON parser the kernel's session uses, so the record holds
        what the kernel will read.
        """
        try:
            _check_frame(ws_msg, self.subprotocol == V1)
            if self.subprotocol == V1:
                channel, parts = deserialize_msg_from_ws_v1(ws_msg)
                if len(parts) < 4:
                    raise ValueError("fewer than four parts")
                return channel, json.loads(parts[0]), json.loads(parts[3]), parts
            msg = deserialize_binary_message(ws_msg) if isinstance(ws_msg, bytes) else json.loads(ws_msg)
            if not isinstance(msg, dict):
                raise ValueError("not a JSON object")
            channel = msg.pop("channel", None) or "shell"  # as Jupyter: no channel means shell
            return channel, msg.get("header"), msg.get("content"), msg
        except Exception as e:  # noqa: BLE001 - whatever it is, it must not reach the kernel unrecorded
            raise ValueError(f"an unparsable kernel message ({e.__class__.__name__})") from None

    def _send(self, channel, header, message) -> None:
        """Pass a message on to the kernel, as Jupyter's own handler does."""
        if channel not in self.channels:
            self.log.warning("No such channel: %r", channel)
            return
        allowed = self.multi_kernel_manager.allowed_message_types
        if allowed and header["msg_type"] not in allowed:
            self.log.warning('Received message of type "%s", which is not allowed. Ignoring.', header["msg_type"])
            return
        stream = self.channels[channel]
        if self.subprotocol == V1:
            self.session.send_raw(stream, message)
        else:
            self.session.send(stream, message)

    def _prompt(self, header):
        pending = self._pending_input
        return pending if pending and header.get("msg_type") == "input_reply" else None

    def _refused(self, auditor, channel, header, content, reason, refusal=None) -> None:
        """Refuse a message: a ``refused`` record (best effort) and an answer the client shows."""
        msg_type = header.get("msg_type") if isinstance(header, dict) else None
        self.log.warning("pyramid_notebook audit: refused %s on %s: %s", msg_type, channel or "?", reason)
        if auditor is not None:
            try:
                details = getattr(refusal, "details", None) or {}  # a sensitive cell's code and patterns
                auditor.record(dict(details, kind="refused", msg_type=str(msg_type or ""), channel=channel,
                                    refusal=reason, notebook=self.notebook_path, kernel=self.kernel_id,
                                    peer=self.websocket_handler.request.remote_ip), self._user())
            except AuditError:
                pass  # refused either way
        if isinstance(header, dict):
            self._answer_refusal(channel, header, content, f"Refused: {reason}.",
                                 getattr(refusal, "ename", None) or Refusal.ename)

    def _answer_refusal(self, channel, header, content, text, ename="AuditError") -> None:
        """Tell the client its message was not run: as a failed cell, a failed reply, or a notice."""
        msg_type = header.get("msg_type")
        reply_channel = channel if channel in ("shell", "control") else "shell"
        if msg_type == "execute_request":
            error = {"ename": ename, "evalue": text, "traceback": [f"{ename}: {text}"]}
            reply = dict(error, status="error", execution_count=None, user_expressions={}, payload=[])
            messages = [("iopub", "status", {"execution_state": "busy"}), ("iopub", "error", error),
                        (reply_channel, "execute_reply", reply), ("iopub", "status", {"execution_state": "idle"})]
            parent = header
        elif msg_type == "input_reply":
            # The kernel keeps waiting for its input: say why under the cell that asked.
            pending = self._pending_input or {}
            parent = pending.get("parent") or {}
            messages = [("iopub", "stream", {"name": "stderr", "text": f"{text}\n"})]
        else:
            answer = kernel_messages.refusal_reply(header, content, text)
            if answer is None:
                return
            messages, parent = [(reply_channel, answer[0], answer[1])], header
        for chan, reply_type, body in messages:
            self._write(chan, reply_type, body, parent)

    def _write(self, chan, msg_type, body, parent) -> None:
        msg = self.session.msg(msg_type, body, parent=parent)
        msg["parent_header"] = parent
        if self.subprotocol == V1:
            parts = [json.dumps(msg[k], default=str).encode() for k in ("header", "parent_header", "metadata", "content")]
            self.websocket_handler.write_message(serialize_msg_to_ws_v1(parts, chan), binary=True)
        else:
            msg["channel"] = chan
            msg["buffers"] = []
            self.websocket_handler.write_message(json.dumps(msg, default=str))

    # --- from the kernel -------------------------------------------------------------------

    def _on_zmq_reply(self, stream, msg_list):
        """Note input prompts; with the debugger refused, say the kernel has none."""
        channel = getattr(stream, "channel", None)
        if channel in ("stdin", "shell", "control"):
            try:
                msg_list = self._watch_reply(channel, msg_list)
            except Exception as e:  # noqa: BLE001 - never lose a reply over what we only note
                self.log.debug("pyramid_notebook audit: unreadable reply: %s", e)
        return super()._on_zmq_reply(stream, msg_list)

    def _watch_reply(self, channel, msg_list):
        v1 = self.subprotocol == V1
        if v1 and not any(name in bytes(msg_list[0]) for name in WATCHED_REPLIES):
            return msg_list  # most replies: not worth parsing (the kernel writes plain JSON)
        header = json.loads(msg_list[0]) if v1 else msg_list.get("header") or {}
        msg_type = header.get("msg_type")
        if msg_type == "input_request":
            content = json.loads(msg_list[3]) if v1 else msg_list.get("content") or {}
            parent = json.loads(msg_list[1]) if v1 else msg_list.get("parent_header") or {}
            self._pending_input = {"prompt": content.get("prompt"), "password": bool(content.get("password")),
                                   "parent": parent}
        elif msg_type == "kernel_info_reply":
            auditor, enabled, debugger, _ = self._auditor()
            if enabled and debugger != "record":
                content = json.loads(msg_list[3]) if v1 else msg_list.get("content") or {}
                features = content.get("supported_features") or []
                if content.get("debugger") or "debugger" in features:
                    # Both forms: kernel protocol 5.3's flag and 5.5's feature list.
                    content["debugger"] = False
                    content["supported_features"] = [f for f in features if f != "debugger"]
                    if v1:
                        msg_list = list(msg_list)
                        msg_list[3] = json.dumps(content).encode()
                    else:
                        msg_list["content"] = content
        return msg_list
