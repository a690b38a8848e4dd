"""The audit trail (issue 22): every cell and terminal line, recorded outside the kernel before it runs.

Real notebook servers and kernels, reached the ways a browser reaches them: pserve's direct
websockets, uWSGI (and nginx in front of it), uvicorn's ASGI relay, nginx in accel mode; the
JSON and the v1 kernel websocket protocols; a notebook terminal. The trail is read with the real
``pyramid-notebook audit`` command.
"""
import datetime
import json
import os
import re
import subprocess
import sys
import time

import pytest
import websocket

from pyramid_notebook.core import audit
from tests.helpers import CLICK, KernelChannel, execute_over_websocket, login, wait_for

BIN = os.path.dirname(sys.executable)
CLI = os.path.join(BIN, "pyramid-notebook")


def cli(*args):
    """Run ``pyramid-notebook audit ...``; the completed process."""
    return subprocess.run([CLI, "audit", *args], capture_output=True, text=True, timeout=60)


def stream_of(notebook_folder, user="user"):
    return os.path.join(notebook_folder, ".state", user, audit.AUDIT_FILE_NAME)


def records(notebook_folder, kind=None, user="user"):
    found = list(audit.read_records(stream_of(notebook_folder, user)))
    return [r for r in found if kind is None or r.get("kind") == kind]


def open_kernel(base_url, username="user", shell="shell2", data=None):
    """Log in, launch, start a kernel; return (session, location, kernel id, cookie header)."""
    s = login(base_url, username)
    if data is None:
        r = s.get(f"{base_url}/{shell}", allow_redirects=False, headers=CLICK)
    else:
        r = s.post(f"{base_url}/{shell}", data=data, allow_redirects=False, headers=CLICK)
    assert r.status_code == 302, r.text
    location = r.headers["Location"]
    assert s.get(location).status_code == 200
    xsrf = s.cookies.get("_xsrf", path="/notebook/")
    r = s.post(base_url + "/notebook/api/sessions", headers={"X-XSRFToken": xsrf, "Origin": base_url},
               json={"path": location.rsplit("/", 1)[1], "type": "notebook", "kernel": {"name": "python3"}})
    assert r.status_code == 201, r.text
    cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
    return s, location, r.json()["kernel"]["id"], cookie


def ws_base(base_url, context=None):
    """Where the browser opens websockets: the site, or (pserve mode) the notebook's own port."""
    if context is not None:
        return f"ws://127.0.0.1:{context['http_port']}"
    return base_url.replace("http://", "ws://")


def run_both_protocols(base_url, kernel, cookie, ws_root, tag):
    """Run one cell over the JSON protocol and one over v1; return the two codes."""
    url = f"{ws_root}/notebook/api/kernels/{kernel}/channels"
    json_code = f"print('json-{tag}', 6 * 7)"
    out, _ = execute_over_websocket(url, json_code, base_url, [f"Cookie: {cookie}"])
    assert out.strip() == f"json-{tag} 42"
    v1_code = f"'v1-{tag}-' + str(6 * 7)"
    channel = KernelChannel(url, origin=base_url, cookie=cookie)
    try:
        assert channel.ws.getsubprotocol() == KernelChannel.SUBPROTOCOL
        assert channel.execute(v1_code) == f"'v1-{tag}-42'"
    finally:
        channel.close()
    return json_code, v1_code


def check_cells_recorded(notebook_folder, codes, notebook, kernel, before, user="user", client="127.0.0.1"):
    """Each code is recorded once, with the user, the notebook, the kernel and a time in the window."""
    after = datetime.datetime.now(datetime.timezone.utc)
    executed = records(notebook_folder, "execute", user)
    for code in codes:
        found = [r for r in executed if r["code"] == code]
        assert len(found) == 1, (code, executed)
        record = found[0]
        assert record["user"] == user
        assert record["notebook"] == notebook
        assert record["kernel"] == kernel
        assert record["silent"] is False
        assert before <= audit.parse_time(record["time"]) <= after
        if client is not None:
            assert record["client"] == client
    assert audit.verify(stream_of(notebook_folder, user)) is None


def check_no_secret(notebook_folder, context, cookie, user="user"):
    text = open(stream_of(notebook_folder, user), encoding="utf-8").read()
    assert context["token"] not in text
    for part in cookie.split("; "):
        value = part.split("=", 1)[1]
        if len(value) > 8:
            assert value not in text, part.split("=", 1)[0]


# --- pserve: websockets straight to the notebook's port --------------------------------------


