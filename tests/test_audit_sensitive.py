"""Sensitive code needs a reason (issue 32): with ``pyramid_notebook.audit_sensitive_reason = required`` the
notebook server refuses a cell matching ``audit_sensitive`` unless its first line says why, and records the
reason with the cell. The policy as a function, then through a real kernel behind the demo (the browser's
dialog is in ``tests/test_browser_audit.py``)."""
import contextlib
import os
import re

import pytest

from pyramid_notebook.core import audit
from pyramid_notebook.core.auditindex import AuditIndex
from pyramid_notebook.core.auditquery import find_sessions
from pyramid_notebook.server import kernel_messages
from pyramid_notebook.server.kernel_messages import NEEDS_REASON, NeedsReason, cell_reason, check_sensitive
from pyramid_notebook.server.recorder import Auditor
from tests.test_audit import records, stream_of
from tests.test_audit_messages import _channel, _execute, _idle

PATTERNS = "DROP\\s+TABLE\n\\.delete\\("
IN_INI = PATTERNS.replace("\n", "\n    ")  # an INI value's following lines are indented
REQUIRED = {"pyramid_notebook.audit_sensitive": IN_INI, "pyramid_notebook.audit_sensitive_reason": "required"}
COMPILED = tuple(re.compile(p) for p in PATTERNS.splitlines())


def _record(code, **extra):
    content = dict({"code": code, "silent": False, "user_expressions": {}}, **extra)
    return kernel_messages.record_for("shell", {"msg_type": "execute_request"}, content)


def test_a_sensitive_cell_without_a_reason_is_refused_and_with_one_carries_it():
    with pytest.raises(NeedsReason) as refused:
        check_sensitive(_record("db.execute('DROP  TABLE users')"), COMPILED)
    assert refused.value.ename == NEEDS_REASON and "DROP\\s+TABLE" in str(refused.value)
    assert refused.value.details == {"sensitive": True, "patterns": ["DROP\\s+TABLE"],
                                     "code": "db.execute('DROP  TABLE users')"}
    # user_expressions are code too.
    with pytest.raises(NeedsReason, match=r"\\.delete"):
        check_sensitive(_record("x = 1", user_expressions={"e": "User.objects.delete()"}), COMPILED)
    # A comment that is not the first line, or an empty reason, is no reason.
    for code in ("x.delete()\n# reason: cleanup", "# reason:   \nx.delete()", "# why: cleanup\nx.delete()"):
        with pytest.raises(NeedsReason):
            check_sensitive(_record(code), COMPILED)

    code = "\n# Reason:  ticket   42,\tstale rows \nUser.objects.delete()  # DROP TABLE later"
    record = check_sensitive(_record(code), COMPILED)
    assert record["reason"] == "ticket 42, stale rows" and record["sensitive"] is True
    assert record["patterns"] == ["DROP\\s+TABLE", "\\.delete\\("] and record["code"] == code

    # Not sensitive, or the check off (no patterns: audit_sensitive_reason = off): the record as before.
    assert check_sensitive(_record("# reason: none needed\nx = 1"), COMPILED) == _record("# reason: none needed\nx = 1")
    assert check_sensitive(_record("DROP TABLE x"), ()) == _record("DROP TABLE x")
    assert cell_reason("") is None and cell_reason("# reason: " + "x" * 3000) == "x" * kernel_messages.REASON_MAX


def test_the_server_compiles_the_patterns_only_when_a_reason_is_required(tmp_path):
    context = {"audit": {"enabled": True, "user": "u", "sensitive": PATTERNS.splitlines(), "sensitive_reason": "off",
                         "reason": "launch reason", "launch_id": "1"}}
    auditor = Auditor(str(tmp_path / "audit.jsonl"), static_context=context)
    assert auditor.sensitive_patterns() == ()
    context["audit"]["sensitive_reason"] = "required"
    auditor = Auditor(str(tmp_path / "audit.jsonl"), static_context=context)
    assert [p.pattern for p in auditor.sensitive_patterns()] == PATTERNS.splitlines()
    # A cell's own reason is the record's; the launch's is kept beside it.
    record = auditor.record({"kind": "execute", "code": "x", "reason": "cell reason"})
    assert record["reason"] == "cell reason" and record["launch_reason"] == "launch reason"
    assert "launch_reason" not in auditor.record({"kind": "execute", "code": "y"})


def _refused_or_ran(channel, code):
    seen = _idle(channel, _execute(channel, code))
    return seen["execute_reply"][0], seen.get("error", [])


def test_through_a_real_kernel_the_reason_is_asked_for_and_recorded(make_demo_server, notebook_folder, tmp_path):
    server = make_demo_server(**REQUIRED)
    _, kernel, channel, _, _ = _channel(server, notebook_folder)
    marker = str(tmp_path / "dropped")
    sensitive = f"open({marker!r}, 'w').write('DROP TABLE users')"
    try:
        reply, errors = _refused_or_ran(channel, sensitive)
        assert reply["status"] == "error" and reply["ename"] == NEEDS_REASON, reply
        assert "# reason:" in reply["evalue"] and "DROP\\s+TABLE" in reply["evalue"]
        assert errors and errors[0]["ename"] == NEEDS_REASON
        assert not os.path.exists(marker), "refused: the kernel never got it"
        reply, _ = _refused_or_ran(channel, "# reason: clean up the test table\n" + sensitive)
        assert reply["status"] == "ok", reply
        assert os.path.exists(marker)
        assert channel.execute("'plain ' + 'cells run as before'") == "'plain cells run as before'"
    finally:
        channel.close()
    [refused] = records(notebook_folder, "refused")
    assert refused["msg_type"] == "execute_request" and refused["code"] == sensitive and refused["sensitive"]
    assert refused["patterns"] == ["DROP\\s+TABLE"] and refused["kernel"] == kernel
    ran = [r for r in records(notebook_folder, "execute") if "DROP TABLE" in r["code"]]
    assert len(ran) == 1 and ran[0]["reason"] == "clean up the test table" and ran[0]["sensitive"] is True
    assert ran[0]["patterns"] == ["DROP\\s+TABLE"]
    plain = [r for r in records(notebook_folder, "execute") if "cells run as before" in r["code"]]
    assert plain and "sensitive" not in plain[0] and plain[0].get("reason") is None
    assert audit.verify(stream_of(notebook_folder)) is None
    # The review's index flags the session by itself, as for any sensitive cell.
    with contextlib.closing(AuditIndex(notebook_folder, PATTERNS.splitlines()).connect()) as connection:
        [session] = [s for s in find_sessions(connection, q="clean up the test") if s["user"] == "user"]
        assert session["flagged"] and session["refused"] == 1


def test_by_default_a_sensitive_cell_runs_as_before(make_demo_server, notebook_folder):
    server = make_demo_server(**{"pyramid_notebook.audit_sensitive": IN_INI})
    _, _, channel, _, _ = _channel(server, notebook_folder)
    try:
        assert channel.execute("'DROP TABLE ' + 'nothing'") == "'DROP TABLE nothing'"
    finally:
        channel.close()
    [ran] = [r for r in records(notebook_folder, "execute") if "DROP TABLE" in r["code"]]
    assert "sensitive" not in ran and "patterns" not in ran and not records(notebook_folder, "refused")
