"""Nothing runs unseen (issue 30): every kernel message a client sends is recorded first or refused.

Real notebook servers and kernels behind the demo site; messages sent as a browser's
websocket would send them (both protocols). Each bypass of the attack run has a test that
failed on the old recorder: ``user_expressions``, the debugger's ``evaluate`` and breakpoint
conditions, answers to ``input()`` and ``getpass()``, a malformed ``execute_request``, files
written through the contents API. The allow-list sweep sends every client message type of the
messaging spec on every channel.
"""
import hashlib
import json
import os
import uuid

import pytest

from pyramid_notebook.core import audit
from pyramid_notebook.server import kernel_messages
from tests.helpers import KernelChannel
from tests.test_audit import open_kernel, records, stream_of, ws_base


def _channel(server, notebook_folder, username="user"):
    s, location, kernel, cookie = open_kernel(server.url, username)
    context = server.manager.get_notebook_status(username)
    url = f"{ws_base(server.url, context)}/notebook/api/kernels/{kernel}/channels"
    return s, kernel, KernelChannel(url, origin=server.url, cookie=cookie), cookie, url


def _answers(channel, msg_id, until):
    """Messages answering ``msg_id`` until one of type ``until``: ``{type: [content, ...]}``."""
    seen = {}
    for kind, content, _, _ in channel.replies(msg_id):
        seen.setdefault(kind, []).append(content)
        if kind == until:
            return seen
    return seen


def _execute(channel, code, **extra):
    content = {"code": code, "silent": False, "store_history": False, "user_expressions": {},
               "allow_stdin": False, "stop_on_error": True}
    content.update(extra)
    return channel.send("shell", "execute_request", content)


def _idle(channel, msg_id):
    seen = {}
    for kind, content, _, _ in channel.replies(msg_id):
        seen.setdefault(kind, []).append(content)
        if kind == "status" and content["execution_state"] == "idle":
            return seen


# --- the policy, as a table -----------------------------------------------------------------


def test_the_allow_list_records_passes_or_refuses_each_type():
    decide = kernel_messages.decide
    assert decide("shell", {"msg_type": "execute_request"}, {"code": ""}) == "record"
    assert decide("control", {"msg_type": "execute_request"}, {"code": ""}) == "record"
    assert decide("stdin", {"msg_type": "input_reply"}, {"value": ""}) == "record"
    assert decide("shell", {"msg_type": "complete_request"}, {}) == "pass"
    for channel, msg_type in [("iopub", "execute_request"), ("shell", "apply_request"),
                              ("control", "create_subshell_request"), ("shell", "debug_request"),
                              ("stdin", "execute_request"), ("shell", "no_such_request"), ("nowhere", "x")]:
        with pytest.raises(kernel_messages.Refusal):
            decide(channel, {"msg_type": msg_type}, {})
    with pytest.raises(kernel_messages.Refusal, match="debugger is off"):
        decide("control", {"msg_type": "debug_request"}, {"command": "evaluate"})
    assert decide("control", {"msg_type": "debug_request"}, {"command": "evaluate"}, "record") == "record"
    assert decide("control", {"msg_type": "debug_request"}, {"command": "stackTrace"}, "record") == "pass"
    with pytest.raises(kernel_messages.Refusal, match="not a JSON object"):
        decide("shell", {"msg_type": "execute_request"}, ["code"])
    with pytest.raises(kernel_messages.Refusal, match="without a header"):
        decide("shell", ["execute_request"], {})
    record = kernel_messages.record_for("control", {"msg_type": "debug_request"}, {
        "command": "setBreakpoints", "arguments": {"breakpoints": [{"line": 1, "condition": "open('x','w')"}]}})
    assert record["code"] == "open('x','w')"
    masked = kernel_messages.record_for("stdin", {"msg_type": "input_reply"}, {"value": "hunter2"},
                                        {"prompt": "Password: ", "password": True})
    assert masked["value"] == "********" and masked["prompt"] == "Password: " and "hunter2" not in json.dumps(masked)


# --- the bypasses, through a real server ----------------------------------------------------


