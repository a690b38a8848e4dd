"""The audit review (issue 32) through the demo: real notebook servers and kernels record cells, an
auditor (the demo's admin ``user``) finds, reads, reviews and exports them at /notebook-admin/audit."""
import csv
import io
import json
import os
import re

import requests

from pyramid_notebook.core import audit
from pyramid_notebook.core.auditindex import index_path
from tests.helpers import CLICK, execute_over_websocket, login
from tests.test_audit import open_kernel, stream_of, ws_base

AUDIT = "/notebook-admin/audit"
JSON = {"Accept": "application/json"}
SENSITIVE = {"pyramid_notebook.audit_sensitive": "DROP\\s+TABLE\n    \\.delete\\("}
MARKER = "findme_7781 = 6 * 7"
SCRIPT = "'<script>alert(1)</script>'"


def same_origin(base_url):
    return {"Origin": base_url, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty",
            "Accept": "application/json"}


def run_cells(server, username, *codes):
    """Launch ``username``'s notebook and run each code in its kernel."""
    _, _, kernel, cookie = open_kernel(server.url, username, "shell2")
    context = server.manager.get_notebook_status(username)
    url = f"{ws_base(server.url, context)}/notebook/api/kernels/{kernel}/channels"
    for code in codes:
        execute_over_websocket(url, code, server.url, [f"Cookie: {cookie}"])


def listing(session, base_url, **params):
    r = session.get(base_url + AUDIT, params=params, headers=JSON)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json") and r.headers["Cache-Control"] == "no-store"
    return r.json()


