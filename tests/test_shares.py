"""Live shared sessions' grants (issue 31), through the real demo site: create, list, open the link, revoke,
every bad input, cross-site refusals, expiry, the end of a grant when the owner's notebook stops (through
the site and any other way), grants that survive a web process's restart, and two web nodes (real
``pserve`` processes) on one real PostgreSQL."""
import datetime
import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest
import requests

from pyramid_notebook.core import shares
from tests.conftest import write_demo_ini
from tests.helpers import CLICK, free_port, login, serve_on_free_port, stop_process, wait_for

PSERVE = os.path.join(os.path.dirname(sys.executable), "pserve")
JSON = {"Accept": "application/json"}
PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


def api(base):
    """What a script on the site's own page sends: the site's Origin and a JSON body."""
    return {"Origin": base, "Accept": "application/json", "Content-Type": "application/json"}


def share(session, base, expect=201, **body):
    r = session.post(base + "/notebook/shares", data=json.dumps(body), headers=api(base))
    assert r.status_code == expect, r.text
    return r.json()


def listing(session, base):
    r = session.get(base + "/notebook/shares", headers=JSON)
    assert r.status_code == 200, r.text
    return r.json()


def revoke(session, base, grant_id, origin=None):
    return session.delete(f"{base}/notebook/shares/{grant_id}", headers={"Origin": origin or base, **JSON})


def launch(session, base, shell="/shell1"):
    r = session.get(base + shell, headers=CLICK, allow_redirects=False)
    assert r.status_code == 302, r.text


def shutdown(session, base):
    r = session.get(base + "/notebook/shutdown", headers=CLICK, allow_redirects=False)
    assert r.status_code == 302, r.text


def refused(session, url, why):
    r = session.get(url, headers={"Accept": "text/html"}, allow_redirects=False)
    assert r.status_code == 403 and why in r.text, (r.status_code, r.text)
    return r.text