def test_user_expressions_are_recorded_with_their_cell(demo_server, notebook_folder, tmp_path):
    _, kernel, channel, _, _ = _channel(demo_server, notebook_folder)
    marker = str(tmp_path / "via-expression")
    expression = f"open({marker!r}, 'w').write('unseen')"
    try:
        seen = _idle(channel, _execute(channel, "harmless = 1", user_expressions={"x": expression}))
        assert seen["execute_reply"][0]["status"] == "ok"
    finally:
        channel.close()
    assert os.path.exists(marker), "the kernel evaluated the expression"
    found = [r for r in records(notebook_folder, "execute") if r["code"] == "harmless = 1"]
    assert found and found[0]["user_expressions"] == {"x": expression}
    assert audit.verify(stream_of(notebook_folder)) is None


def test_the_debugger_is_refused_by_default_and_shown_off(demo_server, notebook_folder, tmp_path):
    _, kernel, channel, _, _ = _channel(demo_server, notebook_folder)
    marker = str(tmp_path / "via-debugger")
    try:
        info = _answers(channel, channel.send("shell", "kernel_info_request", {}), "kernel_info_reply")
        reply = info["kernel_info_reply"][0]
        assert reply.get("debugger") is False and "debugger" not in reply.get("supported_features", []), \
            "Notebook 7 shows the debugger off"
        for command, arguments in [
                ("evaluate", {"expression": f"open({marker!r}, 'w')", "context": "repl"}),
                ("setBreakpoints", {"source": {"path": "/x.py"},
                                    "breakpoints": [{"line": 1, "condition": f"open({marker!r}, 'w')"}]})]:
            msg_id = channel.send("control", "debug_request",
                                  {"type": "request", "seq": 7, "command": command, "arguments": arguments})
            reply = _answers(channel, msg_id, "debug_reply")["debug_reply"][0]
            assert reply["success"] is False and "debugger is off" in reply["message"], reply
        assert channel.execute("1 + 1") == "2", "the kernel still answers"
    finally:
        channel.close()
    assert not os.path.exists(marker)
    refused = records(notebook_folder, "refused")
    assert [r["msg_type"] for r in refused] == ["debug_request", "debug_request"]
    assert all("debugger is off" in r["refusal"] and r["kernel"] == kernel for r in refused)


def test_with_audit_debugger_record_code_bearing_requests_are_recorded_first(make_demo_server, notebook_folder):
    server = make_demo_server(**{"pyramid_notebook.audit_debugger": "record"})
    _, kernel, channel, _, _ = _channel(server, notebook_folder)
    try:
        info = _answers(channel, channel.send("shell", "kernel_info_request", {}), "kernel_info_reply")
        assert "debugger" in info["kernel_info_reply"][0]["supported_features"]
        for command, arguments in [
                ("evaluate", {"expression": "6 * 7", "context": "repl"}),
                ("setBreakpoints", {"source": {"path": "/tmp/x.py"},
                                    "breakpoints": [{"line": 1, "condition": "sneaky()", "logMessage": "{spy()}"}]}),
                ("stackTrace", {"threadId": 1})]:
            msg_id = channel.send("control", "debug_request",
                                  {"type": "request", "seq": 3, "command": command, "arguments": arguments})
            _answers(channel, msg_id, "debug_reply")
    finally:
        channel.close()
    debug = records(notebook_folder, "debug")
    assert [(r["command"], r["code"]) for r in debug] == [("evaluate", "6 * 7"),
                                                         ("setBreakpoints", "sneaky()\n{spy()}")]
    assert all(r["kernel"] == kernel and r["channel"] == "control" for r in debug)
    assert not records(notebook_folder, "refused")


def test_answers_to_input_are_recorded_with_their_prompt_and_passwords_masked(demo_server, notebook_folder):
    _, kernel, channel, _, _ = _channel(demo_server, notebook_folder)
    try:
        msg_id = _execute(channel, "a = input('Which table? '); import getpass; p = getpass.getpass('Password: ')",
                          allow_stdin=True)
        answered = []
        for kind, content, _, _ in channel.replies(msg_id):
            if kind == "input_request":
                value = "users" if not answered else "hunter2"
                answered.append(content["prompt"])
                channel.send("stdin", "input_reply", {"value": value})
            if kind == "status" and content["execution_state"] == "idle":
                break
        assert answered == ["Which table? ", "Password: "]
        assert channel.execute("(a, p)") == "('users', 'hunter2')"
    finally:
        channel.close()
    stdin = records(notebook_folder, "stdin")
    assert [(r["prompt"], r["value"], r["password"]) for r in stdin] == [
        ("Which table? ", "users", False), ("Password: ", "********", True)]
    assert "hunter2" not in open(stream_of(notebook_folder), encoding="utf-8").read()


