"""Which kernel messages a client may send, and what the audit trail keeps of each.

The notebook server passes a browser's kernel messages to the kernel; this module decides, for
every message, one of three things before it gets there (:func:`decide`):

* **record** — it can make the kernel run code or hand code a value: it is passed on only once
  its record is stored (``execute_request`` with its ``user_expressions``, ``input_reply`` with
  the prompt it answers, ``comm_open``/``comm_msg``, the debugger's code-bearing requests when
  ``audit_debugger = record``);
* **pass** — it asks the kernel something without running code (``kernel_info_request``,
  completion and inspection, history, comm info, interrupt, shutdown, usage);
* **refuse** — anything else: a type not on :data:`ALLOWED` for its channel (subshells,
  ``apply_request``, anything sent on IOPub, unknown types), a malformed message, and the
  debugger when ``audit_debugger = refuse``. The client gets an error reply and the trail a
  ``refused`` record.

With ``pyramid_notebook.audit_sensitive_reason = required``, a cell matching one of the site's
``audit_sensitive`` patterns is refused unless its first line gives a reason (``# reason: <why>``);
with one, its record carries the reason (:func:`check_sensitive`).

Pure functions over parsed messages, so the policy is one table, tested without a server.
"""
import json
import re

#: ``pyramid_notebook.audit_debugger`` values.
DEBUGGER_MODES = ("refuse", "record")
#: Record, pass or refuse.
RECORD, PASS, REFUSE = "record", "pass", "refuse"

#: Per channel, the message types a client may send and what happens to them. ``debug`` is
#: decided by the site's ``audit_debugger`` setting. Everything not listed is refused.
ALLOWED = {
    "shell": {
        "execute_request": RECORD,
        "comm_open": RECORD,
        "comm_msg": RECORD,
        "comm_close": PASS,
        "kernel_info_request": PASS,
        "complete_request": PASS,
        "inspect_request": PASS,
        "is_complete_request": PASS,
        "history_request": PASS,
        "comm_info_request": PASS,
    },
    "control": {
        # ipykernel runs an execute_request on the control channel as well.
        "execute_request": RECORD,
        "debug_request": "debug",
        "kernel_info_request": PASS,
        "interrupt_request": PASS,
        "shutdown_request": PASS,
        "usage_request": PASS,
    },
    "stdin": {
        "input_reply": RECORD,
    },
}

#: Debugger (DAP) commands that only read the debugged program's state or move through it.
#: Every other command (``evaluate``, ``setVariable``, ``setExpression``, ``setBreakpoints`` with
#: its conditions and log points, ``dumpCell``, ``copyToGlobals``, ``completions``, unknown ones)
#: is recorded before it is passed on.
DEBUG_READ_ONLY = frozenset({
    "initialize", "attach", "configurationDone", "debugInfo", "stackTrace", "scopes", "variables",
    "inspectVariables", "continue", "next", "stepIn", "stepOut", "pause", "source", "modules",
    "loadedSources", "exceptionInfo", "setExceptionBreakpoints", "disconnect", "terminate", "threads",
})
#: DAP argument fields that hold code the debugger evaluates.
DEBUG_CODE_FIELDS = ("expression", "value", "code", "condition", "hitCondition", "logMessage",
                     "srcVariableName", "dstVariableName", "variableName")
#: Longest ``data`` or ``arguments`` text kept in a record (its SHA-256 is kept whole).
MAX_TEXT = 64 * 1024


#: What a watcher (role ``watch``, :mod:`pyramid_notebook.core.person`) may send on a kernel websocket:
#: only what Notebook 7 and JupyterLab ask to show a kernel's state. Code, input, comms, completion
#: and inspection (which can run a property's code), interrupts, restarts and the debugger are refused.
WATCH_ALLOWED = {"shell": frozenset({"kernel_info_request", "comm_info_request"}),
                 "control": frozenset({"kernel_info_request"})}


class Refusal(Exception):
    """The message must not reach the kernel; ``str()`` says why (shown to the user)."""

    #: The error name of the failed cell the user sees.
    ename = "AuditError"
    #: What the ``refused`` record keeps besides why.
    details: dict = {}


#: The error name of a sensitive cell refused for want of a reason: the page's extension asks for one.
NEEDS_REASON = "SensitiveCodeNeedsReason"
#: A cell's reason: its first line, ``# reason: <why>`` (a comment, so the kernel runs the cell as written).
REASON_LINE = re.compile(r"#\s*reason\s*:(.*)", re.IGNORECASE)
#: Longest reason kept, in characters.
REASON_MAX = 2000


class NeedsReason(Refusal):
    """A cell matching ``audit_sensitive`` patterns, without the reason the site requires."""

    ename = NEEDS_REASON

    def __init__(self, code: str, patterns: list):
        super().__init__(f"this cell matches code this site marks sensitive ({', '.join(patterns)}); "
                         "say why you run it on the cell's first line, as # reason: <why>")
        self.details = {"sensitive": True, "patterns": patterns, "code": _text(code)}


def cell_reason(code: str):
    """The reason the cell's first line gives (``# reason: <why>``, whitespace folded), or ``None``."""
    first = code.lstrip("\r\n").splitlines()[0].strip() if code.strip() else ""
    found = REASON_LINE.fullmatch(first)
    reason = " ".join(found.group(1).split())[:REASON_MAX] if found else ""
    return reason or None