def in_seconds(iso_time):
    moment = datetime.datetime.strptime(iso_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    return (moment - datetime.datetime.now(datetime.timezone.utc)).total_seconds()


def test_create_list_open_revoke_and_expire(demo_server):
    base = demo_server.url
    owner, user2, viewer = login(base), login(base, "user2"), login(base, "viewer")
    launch(owner, base)
    # viewer may log in, holds no shell permission, may not share.
    assert viewer.get(base + "/shell1", headers=CLICK, allow_redirects=False).status_code == 403
    assert share(viewer, base, 403, **{"with": "user", "mode": "watch"})["error"]

    to_user2 = share(owner, base, **{"with": "user2", "mode": "collaborate", "expires_in": 600})
    assert to_user2["mode"] == "collaborate" and to_user2["url"] == f"{base}/notebook/shared/{to_user2['id']}"
    assert len(to_user2["id"]) >= 32 and 590 < in_seconds(to_user2["expires"]) <= 600
    # collaborate to someone without the shell permission: made watch, and the answer says so.
    to_viewer = share(owner, base, **{"with": "viewer", "mode": "collaborate"})
    assert to_viewer["mode"] == "watch" and "shell permission" in to_viewer["note"]
    assert 3590 < in_seconds(to_viewer["expires"]) <= 3600  # the default: one hour
    to_team = share(owner, base, **{"with": "role:shell", "mode": "collaborate", "path": "<b>odd</b>.ipynb"})
    assert to_team["mode"] == "collaborate"

    given = listing(owner, base)
    assert {g["id"] for g in given["given"]} == {to_user2["id"], to_viewer["id"], to_team["id"]}
    assert given["received"] == []
    entry = next(g for g in given["given"] if g["id"] == to_user2["id"])
    assert (entry["with"], entry["with_name"], entry["mode"], entry["active"]) == ("user2", "Second User",
                                                                                   "collaborate", [])
    received = listing(user2, base)["received"]
    assert {g["id"] for g in received} == {to_user2["id"], to_team["id"]}  # by id, and by role:shell
    assert {(g["owner"], g["owner_name"]) for g in received} == {("user", "Demo User")}
    assert [g["id"] for g in listing(viewer, base)["received"]] == [to_viewer["id"]]

    # The link: valid for its grantee; anyone else learns nothing of the owner's notebook.
    # (It leads into the owner's notebook under the grant's prefix: tests/test_share_join.py.)
    r = user2.get(to_user2["url"], allow_redirects=False)
    assert r.status_code == 302, r.text
    assert r.headers["Location"] == f"{to_user2['url']}/notebooks/{to_user2['path']}"
    assert user2.get(r.headers["Location"]).status_code == 200
    assert viewer.get(to_viewer["url"], allow_redirects=False).status_code == 302
    r = user2.get(to_team["url"], allow_redirects=False)
    assert r.headers["Location"].endswith("/notebooks/%3Cb%3Eodd%3C/b%3E.ipynb")  # quoted
    text = refused(viewer, to_user2["url"], "not for you")
    assert "Demo User" not in text and "ipynb" not in text and "user2" not in text
    refused(user2, base + "/notebook/shared/" + "A" * 32, "not valid")
    anonymous = requests.get(to_user2["url"], headers={"Accept": "text/html"}, allow_redirects=False)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]

    # Revoke: not by a stranger, not from another site; by the grantee; then the link says so.
    assert revoke(viewer, base, to_user2["id"]).status_code == 403
    assert revoke(user2, base, to_user2["id"], origin="http://evil.example").status_code == 403
    assert user2.get(to_user2["url"]).status_code == 200
    assert revoke(user2, base, to_user2["id"]).status_code == 204
    refused(user2, to_user2["url"], "revoked")
    assert revoke(user2, base, to_user2["id"]).status_code == 404
    assert to_user2["id"] not in {g["id"] for g in listing(owner, base)["given"]}
    assert revoke(owner, base, to_viewer["id"]).status_code == 204  # by its owner
    refused(viewer, to_viewer["url"], "revoked")
    # An admin (user) revokes a grant of someone else's (user2's to viewer).
    launch(user2, base)
    theirs = share(user2, base, **{"with": "viewer", "mode": "watch"})
    assert revoke(owner, base, theirs["id"]).status_code == 204
    refused(viewer, theirs["url"], "revoked")

    # Expiry: valid now, refused once it has passed, gone from the lists.
    short = share(owner, base, **{"with": "user2", "mode": "watch", "expires_in": 3})
    assert short["id"] in {g["id"] for g in listing(user2, base)["received"]}
    wait_for(lambda: user2.get(short["url"]).status_code == 403, timeout=20, message="the grant to expire")
    refused(user2, short["url"], "expired")
    assert short["id"] not in {g["id"] for g in listing(user2, base)["received"]}
    assert short["id"] not in {g["id"] for g in listing(owner, base)["given"]}


@pytest.mark.parametrize("body, field", [
    ({"mode": "watch"}, "with"),
    ({"with": "user2"}, "mode"),
    ({"with": "", "mode": "watch"}, "with"),
    ({"with": "   ", "mode": "watch"}, "with"),
    ({"with": None, "mode": "watch"}, "with"),
    ({"with": 42, "mode": "watch"}, "with"),
    ({"with": "nobody-here", "mode": "watch"}, "with"),
    ({"with": "user", "mode": "watch"}, "with"),
    ({"with": "system.Everyone", "mode": "watch"}, "with"),
    ({"with": "user2\x00", "mode": "watch"}, "with"),
    ({"with": "user2", "mode": "edit"}, "mode"),
    ({"with": "user2", "mode": "watch", "expires_in": 0}, "expires_in"),
    ({"with": "user2", "mode": "watch", "expires_in": -5}, "expires_in"),
    ({"with": "user2", "mode": "watch", "expires_in": 86401}, "expires_in"),
    ({"with": "user2", "mode": "watch", "expires_in": "soon"}, "expires_in"),
    ({"with": "user2", "mode": "watch", "expires_in": True}, "expires_in"),
    ({"with": "user2", "mode": "watch", "path": "../other/secret.ipynb"}, "path"),
    ({"with": "user2", "mode": "watch", "colour": "red"}, "colour"),
])
def test_bad_input_is_400_naming_the_field(demo_server, body, field):
    base = demo_server.url
    answer = share(login(base), base, 400, **body)
    assert answer["field"] == field and answer["error"].startswith(field + ":")