def test_cells_and_terminal_lines_are_recorded_pserve(demo_server, notebook_folder):
    before = datetime.datetime.now(datetime.timezone.utc)
    s, location, kernel, cookie = open_kernel(demo_server.url)
    context = demo_server.manager.get_notebook_status("user")
    codes = run_both_protocols(demo_server.url, kernel, cookie, ws_base(demo_server.url, context), "pserve")
    # ipykernel runs an execute_request sent on the control channel as well.
    channel = KernelChannel(f"{ws_base(demo_server.url, context)}/notebook/api/kernels/{kernel}/channels",
                            origin=demo_server.url, cookie=cookie)
    try:
        msg_id = channel.send("control", "execute_request", {"code": "via_control = 1", "silent": True,
                                                            "store_history": False, "user_expressions": {},
                                                            "allow_stdin": False, "stop_on_error": True})
        assert next(c for k, c, _, _ in channel.replies(msg_id) if k == "execute_reply")["status"] == "ok"
        assert channel.execute("via_control") == "1"
    finally:
        channel.close()
    check_cells_recorded(notebook_folder, codes + ("via_control",), context["notebook_name"], kernel, before)
    assert [r["silent"] for r in records(notebook_folder, "execute") if r["code"] == "via_control = 1"] == [True]

    # A line typed into a notebook terminal, key by key as xterm.js sends it.
    xsrf = s.cookies.get("_xsrf", path="/notebook/")
    r = s.post(demo_server.url + "/notebook/api/terminals", headers={"X-XSRFToken": xsrf, "Origin": demo_server.url})
    assert r.status_code == 200, r.text
    name = r.json()["name"]
    ws = websocket.create_connection(f"ws://127.0.0.1:{context['http_port']}/notebook/terminals/websocket/{name}",
                                     origin=demo_server.url, header=[f"Cookie: {cookie}"], timeout=30)
    try:
        for key in "echo audited-$((6*7))x\x7f":
            ws.send(json.dumps(["stdin", key]))
        ws.send(json.dumps(["stdin", "\r"]))
        seen = ""
        deadline = time.monotonic() + 30
        while "audited-42" not in seen.replace("audited-$((6*7))", ""):
            assert time.monotonic() < deadline, seen
            message = json.loads(ws.recv())
            if message[0] == "stdout":
                seen += message[1]
    finally:
        ws.close()
    # The terminal's input stream, message by message, as typed (tests/test_audit_terminals.py).
    typed = records(notebook_folder, "terminal-input")
    assert [r["data"] for r in typed] == list("echo audited-$((6*7))x\x7f\r")
    assert {r["terminal"] for r in typed} == {name} and typed[0]["user"] == "user"
    check_no_secret(notebook_folder, context, cookie)

    # The command line finds them all.
    shown = cli("show", notebook_folder, "--json", "--user", "user", "--since", "10m")
    assert shown.returncode == 0, shown.stderr
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    assert "".join(r["data"] for r in rows if r["kind"] == "terminal-input") == "echo audited-$((6*7))x\x7f\r"
    assert {r.get("code") for r in rows if r["kind"] == "execute"} == set(codes) | {"via_control = 1", "via_control"}
    # Without audit_log_config the logger's copy goes to the notebook server's log.
    log = os.path.join(notebook_folder, ".state", "user", "notebook.stderr.log")
    last = records(notebook_folder)[-1]
    wait_for(lambda: last["hash"] in open(log, errors="replace").read(), timeout=10, message="the logged copy")
    grep = cli("show", notebook_folder, "--grep", "AUDITED-")
    assert "echo audited-$((6*7))" in grep.stdout and "v1-pserve" not in grep.stdout
    assert cli("verify", notebook_folder).returncode == 0


def test_tampering_by_the_users_own_kernel_is_reported(demo_server, notebook_folder):
    _, _, kernel, cookie = open_kernel(demo_server.url)
    context = demo_server.manager.get_notebook_status("user")
    url = f"{ws_base(demo_server.url, context)}/notebook/api/kernels/{kernel}/channels"
    channel = KernelChannel(url, origin=demo_server.url, cookie=cookie)
    try:
        channel.execute("secret_plan = 'drop table users'")
        channel.execute("harmless = 1")
        # The kernel runs as the same Unix account: it finds the stream and rewrites a record.
        locate = ("import os; stream = os.path.join(os.path.dirname(os.environ['JUPYTER_CONFIG_DIR']), "
                  "'audit.jsonl'); lines = open(stream).read().splitlines()")
        channel.execute(locate + "; open(stream, 'w').write('\\n'.join("
                        "l.replace('drop ' + 'table users', 'nothing ' + 'here') for l in lines) + '\\n')")
        altered = cli("verify", notebook_folder)
        assert altered.returncode == 1, altered.stdout
        seq = next(r["seq"] for r in records(notebook_folder, "execute") if r["code"].startswith("secret_plan"))
        assert f"record seq {seq} was altered" in altered.stdout, altered.stdout

        # Put it back (what a remote log copy allows), then delete a record instead.
        channel.execute(locate + "; open(stream, 'w').write('\\n'.join("
                        "l.replace('nothing ' + 'here', 'drop ' + 'table users') for l in lines) + '\\n')")
        assert cli("verify", notebook_folder).returncode == 0
        channel.execute(locate + "; open(stream, 'w').write('\\n'.join("
                        "l for l in lines if 'harm' + 'less' not in l) + '\\n')")
        missing = cli("verify", notebook_folder)
        harmless = seq + 1
        assert missing.returncode == 1
        assert f"record seq {harmless} missing" in missing.stdout, missing.stdout
    finally:
        channel.close()