def test_malformed_and_unlisted_messages_are_refused_cleanly(demo_server, notebook_folder):
    import websocket
    from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1

    _, kernel, channel, cookie, url = _channel(demo_server, notebook_folder)
    try:
        # An execute_request whose content is a list (was an AttributeError in the server).
        header = {"msg_id": uuid.uuid4().hex, "msg_type": "execute_request", "session": "s", "username": "u",
                  "date": "", "version": "5.3"}
        channel.ws.send_binary(serialize_msg_to_ws_v1([json.dumps(p).encode() for p in (header, {}, {}, ["x"])],
                                                      "shell"))
        seen = _answers(channel, header["msg_id"], "execute_reply")
        assert seen["execute_reply"][0]["status"] == "error"
        assert "not a JSON object" in seen["execute_reply"][0]["evalue"]
        # Not on the list: apply_request on shell, a subshell on control, anything on iopub.
        for chan, msg_type in [("shell", "apply_request"), ("control", "create_subshell_request")]:
            msg_id = channel.send(chan, msg_type, {})
            reply = _answers(channel, msg_id, msg_type.replace("_request", "_reply"))
            assert reply[msg_type.replace("_request", "_reply")][0]["status"] == "error"
        channel.send("iopub", "execute_request", {"code": "unseen = 1"})
        # Garbage frames are dropped, and the connection lives on. This one claims 2**60 offsets:
        # Jupyter's own deserializer builds that list first and hung the whole server.
        channel.ws.send_binary(b"\x00\x01garbage")
        channel.ws.send_binary((2 ** 60).to_bytes(8, "little") + b"x" * 40)
        assert channel.execute("globals().get('unseen', 'absent')") == "'absent'"
    finally:
        channel.close()
    # The JSON protocol as well, with a content that is a string.
    ws = websocket.create_connection(url, origin=demo_server.url, header=[f"Cookie: {cookie}"], timeout=30)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({"channel": "shell", "header": dict(header, msg_id=msg_id), "parent_header": {},
                            "metadata": {}, "content": "code"}))
        while True:
            message = json.loads(ws.recv())
            if message.get("parent_header", {}).get("msg_id") == msg_id and message["msg_type"] == "execute_reply":
                assert message["content"]["status"] == "error"
                break
    finally:
        ws.close()
    refused = records(notebook_folder, "refused")
    assert {r["msg_type"] for r in refused} >= {"execute_request", "apply_request", "create_subshell_request"}
    assert any(r["channel"] == "iopub" for r in refused)
    log = open(os.path.join(notebook_folder, ".state", "user", "notebook.stderr.log"), errors="replace").read()
    assert "AttributeError" not in log and "Traceback" not in log, log[-3000:]


#: Every message type a client can send, by the Jupyter messaging spec (5.4), with ipykernel's extras.
CLIENT_TYPES = ["execute_request", "inspect_request", "complete_request", "history_request", "is_complete_request",
                "connect_request", "comm_info_request", "kernel_info_request", "shutdown_request", "interrupt_request",
                "debug_request", "usage_request", "create_subshell_request", "delete_subshell_request",
                "list_subshell_request", "comm_open", "comm_msg", "comm_close", "input_reply", "apply_request",
                "clear_request", "abort_request"]


def test_every_message_type_on_every_channel_is_recorded_passed_or_refused():
    passed = []
    for channel in ("shell", "control", "stdin", "iopub"):
        for msg_type in CLIENT_TYPES:
            content = {"code": "", "value": "", "command": "evaluate", "comm_id": "c", "data": {}}
            try:
                action = kernel_messages.decide(channel, {"msg_type": msg_type}, content)
            except kernel_messages.Refusal:
                continue
            if action == "record":
                assert kernel_messages.record_for(channel, {"msg_type": msg_type}, content)["kind"]
            else:
                passed.append((channel, msg_type))
    # What passes unrecorded asks the kernel something and runs no code the client wrote.
    assert sorted(passed) == sorted([
        ("shell", "comm_close"), ("shell", "kernel_info_request"), ("shell", "complete_request"),
        ("shell", "inspect_request"), ("shell", "is_complete_request"), ("shell", "history_request"),
        ("shell", "comm_info_request"), ("control", "kernel_info_request"), ("control", "interrupt_request"),
        ("control", "shutdown_request"), ("control", "usage_request")])