def test_bad_requests(demo_server):
    base = demo_server.url
    owner = login(base)
    for raw, headers in (("{", api(base)), ("[1]", api(base))):
        r = owner.post(base + "/notebook/shares", data=raw, headers=headers)
        assert r.status_code == 400 and r.json()["field"] == "body", r.text
    body = json.dumps({"with": "user2", "mode": "watch"})
    r = owner.post(base + "/notebook/shares", data=body, headers={**api(base), "Content-Type": "text/plain"})
    assert r.status_code == 415
    # Cross-site: another origin, a browser saying cross-site, a script that says nothing.
    for headers in ({**api(base), "Origin": "http://evil.example"},
                    {**api(base), "Origin": "null"},
                    {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "empty"},
                    {"Content-Type": "application/json"}):
        r = owner.post(base + "/notebook/shares", data=body, headers=headers)
        assert r.status_code == 403 and "Cross-site" in r.json()["error"], r.text
    # A valid request while the owner's notebook does not run: nothing to share.
    assert share(owner, base, 409, **{"with": "user2", "mode": "watch"})["error"]
    assert listing(owner, base) == {"given": [], "received": []}
    anonymous = requests.post(base + "/notebook/shares", data=body, headers=api(base))
    assert anonymous.status_code == 403


def test_an_unreachable_database_is_a_503_and_the_site_works(make_demo_server):
    site = make_demo_server(**{"pyramid_notebook.sqlalchemy_url": "postgresql+psycopg://postgres@127.0.0.1:1/none"})
    owner = login(site.url)
    r = owner.get(site.url + "/notebook/shares", headers=JSON)
    assert r.status_code == 503 and "pyramid_notebook.sqlalchemy_url" in r.json()["error"], r.text
    assert owner.get(site.url + "/", allow_redirects=False).status_code == 200


def test_grants_end_when_the_owner_notebook_stops(demo_server, notebook_folder):
    base = demo_server.url
    owner, user2 = login(base), login(base, "user2")
    store = shares.share_store(f"sqlite:///{notebook_folder}/.state/.site/pyramid_notebook.sqlite")
    launch(owner, base)
    first = share(owner, base, **{"with": "user2", "mode": "watch"})
    shutdown(owner, base)  # the site's shutdown ends them at once
    assert store.get(first["id"]).state() == "stopped"
    refused(user2, first["url"], "has ended")

    launch(owner, base)
    assert listing(owner, base)["given"] == []  # a new start does not bring an old grant back
    second = share(owner, base, **{"with": "user2", "mode": "watch"})
    launch(owner, base, "/shell2")  # another shell beside the first, in the same server: the grant holds
    assert user2.get(second["url"]).status_code == 200
    demo_server.manager.stop_notebook("user")  # stopped outside the site (the command line, a time-out)
    assert store.get(second["id"]).state() == "live"  # the site was not told ...
    refused(user2, second["url"], "has ended")  # ... and finds out at the next look
    assert store.get(second["id"]).state() == "stopped"

    launch(owner, base)
    third = share(owner, base, **{"with": "user2", "mode": "watch"})
    launch(owner, base, "/shell3")  # another server set-up: the server restarts
    refused(user2, third["url"], "has ended")


# --- real web processes -------------------------------------------------------------------------------


def start_node(ini, log_path):
    """``pserve ini`` (the demo under waitress) on a free port: ``(url, process)``."""
    log = open(log_path, "ab")

    def launch_node(port):
        return subprocess.Popen([PSERVE, ini, f"http_port={port}"], stdout=log, stderr=subprocess.STDOUT,
                                cwd=os.path.dirname(ini))

    def answers(port):
        try:
            return requests.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        port, proc = serve_on_free_port(launch_node, answers, lambda: open(log_path, errors="replace").read(),
                                        timeout=90, message="pserve to serve")
    finally:
        log.close()
    return f"http://127.0.0.1:{port}", proc


def node_ini(tmp_path, notebook_folder, **settings):
    ini = write_demo_ini(tmp_path, notebook_folder, **settings)
    with open(ini, "a") as f:
        f.write("\n[server:main]\nuse = egg:waitress#main\nlisten = 127.0.0.1:%(http_port)s\n")
    return ini