def test_a_users_session_is_found_flagged_reviewed_and_exported(make_demo_server, notebook_folder):
    server = make_demo_server(**SENSITIVE)
    run_cells(server, "user2", MARKER, "sql = 'DROP   TABLE accounts'", SCRIPT)
    auditor = login(server.url, "user")

    # Found by the text of a cell, flagged by the sensitive one by itself.
    found = listing(auditor, server.url, q="findme_77")
    assert set(found) == {"sessions", "trails"}
    [session] = found["sessions"]
    assert list(session) == ["id", "user", "owner", "shell", "reason", "started", "ended", "cells", "flagged", "status"]
    assert session["user"] == session["owner"] == "user2" and session["shell"] == "/shell2"
    assert session["cells"] >= 3 and session["flagged"] is True and session["status"] == "flagged"
    assert session["started"] <= session["ended"]
    assert {"user": "user2", "verified": True, "broken_at": None} in found["trails"]
    assert listing(auditor, server.url, q="no such text anywhere")["sessions"] == []
    assert listing(auditor, server.url, q="fi", user="user2")["sessions"][0]["id"] == session["id"]  # short: a scan
    assert [s["id"] for s in listing(auditor, server.url, status="flagged")["sessions"]] == [session["id"]]
    assert listing(auditor, server.url, status="reviewed")["sessions"] == []
    assert listing(auditor, server.url, user="user", q="findme")["sessions"] == []
    assert listing(auditor, server.url, since="2000-01-01", until="1h")["sessions"] == []
    assert listing(auditor, server.url, since="1h")["sessions"][0]["id"] == session["id"]

    # The console links to the review with its counts.
    console = auditor.get(server.url + "/notebook-admin/")
    assert 'id="audit-review-link"' in console.text
    assert re.search(r'id="audit-flagged">1<', console.text), console.text

    # The timeline: cells highlighted and escaped, in a page that runs no script; JSON records and reviews.
    page = auditor.get(server.url + f"{AUDIT}/{session['id']}")
    assert page.status_code == 200 and "findme_7781" in re.sub(r"<[^>]+>", "", page.text)
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    assert "script-src 'none'" in page.headers["Content-Security-Policy"]
    assert 'class="hl"' in page.text and "(sensitive)" in page.text
    detail = auditor.get(server.url + f"{AUDIT}/{session['id']}", headers=JSON).json()
    codes = [r.get("code") for r in detail["records"] if r["kind"] == "execute"]
    assert MARKER in codes and SCRIPT in codes and detail["reviews"] == []
    assert any(r["sensitive"] for r in detail["records"] if r["kind"] == "execute")

    # Reviewed: same-origin JSON only, 201, hash-chained.
    url = server.url + f"{AUDIT}/{session['id']}/review"
    cross = dict(same_origin(server.url), **{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"})
    assert auditor.post(url, json={"status": "reviewed"}, headers=cross).status_code == 403
    assert auditor.post(url, data={"status": "reviewed"}).status_code == 403  # a form without the CSRF token
    r = auditor.post(url, json={"status": "reviewed", "note": "checked with user2"}, headers=same_origin(server.url))
    assert r.status_code == 201, r.text
    review = r.json()
    assert review["reviewer"] == "user" and review["status"] == "reviewed" and review["prev"] == ""
    assert listing(auditor, server.url, q="findme")["sessions"][0]["status"] == "reviewed"
    # The page's form, with its CSRF token, flags it again.
    token = re.search(r'name="csrf_token" value="([^"]+)"', auditor.get(server.url + f"{AUDIT}/{session['id']}").text)
    r = auditor.post(url, data={"csrf_token": token.group(1), "status": "flagged", "note": "<b>odd</b>"},
                     headers=CLICK, allow_redirects=False)
    assert r.status_code == 303, r.text
    detail = auditor.get(server.url + f"{AUDIT}/{session['id']}", headers=JSON).json()
    assert [(x["status"], x["note"]) for x in detail["reviews"]] == [("reviewed", "checked with user2"),
                                                                      ("flagged", "<b>odd</b>")]
    assert detail["reviews"][1]["prev"] == review["hash"]
    assert "&lt;b&gt;odd&lt;/b&gt;" in auditor.get(server.url + f"{AUDIT}/{session['id']}").text

    # Exported as CSV and as JSON lines, from the streams.
    r = auditor.get(server.url + AUDIT + "/export", params={"q": "findme", "format": "csv"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["text"] for row in rows} >= {MARKER, SCRIPT} and {row["status"] for row in rows} == {"flagged"}
    r = auditor.get(server.url + AUDIT + "/export", params={"user": "user2", "format": "jsonl"})
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert any(line["text"] == MARKER and line["session"] == session["id"] for line in lines)

    # Bad input: 400 naming it.
    for params, field in (({"status": "bogus"}, "status"), ({"page": "0"}, "page"), ({"page": "x"}, "page"),
                          ({"since": "last tuesday"}, "since"), ({"until": "soon"}, "until"), ({"sort": "x"}, "sort")):
        r = auditor.get(server.url + AUDIT, params=params, headers=JSON)
        assert r.status_code == 400 and r.json()["field"] == field, (params, r.text)
    r = auditor.get(server.url + AUDIT, params={"status": "bogus"})
    assert r.status_code == 400 and "status" in r.text and r.headers["Content-Type"].startswith("text/html")
    r = auditor.get(server.url + AUDIT + "/export", params={"format": "xml"}, headers=JSON)
    assert r.status_code == 400 and r.json()["field"] == "format"
    assert auditor.post(url, json={"status": "ok"}, headers=same_origin(server.url)).json()["field"] == "status"
    assert auditor.post(url, json={"status": "flagged", "x": 1}, headers=same_origin(server.url)).status_code == 400
    assert auditor.post(url, data="status=x", headers=dict(same_origin(server.url), **{
        "Content-Type": "text/plain"})).status_code == 415
    assert auditor.get(server.url + f"{AUDIT}/0123456789abcdef0123", headers=JSON).status_code == 404
    assert auditor.get(server.url + f"{AUDIT}/<script>").status_code == 404


def test_review_is_for_auditors_and_never_of_their_own_sessions(make_demo_server):
    server = make_demo_server()
    run_cells(server, "user", "mine_5512 = 1")
    auditor, other = login(server.url, "user"), login(server.url, "user2")
    [own] = listing(auditor, server.url, q="mine_5512")["sessions"]
    r = auditor.post(server.url + f"{AUDIT}/{own['id']}/review", json={"status": "reviewed"},
                     headers=same_origin(server.url))
    assert r.status_code == 403 and "own" in r.json()["error"]
    assert "your own session" in auditor.get(server.url + f"{AUDIT}/{own['id']}").text
    for path in ("", f"/{own['id']}", "/export?format=csv"):
        assert other.get(server.url + AUDIT + path, headers=JSON).status_code == 403, path
        assert other.get(server.url + AUDIT + path).status_code == 403, path
    assert other.post(server.url + f"{AUDIT}/{own['id']}/review", json={"status": "reviewed"},
                      headers=same_origin(server.url)).status_code == 403
    assert 'id="audit-review-link"' not in other.get(server.url + "/").text
    r = requests.get(server.url + AUDIT, headers={"Accept": "text/html"}, allow_redirects=False)
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_tampered_trail_is_shown_broken_and_the_index_rebuilt(make_demo_server, notebook_folder):
    server = make_demo_server()
    run_cells(server, "user2", "tamper_target = 'original'", "after_it = 2")
    auditor = login(server.url, "user")
    [session] = listing(auditor, server.url, q="tamper_target")["sessions"]

    # The index deleted: rebuilt, same session ids.
    os.unlink(index_path(notebook_folder))
    assert listing(auditor, server.url, q="tamper_target")["sessions"][0]["id"] == session["id"]
    assert os.path.isfile(index_path(notebook_folder))
    # A corrupt index file: rebuilt, never served.
    with open(index_path(notebook_folder), "r+b") as f:
        f.write(b"this is not an SQLite database at all" * 100)
    assert listing(auditor, server.url, q="tamper_target")["sessions"][0]["id"] == session["id"]
    with open(index_path(notebook_folder), "rb") as f:
        assert f.read(16) == b"SQLite format 3\x00"

    # One record edited in place: the trail is broken at it, listed first; the timeline is still read.
    path = stream_of(notebook_folder, "user2")
    text = open(path, encoding="utf-8").read()
    seq = next(r["seq"] for r in audit.read_records(path) if r.get("code") == "tamper_target = 'original'")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace("'original'", "'forged!!'"))
    found = listing(auditor, server.url)
    assert found["trails"][0] == {"user": "user2", "verified": False, "broken_at": seq}
    page = auditor.get(server.url + AUDIT)
    assert f"broken at record {seq}" in page.text
    assert listing(auditor, server.url, q="forged!!")["sessions"][0]["id"] == session["id"]
    assert "forged!!" in auditor.get(server.url + f"{AUDIT}/{session['id']}").text