def test_the_sweep_through_a_real_server_records_or_refuses_what_could_run(demo_server, notebook_folder):
    _, kernel, channel, _, _ = _channel(demo_server, notebook_folder)
    before = len(records(notebook_folder))
    try:
        for chan in ("shell", "control", "stdin", "iopub"):
            for msg_type in CLIENT_TYPES:
                if msg_type in ("shutdown_request", "interrupt_request"):
                    continue  # passed on by design; they would stop the kernel under the test
                content = {"code": "", "silent": True, "store_history": False, "user_expressions": {},
                           "allow_stdin": False, "value": "", "type": "request", "seq": 1, "command": "evaluate",
                           "arguments": {"expression": "1"}, "comm_id": uuid.uuid4().hex, "target_name": "none",
                           "data": {}}
                channel.send(chan, msg_type, content)
        assert channel.execute("'still' + ' here'") == "'still here'"
    finally:
        channel.close()
    new = records(notebook_folder)[before:]
    recorded = {(r.get("channel"), r["kind"], r.get("msg_type")) for r in new}
    for chan in ("shell", "control", "stdin", "iopub"):
        for msg_type in CLIENT_TYPES:
            if msg_type in ("shutdown_request", "interrupt_request"):
                continue
            try:
                action = kernel_messages.decide(chan, {"msg_type": msg_type}, {"command": "evaluate"})
            except kernel_messages.Refusal:
                assert (chan, "refused", msg_type) in recorded, (chan, msg_type)
                continue
            if action == "record" and msg_type == "execute_request":
                assert any(r.get("channel") == chan and r["kind"] == "execute" for r in new), chan
            elif action == "record" and msg_type == "input_reply":
                assert any(r["kind"] == "stdin" for r in new)
            elif action == "record":
                assert any(r["kind"] == "comm" and r["msg_type"] == msg_type for r in new), msg_type


def test_files_written_through_the_contents_api_are_recorded(demo_server, notebook_folder):
    s, kernel, channel, _, _ = _channel(demo_server, notebook_folder)
    channel.close()
    xsrf = s.cookies.get("_xsrf", path="/notebook/")
    headers = {"X-XSRFToken": xsrf, "Origin": demo_server.url}
    text = "import os\nos.system('id')\n"
    r = s.put(demo_server.url + "/notebook/api/contents/helper.py", headers=headers,
              json={"type": "file", "format": "text", "content": text})
    assert r.status_code in (200, 201), r.text
    r = s.patch(demo_server.url + "/notebook/api/contents/helper.py", headers=headers,
                json={"path": "ipykernel_launcher.py"})
    assert r.status_code == 200, r.text
    blob = os.urandom(3000)
    import base64

    r = s.put(demo_server.url + "/notebook/api/contents/data.bin", headers=headers,
              json={"type": "file", "format": "base64", "content": base64.b64encode(blob).decode()})
    assert r.status_code in (200, 201), r.text
    files = records(notebook_folder, "file")
    saved = next(r for r in files if r["op"] == "save" and r["path"] == "helper.py")
    assert saved["text"] == text and saved["size"] == len(text.encode())
    assert saved["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    on_disk = open(os.path.join(notebook_folder, "user", "ipykernel_launcher.py"), "rb").read()
    assert hashlib.sha256(on_disk).hexdigest() == saved["sha256"], "the record's hash is the file's"
    assert any(r["op"] == "rename" and r["from"] == "helper.py" and r["path"] == "ipykernel_launcher.py"
               for r in files)
    binary = next(r for r in files if r["path"] == "data.bin")
    assert binary["sha256"] == hashlib.sha256(blob).hexdigest() and "text" not in binary
    # A notebook save: the recorded hash is the file's, and its text is kept.
    nb = {"cells": [{"cell_type": "code", "source": "print('saved')", "metadata": {}, "outputs": [],
                     "execution_count": None}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    r = s.put(demo_server.url + "/notebook/api/contents/saved.ipynb", headers=headers,
              json={"type": "notebook", "content": nb})
    assert r.status_code in (200, 201), r.text
    record = [r for r in records(notebook_folder, "file") if r["path"] == "saved.ipynb"][-1]
    on_disk = open(os.path.join(notebook_folder, "user", "saved.ipynb"), "rb").read()
    assert record["sha256"] == hashlib.sha256(on_disk).hexdigest() and "print('saved')" in record["text"]
    assert audit.verify(stream_of(notebook_folder)) is None