def _execute_collect(channel, code):
    """Send ``code``; return (errors' text, execute_reply content)."""
    msg_id = channel.send("shell", "execute_request", {"code": code, "silent": False, "store_history": False,
                                                      "user_expressions": {}, "allow_stdin": False,
                                                      "stop_on_error": True})
    errors = []
    for kind, content, _, _ in channel.replies(msg_id):
        if kind == "error":
            errors.append(content["evalue"])
        elif kind == "execute_reply":
            return errors, content


@pytest.fixture
def small_disk(tmp_path):
    """A real, small file system (tmpfs) of its own; unmounted after the test."""
    from tests.test_faults import _mount_tmpfs

    folder = tmp_path / "disk"
    folder.mkdir()
    _mount_tmpfs(folder, "8m")
    yield folder
    from tests.helpers import stop_all_notebooks

    stop_all_notebooks(str(folder / "notebooks"))
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_unwritable_store_refuses_the_cell_and_records_nothing_half_way(small_disk, tmp_path):
    from pyramid.paster import get_app

    from tests.conftest import write_demo_ini
    from tests.helpers import WSGIServerThread
    from tests.test_faults import fill

    folder = str(small_disk / "notebooks")
    os.makedirs(folder)
    with WSGIServerThread(get_app(write_demo_ini(tmp_path, folder), "main")) as server:
        _, _, kernel, cookie = open_kernel(server.url)
        context = server.manager.get_notebook_status("user")
        url = f"{ws_base(server.url, context)}/notebook/api/kernels/{kernel}/channels"
        stream = stream_of(folder)
        channel = KernelChannel(url, origin=server.url, cookie=cookie)
        try:
            assert channel.execute("recorded = 1; recorded") == "1"
            before = open(stream, "rb").read()

            # The disk is full: a record longer than the slack of the stream's last page fails.
            filler = fill(small_disk)
            code = "ran = 'yes'  # " + "x" * 9000
            errors, reply = _execute_collect(channel, code)
            assert reply["status"] == "error" and reply["ename"] == "AuditError"
            assert errors and "Not run: the audit trail cannot be written" in errors[0], errors
            assert "No space left" in errors[0], errors
            assert open(stream, "rb").read() == before, "nothing of the refused record is left"
            os.unlink(filler)
            assert channel.execute("globals().get('ran')") == "", "the refused cell did not run"

            # Unwritable (here: something else in the stream's place), over the JSON protocol too.
            os.rename(stream, stream + ".kept")
            os.mkdir(stream)
            with pytest.raises(AssertionError, match="audit trail cannot be written"):
                execute_over_websocket(url, "ran = 'json'", server.url, [f"Cookie: {cookie}"])
            os.rmdir(stream)
            os.rename(stream + ".kept", stream)
            assert channel.execute("globals().get('ran')") == ""
            log = os.path.join(folder, ".state", "user", "notebook.stderr.log")
            wait_for(lambda: "Audit record NOT stored" in open(log, errors="replace").read(), timeout=10,
                     message="the refusal in the notebook server's log")
        finally:
            channel.close()
        codes = [r["code"] for r in records(folder, "execute")]
        assert not [c for c in codes if c.startswith("ran =")], codes
        assert "globals().get('ran')" in codes
        assert audit.verify(stream) is None


LOGGING_INI = """
[loggers]
keys = root, audit

[handlers]
keys = shipped

[formatters]
keys = plain

[logger_root]
level = WARNING
handlers =

[logger_audit]
level = INFO
handlers = shipped
qualname = pyramid_notebook.audit
propagate = 0

[handler_shipped]
class = FileHandler
args = ('%(here)s/shipped.log',)
formatter = plain

[formatter_plain]
format = %(name)s %(message)s
"""