def check_sensitive(record: dict, patterns=()) -> dict:
    """Mark an ``execute`` record matching one of ``patterns`` (compiled; none: the check is off) with
    ``sensitive``, the ``patterns`` and the cell's ``reason``; raise :class:`NeedsReason` if it gives none.

    The cell's code and its ``user_expressions`` (code too) are matched.
    """
    if not patterns or record.get("kind") != "execute":
        return record
    texts = [record["code"], *(record.get("user_expressions") or {}).values()]
    matched = [p.pattern for p in patterns if any(p.search(text) for text in texts)]
    if not matched:
        return record
    reason = cell_reason(record["code"])
    if reason is None:
        raise NeedsReason(record["code"], matched)
    record.update(sensitive=True, patterns=matched, reason=reason)
    return record


def check_watcher(channel: str, header) -> None:
    """Raise :class:`Refusal` unless a watcher may send this message (:data:`WATCH_ALLOWED`)."""
    msg_type = header.get("msg_type") if isinstance(header, dict) else None
    if not isinstance(msg_type, str) or msg_type not in WATCH_ALLOWED.get(channel, ()):
        raise Refusal(f"you are watching this notebook: {msg_type or 'this message'} is not allowed")


def decide(channel: str, header, content, debugger: str = "refuse", role: str = "owner") -> str:
    """:data:`RECORD`, :data:`PASS` or raise :class:`Refusal` for one parsed client message from a
    person of ``role`` (a watcher may send only :data:`WATCH_ALLOWED`)."""
    if not isinstance(header, dict) or not isinstance(header.get("msg_type"), str):
        raise Refusal("a kernel message without a header naming its type")
    if role == "watch":
        check_watcher(channel, header)
    msg_type = header["msg_type"]
    action = ALLOWED.get(channel, {}).get(msg_type)
    if action is None:
        raise Refusal(f"{msg_type!r} on the {channel} channel is not allowed on this site")
    if not isinstance(content, dict):
        raise Refusal(f"a {msg_type} whose content is not a JSON object")
    if action == "debug":
        if debugger != "record":
            raise Refusal("the debugger is off on this site (pyramid_notebook.audit_debugger)")
        command = content.get("command")
        if not isinstance(command, str):
            raise Refusal("a debug_request without a command")
        return PASS if command in DEBUG_READ_ONLY else RECORD
    return action


def _text(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"... [{len(text)} characters]"


def record_for(channel: str, header: dict, content: dict, prompt=None) -> dict:
    """The audit record of a message :func:`decide` said to record; raises :class:`Refusal` when
    its code is not what the kernel would run (not a string)."""
    msg_type = header["msg_type"]
    if msg_type == "execute_request":
        code = content.get("code")
        expressions = content.get("user_expressions") or {}
        if not isinstance(code, str):
            raise Refusal("an execute_request whose code is not a string")
        if not isinstance(expressions, dict) or not all(isinstance(v, str) for v in expressions.values()):
            raise Refusal("an execute_request whose user_expressions are not strings")
        record = {"kind": "execute", "code": code, "silent": bool(content.get("silent"))}
        if expressions:
            # The kernel evaluates them after the cell: they are code too, kept with it.
            record["user_expressions"] = {str(k): v for k, v in expressions.items()}
        return record
    if msg_type == "input_reply":
        value = content.get("value")
        if not isinstance(value, str):
            raise Refusal("an input_reply whose value is not a string")
        prompt = prompt or {}
        password = bool(prompt.get("password"))
        return {"kind": "stdin", "prompt": str(prompt.get("prompt") or ""), "password": password,
                "value": "********" if password else value}
    if msg_type in ("comm_open", "comm_msg"):
        return {"kind": "comm", "msg_type": msg_type, "comm_id": str(content.get("comm_id") or ""),
                "target_name": str(content.get("target_name") or ""), "data": _text(content.get("data"))}
    if msg_type == "debug_request":
        arguments = content.get("arguments") if isinstance(content.get("arguments"), dict) else {}
        return {"kind": "debug", "command": content["command"], "code": "\n".join(debug_code(arguments)),
                "arguments": _text(arguments)}
    raise Refusal(f"no record for {msg_type}")  # a type added to ALLOWED without a record: refused


def debug_code(arguments: dict) -> list:
    """Every piece of code in a DAP request's arguments (breakpoints' conditions included)."""
    found = []
    for field in DEBUG_CODE_FIELDS:
        value = arguments.get(field)
        if isinstance(value, str) and value:
            found.append(value)
    for breakpoint in arguments.get("breakpoints") or []:
        if isinstance(breakpoint, dict):
            found.extend(debug_code(breakpoint))
    return found


def refusal_reply(header: dict, content, reason: str):
    """``(reply type, reply content)`` answering a refused request, or ``None`` when it has no reply."""
    msg_type = header.get("msg_type") if isinstance(header, dict) else None
    if not isinstance(msg_type, str) or not msg_type.endswith("_request"):
        return None
    reply_type = msg_type[: -len("_request")] + "_reply"
    if msg_type == "debug_request":
        content = content if isinstance(content, dict) else {}
        return reply_type, {"type": "response", "request_seq": content.get("seq", 0), "seq": 0, "success": False,
                            "command": content.get("command", ""), "message": reason, "body": {}}
    return reply_type, {"status": "error", "ename": "Refused", "evalue": reason,
                        "traceback": [f"Refused: {reason}"]}