def test_grants_survive_a_web_process_restart(tmp_path, notebook_folder):
    ini = node_ini(tmp_path, notebook_folder)
    base, node = start_node(ini, tmp_path / "node.log")
    try:
        owner = login(base)
        launch(owner, base)
        grant = share(owner, base, **{"with": "user2", "mode": "watch"})
    finally:
        stop_process(node)
    assert os.path.isfile(os.path.join(notebook_folder, ".state", ".site", "pyramid_notebook.sqlite"))
    base, node = start_node(ini, tmp_path / "node.log")  # a new process: only the database remembers
    try:
        user2 = login(base, "user2")
        assert [g["id"] for g in listing(user2, base)["received"]] == [grant["id"]]
        assert user2.get(base + "/notebook/shared/" + grant["id"]).status_code == 200
    finally:
        stop_process(node)


def _as_postgres():
    """The command prefix that runs PostgreSQL's programs as an account it accepts (never root)."""
    if os.geteuid() != 0:
        return [], None
    for account in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(account)
        except KeyError:
            continue
        return ["runuser", "-u", account, "--"], entry
    pytest.fail("no postgres or nobody account to run PostgreSQL as")


@pytest.fixture
def postgresql():
    """A throwaway PostgreSQL cluster on a loopback port (Debian's binaries): its SQLAlchemy URL."""
    if not PG_BIN:
        pytest.skip("needs Debian's postgresql (scripts/install-system-packages installs it)")
    bin_dir = os.path.dirname(PG_BIN[-1])
    prefix, account = _as_postgres()
    folder = tempfile.mkdtemp(prefix="pyramid-notebook-pg-")  # not under pytest's 0700 folders: postgres reads it
    if account is not None:
        os.chown(folder, account.pw_uid, account.pw_gid)
    data, port = os.path.join(folder, "data"), free_port()
    subprocess.run(prefix + [os.path.join(bin_dir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres",
                             "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
    subprocess.run(prefix + [os.path.join(bin_dir, "pg_ctl"), "-D", data, "-l", os.path.join(folder, "log"), "-w",
                             "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    with open(os.path.join(data, "postmaster.pid")) as f:
        pid = int(f.readline())
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        os.kill(pid, signal.SIGINT)  # fast shutdown: the postmaster ends its backends, then itself
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=30, message="PostgreSQL to stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_two_web_nodes_on_one_postgresql(tmp_path, notebook_folder, postgresql):
    import psycopg

    ini = node_ini(tmp_path, notebook_folder, **{"pyramid_notebook.sqlalchemy_url": postgresql})
    a, node_a = start_node(ini, tmp_path / "a.log")
    try:
        b, node_b = start_node(ini, tmp_path / "b.log")
        try:
            owner_a, user2_b, viewer_b = login(a), login(b, "user2"), login(b, "viewer")
            launch(owner_a, a)
            to_user2 = share(owner_a, a, **{"with": "user2", "mode": "collaborate"})
            to_viewer = share(owner_a, a, **{"with": "viewer", "mode": "watch"})
            # Node b sees node a's grants: lists, links, revocation.
            assert [g["id"] for g in listing(user2_b, b)["received"]] == [to_user2["id"]]
            assert user2_b.get(b + "/notebook/shared/" + to_user2["id"]).status_code == 200
            assert revoke(viewer_b, b, to_viewer["id"]).status_code == 204
            refused(login(a, "viewer"), a + "/notebook/shared/" + to_viewer["id"], "revoked")
            owner_b = login(b)
            assert {g["id"] for g in listing(owner_b, b)["given"]} == {to_user2["id"]}
            # The owner stops their notebook through node b: node a's link ends.
            shutdown(owner_b, b)
            refused(login(a, "user2"), a + "/notebook/shared/" + to_user2["id"], "has ended")
            with psycopg.connect(postgresql.replace("+psycopg", "")) as connection:
                rows = connection.execute(f"SELECT id, ended FROM {shares.TABLE} ORDER BY created").fetchall()
            assert rows == [(to_user2["id"], "stopped"), (to_viewer["id"], "revoked")]
        finally:
            stop_process(node_b)
    finally:
        stop_process(node_a)
