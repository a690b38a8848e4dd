"""Trails verified in the background (issue 32): an edit of a recorded cell shows the user's trail broken in
the review's index within 30 s, with no one opening the review; the refresher stops cleanly."""
import contextlib
import gc
import json
import os
import sqlite3

from pyramid_notebook.core import audit, auditquery
from pyramid_notebook.core.auditindex import AuditIndex, index_path
from pyramid_notebook.web.audittrails import TrailRefresher
from tests.helpers import wait_for
from tests.test_audit import stream_of
from tests.test_audit_review import run_cells


def trail(notebook_folder, user):
    """``user``'s trail as the index says, read straight from its file (reading it refreshes nothing)."""
    path = index_path(notebook_folder)
    if not os.path.isfile(path):
        return None
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.row_factory = sqlite3.Row
        try:
            found = auditquery.trails(connection)
        except sqlite3.Error:  # being replaced by a rebuild
            return None
    return next((t for t in found if t["user"] == user), None)


def indexed_stat(notebook_folder, stream):
    """The ``stat`` the index last saw of ``stream``."""
    with contextlib.closing(sqlite3.connect(index_path(notebook_folder))) as connection:
        return json.loads(connection.execute("SELECT stat FROM streams WHERE path = ?", (stream,)).fetchone()[0])


def test_an_edit_in_place_shows_the_trail_broken_without_opening_the_review(make_demo_server, notebook_folder):
    demo = make_demo_server()
    run_cells(demo, "user2", "tamper_bg = 'original'", "after_it = 2")
    path = stream_of(notebook_folder, "user2")
    count = len(list(audit.read_records(path)))
    wait_for(lambda: (trail(notebook_folder, "user2") or {}).get("records", 0) >= count, timeout=30, interval=0.5,
             message="the background to index user2's trail")
    assert trail(notebook_folder, "user2")["verified"] is True
    # The index took the stream's stat before reading it: wait until it holds the stat of all it read.
    wait_for(lambda: indexed_stat(notebook_folder, path)[:3] == [os.stat(path).st_ino, os.stat(path).st_size,
                                                                   os.stat(path).st_mtime_ns],
             timeout=30, interval=0.5, message="the index to hold the stream's last stat")

    # One cell edited in place, its size and modification time put back: only the ctime tells.
    seq = next(r["seq"] for r in audit.read_records(path) if r.get("code") == "tamper_bg = 'original'")
    before = os.stat(path)
    data = open(path, "rb").read()
    with open(path, "r+b") as f:
        f.write(data.replace(b"'original'", b"'forged!!'"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size and os.stat(path).st_mtime_ns == before.st_mtime_ns
    wait_for(lambda: (trail(notebook_folder, "user2") or {}).get("verified") is False, timeout=30, interval=0.5,
             message="the background to see user2's trail broken")
    assert trail(notebook_folder, "user2")["broken_at"] == seq


def test_the_refresher_refreshes_and_stops_cleanly(tmp_path):
    folder = str(tmp_path)
    store = audit.AuditStore(os.path.join(folder, ".state", "alice", audit.AUDIT_FILE_NAME))
    store.append({"kind": "session", "user": "alice", "owner": "alice"})

    class Site:
        pass

    site = Site()
    refresher = TrailRefresher(AuditIndex(folder), owner=site, interval=0.05, deep_every=2).start()
    wait_for(lambda: (trail(folder, "alice") or {}).get("records") == 1, timeout=30, message="the first refresh")
    store.append({"kind": "execute", "user": "alice", "owner": "alice", "code": "x = 1"})
    wait_for(lambda: (trail(folder, "alice") or {}).get("records") == 2, timeout=30, message="an append read")
    refresher.stop()
    assert not refresher.running()
    # Started again, it ends by itself once the site it serves is gone.
    refresher.start()
    assert refresher.running()
    del site
    gc.collect()
    wait_for(lambda: not refresher.running(), timeout=30, message="the refresher to end with its site")