def test_prune_then_verify_passes_and_records_go_where_the_logging_config_says(make_demo_server, notebook_folder,
                                                                               tmp_path):
    logging_ini = tmp_path / "logging.ini"
    logging_ini.write_text(LOGGING_INI)
    server = make_demo_server(**{"pyramid_notebook.audit_keep_days": "30",
                                 "pyramid_notebook.audit_log_config": str(logging_ini)})
    _, _, kernel, cookie = open_kernel(server.url)
    context = server.manager.get_notebook_status("user")
    url = f"{ws_base(server.url, context)}/notebook/api/kernels/{kernel}/channels"
    channel = KernelChannel(url, origin=server.url, cookie=cookie)
    try:
        channel.execute("old = 1")
        channel.execute("old = 2")
        ini = str(tmp_path / "demo.ini")
        kept = cli("prune", "--ini", ini)  # 30 days: nothing is that old
        assert kept.returncode == 0 and json.loads(kept.stdout)["pruned"] == 0, kept
        pruned = cli("prune", notebook_folder, "--keep-days", "0")
        assert pruned.returncode == 0, pruned.stderr
        assert json.loads(pruned.stdout)["pruned"] >= 2
        assert cli("verify", notebook_folder).returncode == 0
        assert records(notebook_folder, "execute") == []
        assert [r["kind"] for r in records(notebook_folder)] == ["checkpoint"]
        # The running server chains on after the checkpoint.
        channel.execute("new = 3")
        assert [r["code"] for r in records(notebook_folder, "execute")] == ["new = 3"]
        verified = cli("verify", notebook_folder)
        assert verified.returncode == 0, verified.stdout
    finally:
        channel.close()
    # Every record, pruned ones included, was shipped through the site's logging configuration.
    shipped = [audit.parse_log_message(line) for line in (tmp_path / "shipped.log").read_text().splitlines()]
    assert [r["code"] for r in shipped if r.get("kind") == "execute"] == ["old = 1", "old = 2", "new = 3"]
    assert all(r["user"] == "user" for r in shipped)


def _csrf(html_text):
    return re.search(r'name="csrf_token" value="([^"]+)"', html_text).group(1)


def test_required_reason_blocks_the_launch_until_answered(make_demo_server, notebook_folder):
    server = make_demo_server(**{"pyramid_notebook.audit_reason": "required"})
    s = login(server.url)
    r = s.get(server.url + "/shell2", allow_redirects=False, headers=CLICK)
    assert r.status_code == 200 and 'id="pyramid-notebook-reason"' in r.text
    assert server.manager.get_notebook_status("user") is None, "no notebook before the reason"
    r = s.post(server.url + "/shell2", data={"csrf_token": _csrf(r.text), "reason": "  "},
               allow_redirects=False, headers=CLICK)
    assert r.status_code == 200 and "Please say why" in r.text
    r = s.post(server.url + "/shell2", data={"csrf_token": "forged", "reason": "no token"},
               allow_redirects=False, headers=CLICK)
    assert r.status_code == 200 and 'id="pyramid-notebook-reason"' in r.text
    assert server.manager.get_notebook_status("user") is None

    reason = "Ticket #42: refund <order> 1001"
    r = s.post(server.url + "/shell2", data={"csrf_token": _csrf(r.text), "reason": reason},
               allow_redirects=False, headers=CLICK)
    assert r.status_code == 302, r.text
    page = s.get(r.headers["Location"])
    assert 'id="pyramid-notebook-audit-reason"' in page.text
    assert "Ticket #42: refund &lt;order&gt; 1001" in page.text, "the reason is shown in the notebook"
    context = server.manager.get_notebook_status("user")
    xsrf = s.cookies.get("_xsrf", path="/notebook/")
    r = s.post(server.url + "/notebook/api/sessions", headers={"X-XSRFToken": xsrf, "Origin": server.url},
               json={"path": context["notebook_name"], "type": "notebook", "kernel": {"name": "python3"}})
    kernel = r.json()["kernel"]["id"]
    cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
    url = f"{ws_base(server.url, context)}/notebook/api/kernels/{kernel}/channels"
    execute_over_websocket(url, "why = 1", server.url, [f"Cookie: {cookie}"])
    cell = [r for r in records(notebook_folder, "execute") if r["code"] == "why = 1"]
    assert cell and cell[0]["reason"] == reason
    assert [r["reason"] for r in records(notebook_folder, "session")] == [reason]

    # The next launch of the running notebook asks again; the new reason goes with what follows.
    r = s.get(server.url + "/shell2", allow_redirects=False, headers=CLICK)
    assert r.status_code == 200 and 'id="pyramid-notebook-reason"' in r.text
    r = s.post(server.url + "/shell2", data={"csrf_token": _csrf(r.text), "reason": "second look"},
               allow_redirects=False, headers=CLICK)
    assert r.status_code == 302
    assert server.manager.get_notebook_status("user")["pid"] == context["pid"], "not restarted"
    execute_over_websocket(url, "why = 2", server.url, [f"Cookie: {cookie}"])
    cell = [r for r in records(notebook_folder, "execute") if r["code"] == "why = 2"]
    assert cell[0]["reason"] == "second look"
    assert audit.verify(stream_of(notebook_folder)) is None
