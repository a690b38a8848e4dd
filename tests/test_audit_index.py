"""The audit review's parts without a site (issue 32): its settings, the index built from real streams
(written by the trail's own writer), and the hash-chained reviews in a real SQLite database."""
import os

import pytest
from pyramid.exceptions import ConfigurationError

from pyramid_notebook.core import audit, auditquery
from pyramid_notebook.core.auditindex import AuditIndex
from pyramid_notebook.core.auditreviews import ReviewStore
from pyramid_notebook.core.settings import parse_settings

LAUNCH = {"user": "alice", "owner": "alice", "shell": "c0ffee" * 8, "launch_url": "/shell1", "reason": "fix 42"}


def stream(folder, user="alice"):
    return audit.AuditStore(os.path.join(folder, ".state", user, audit.AUDIT_FILE_NAME))


def test_settings_name_a_bad_pattern_and_default_to_the_admins(tmp_path):
    base = {"pyramid_notebook.notebook_folder": str(tmp_path), "pyramid_notebook.admin_principals": "role:admin"}
    parsed = parse_settings(dict(base, **{"pyramid_notebook.audit_sensitive": "DROP\\s+TABLE\n\n\\.delete\\("}))
    assert parsed.auditor_principals == ("role:admin",) and parsed.audit_sensitive_reason == "off"
    assert parsed.audit_sensitive == ("DROP\\s+TABLE", "\\.delete\\(")
    assert parse_settings(dict(base, **{"pyramid_notebook.auditor_principals": "role:audit"})).auditor_principals \
        == ("role:audit",)
    with pytest.raises(ConfigurationError, match=r"audit_sensitive, line 2 \('\(unclosed'\)"):
        parse_settings(dict(base, **{"pyramid_notebook.audit_sensitive": "ok\n(unclosed"}))
    with pytest.raises(ConfigurationError, match="audit_sensitive_reason must be one of off, required"):
        parse_settings(dict(base, **{"pyramid_notebook.audit_sensitive_reason": "maybe"}))


def test_sessions_guests_and_counts_are_indexed_incrementally(tmp_path):
    folder = str(tmp_path)
    alice = stream(folder)
    alice.append(dict(LAUNCH, kind="session"))
    alice.append(dict(LAUNCH, kind="execute", code="rows = db.query(User).all()", notebook="a.ipynb"))
    alice.append(dict(LAUNCH, kind="terminal-input", data="ls -l\rcat x\r\n"))
    alice.append(dict(LAUNCH, user="bob", role="collaborate", kind="execute", code="User.objects.delete()"))
    index = AuditIndex(folder, (r"\.delete\(",))
    with index.connect() as connection:
        first = {s["user"]: s for s in auditquery.find_sessions(connection)}
    assert first["alice"]["cells"] == 1 and first["alice"]["lines"] == 2 and not first["alice"]["flagged"]
    assert first["bob"]["owner"] == "alice" and first["bob"]["flagged"] and first["bob"]["cells"] == 1

    # Appends are read incrementally; a new launch is a new session; ids stay.
    alice.append(dict(LAUNCH, kind="execute", code="x = 1"))
    alice.append(dict(LAUNCH, kind="session", reason="second"))
    alice.append(dict(LAUNCH, kind="execute", code="y = 2", reason="second"))
    with index.connect() as connection:
        found = auditquery.find_sessions(connection, user="alice")
        assert [s["reason"] for s in found] == ["second", "fix 42"]
        assert found[1]["id"] == first["alice"]["id"] and found[1]["cells"] == 2
        assert [s["user"] for s in auditquery.find_sessions(connection, q="OBJECTS.DEL")] == ["bob"]
        records = auditquery.session_records(connection, found[1]["id"])
        assert [r["seq"] for r in records] == [0, 1, 2, 4] and records[1]["code"].startswith("rows")
        assert auditquery.trails(connection) == [{"user": "alice", "verified": True, "broken_at": None,
                                                  "problem": None, "records": 7}]
    # Other sensitive patterns: the index is stale and rebuilt, with the same ids.
    with AuditIndex(folder, (r"db\.query",)).connect() as connection:
        flagged = {s["user"]: s["flagged"] for s in auditquery.find_sessions(connection) if s["reason"] == "fix 42"}
        assert flagged == {"alice": 1, "bob": 0}


def test_a_removed_record_breaks_the_trail_and_a_prune_does_not(tmp_path):
    folder = str(tmp_path)
    alice = stream(folder)
    for n in range(5):
        alice.append(dict(LAUNCH, kind="execute", code=f"cell_{n}"))
    index = AuditIndex(folder)
    path = alice.path
    lines = open(path, "rb").read().splitlines(keepends=True)
    with open(path, "wb") as f:
        f.writelines(lines[:2] + lines[3:])
    with index.connect() as connection:
        [trail] = auditquery.trails(connection)
    assert trail["broken_at"] == 2 and "missing" in trail["problem"] and audit.verify(path)
    with open(path, "wb") as f:
        f.writelines(lines)
    audit.prune(path, keep_days=0)  # every record is older than now: a checkpoint remains
    with index.connect() as connection:
        assert auditquery.trails(connection)[0]["verified"] is True


def test_reviews_are_hash_chained(tmp_path):
    store = ReviewStore(f"sqlite:///{tmp_path / 'reviews.sqlite'}")
    first = store.add("a" * 20, "flagged", "look", "carol")
    second = store.add("a" * 20, "reviewed", "", "dave")
    store.add("b" * 20, "reviewed", "fine", "carol")
    assert second["prev"] == first["hash"] and store.verify() is None
    assert store.statuses() == {"a" * 20: "reviewed", "b" * 20: "reviewed"}
    assert [r["reviewer"] for r in store.of_session("a" * 20)] == ["carol", "dave"]
    with pytest.raises(ValueError):
        store.add("a" * 20, "ignored", "", "carol")
    with store.engine().begin() as connection:
        connection.execute(store.table().update().where(store.table().c.id == second["id"]).values(note="edited"))
    assert store.verify() == f"review {second['id']} was altered (its hash does not match its content)"
