"""Who sends each request to a notebook server (issue 31, identity): the site vouches for the person.

Real notebook servers and kernels. The site's proxy signs the person (site user id, name, role,
expiry) with the notebook's per-start secret on every relayed request and websocket; the server
believes nothing else. Team mates cannot be granted a notebook yet (grants come next), so the
tests sign a collaborator or a watcher themselves with the same core function the site uses, and
talk to the notebook's port as the site's relay would.
"""
import json
import os
import secrets
import time

import pytest
import requests
import websocket

from pyramid_notebook.core import audit
from pyramid_notebook.core.person import COLLABORATE, PERSON_HEADER, WATCH, Person, sign_person, verify_person
from tests.helpers import CLICK, KernelChannel, login
from tests.test_audit import cli, open_kernel, records, stream_of


def test_a_signed_person_verifies_only_with_its_secret_and_before_it_expires():
    now = 1_800_000_000
    value = sign_person("secret", Person("alice", "Alice \u00c9", WATCH), now=now)
    assert value.isascii() and "/" not in value and "%" not in value  # fits a header and nginx's grant URI
    assert verify_person("secret", value, now=now + 10) == Person("alice", "Alice \u00c9", WATCH, now + 300)
    assert verify_person("other secret", value, now=now) is None
    assert verify_person("secret", value, now=now + 301) is None  # expired
    payload, signature = value.split(".")
    forged = sign_person("secret", Person("mallory", "", "owner"), now=now).split(".")[0]
    assert verify_person("secret", f"{forged}.{signature}", now=now) is None  # another payload, same signature
    assert verify_person("secret", f"{payload}.{signature[:-1]}0", now=now) is None
    for garbage in ("", "x", ".", "a.b", "\u00e9.\u00e9", value * 40, None, 42):
        assert verify_person("secret", garbage, now=now) is None
    with pytest.raises(ValueError):
        sign_person("secret", Person("alice", role="admin"))
    with pytest.raises(ValueError):
        sign_person("", Person("alice"))


# --- helpers: the notebook's port, as the site's relay talks to it ---------------------------------


def direct(context) -> str:
    return f"http://127.0.0.1:{context['http_port']}{context.get('notebook_path') or '/notebook/'}"


def vouched(context, user, role, name=None, **sign):
    """Headers of a relayed request for ``user`` (the secret, the signed person, an XSRF pair)."""
    xsrf = secrets.token_hex(16)
    return {"Authorization": f"token {context['token']}", "X-XSRFToken": xsrf, "Cookie": f"_xsrf={xsrf}",
            PERSON_HEADER: sign_person(context["token"], Person(user, name or user, role), **sign)}


def login_cookie(response) -> str:
    """``name=value`` of the notebook's login cookie the server set on ``response``."""
    found = [c for c in response.cookies if c.name.startswith("pyramid-notebook-")]
    assert len(found) == 1, response.headers
    return f"{found[0].name}={found[0].value}"


def me(url, headers) -> requests.Response:
    return requests.get(url + "api/me", headers=headers, timeout=30)


def launch(server, username="user"):
    s = login(server.url, username)
    r = s.get(server.url + "/shell2", headers=CLICK, allow_redirects=False)
    assert r.status_code == 302, r.text
    assert s.get(r.headers["Location"]).status_code == 200
    return s, server.manager.get_notebook_status(username)


def test_the_server_believes_only_the_person_the_site_signed(demo_server, notebook_folder):
    s, context = launch(demo_server)
    url = direct(context)

    # Through the site: the owner, whatever the browser sends (even a value signed with the real secret).
    planted = sign_person(context["token"], Person("mallory", "Mallory", WATCH))
    r = s.get(demo_server.url + "/notebook/api/me", headers={PERSON_HEADER: planted})
    assert r.status_code == 200, r.text
    identity = r.json()["identity"]
    assert (identity["username"], identity["name"], identity["role"]) == ("user", "user", "owner")

    # As the relay sends it: the person signed, with the secret beside it.
    r = me(url, vouched(context, "user2", COLLABORATE, name="Second User"))
    assert r.status_code == 200, r.text
    identity = r.json()["identity"]
    assert (identity["username"], identity["display_name"], identity["role"]) == ("user2", "Second User",
                                                                                 "collaborate")
    # The login cookie carries the person: pserve's direct websockets come with nothing else.
    cookie = login_cookie(r)
    r = me(url, {"Cookie": cookie})
    assert r.status_code == 200 and r.json()["identity"]["username"] == "user2"

    # Forged, expired, tampered, or without the secret: refused (no cookie to fall back on).
    signed = vouched(context, "user2", COLLABORATE)
    other_secret = dict(signed, **{PERSON_HEADER: sign_person("not the secret", Person("user2", role=COLLABORATE))})
    expired = vouched(context, "user2", COLLABORATE, now=time.time() - 400)
    payload, signature = signed[PERSON_HEADER].split(".")
    owner_payload = sign_person(context["token"], Person("user", role="owner")).split(".")[0]
    tampered = dict(signed, **{PERSON_HEADER: f"{owner_payload}.{signature}"})
    no_secret = {k: v for k, v in signed.items() if k != "Authorization"}
    for headers in (other_secret, expired, tampered, no_secret):
        r = me(url, headers)
        assert r.status_code == 403, (headers, r.status_code, r.text)
        assert not [c for c in r.cookies if c.name.startswith("pyramid-notebook-")]
    # ...and with a cookie, the cookie's person, not the header's.
    r = me(url, dict(tampered, Cookie=cookie))
    assert r.status_code == 200 and r.json()["identity"]["username"] == "user2"
    # The site's own calls (the secret alone: status, contents, shells) are the owner's, vouched for no one.
    r = me(url, {"Authorization": f"token {context['token']}"})
    assert r.status_code == 200 and r.json()["identity"]["username"] == "user"
    assert "role" not in r.json()["identity"]


def test_cells_are_recorded_with_who_ran_them_in_whose_notebook(demo_server, notebook_folder):
    s, location, kernel, cookie = open_kernel(demo_server.url)
    context = demo_server.manager.get_notebook_status("user")
    ws_url = f"ws://127.0.0.1:{context['http_port']}/notebook/api/kernels/{kernel}/channels"
    # The owner, through pserve's direct websocket (the cookie the proxied page earned).
    channel = KernelChannel(ws_url, origin=demo_server.url, cookie=cookie)
    try:
        assert channel.execute("owner_ran = 6 * 7; owner_ran") == "42"
    finally:
        channel.close()
    # A collaborator the site vouched for, in the owner's notebook.
    r = me(direct(context), vouched(context, "user2", COLLABORATE))
    assert r.status_code == 200, r.text
    channel = KernelChannel(ws_url, origin=demo_server.url, cookie=login_cookie(r))
    try:
        assert channel.execute("owner_ran + 1") == "43"
    finally:
        channel.close()
    executed = {r["code"]: r for r in records(notebook_folder, "execute")}
    owner_cell, guest_cell = executed["owner_ran = 6 * 7; owner_ran"], executed["owner_ran + 1"]
    assert (owner_cell["user"], owner_cell["owner"], owner_cell["role"]) == ("user", "user", "owner")
    assert (guest_cell["user"], guest_cell["owner"], guest_cell["role"]) == ("user2", "user", "collaborate")
    assert all(r["owner"] == "user" for r in records(notebook_folder))
    assert audit.verify(stream_of(notebook_folder)) is None

    # user2's own notebook: --user finds what they ran anywhere, in every user's stream.
    _, _, kernel2, cookie2 = open_kernel(demo_server.url, "user2")
    context2 = demo_server.manager.get_notebook_status("user2")
    channel = KernelChannel(f"ws://127.0.0.1:{context2['http_port']}/notebook/api/kernels/{kernel2}/channels",
                            origin=demo_server.url, cookie=cookie2)
    try:
        assert channel.execute("'at home'") == "'at home'"
    finally:
        channel.close()
    shown = cli("show", notebook_folder, "--user", "user2", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [(r["code"], r["owner"]) for r in rows if r["kind"] == "execute"] == [
        ("owner_ran + 1", "user"), ("'at home'", "user2")]
    assert {r["user"] for r in rows} == {"user2"}
    text = cli("show", notebook_folder, "--user", "user2").stdout
    assert "user2 (collaborate in user's notebook)" in text and "owner_ran + 1" in text
    assert "owner_ran = 6" not in text


def _refused(notebook_folder):
    return [r for r in records(notebook_folder, "refused") if r.get("user") == "viewer"]


def test_a_watcher_reads_but_changes_nothing(demo_server, notebook_folder):
    s, location, kernel, cookie = open_kernel(demo_server.url)
    context = demo_server.manager.get_notebook_status("user")
    site_xsrf = {"X-XSRFToken": s.cookies.get("_xsrf", path="/notebook/"), "Origin": demo_server.url}
    r = s.post(demo_server.url + "/notebook/api/terminals", headers=site_xsrf)
    assert r.status_code == 200, r.text
    terminal = r.json()["name"]
    url = direct(context)
    watcher = requests.Session()
    watcher.headers.update(vouched(context, "viewer", WATCH, name="Viewer"))

    # Looking is allowed.
    r = watcher.get(url + "api/me", params={"permissions": json.dumps({"contents": ["read", "write"]})})
    assert r.status_code == 200, r.text
    assert r.json()["identity"]["role"] == "watch"
    assert r.json()["permissions"]["contents"] == ["read"]
    watcher_cookie = login_cookie(r)
    for path in ("api/contents", "api/contents/" + context["notebook_name"], "api/sessions", "api/kernels",
                 f"api/kernels/{kernel}"):
        assert watcher.get(url + path).status_code == 200, path
    assert not _refused(notebook_folder)  # api/me's permission questions are not refusals

    # Changing anything is not: 403, and each refusal is on record.
    attempts = [
        ("PUT", "api/contents/watched.txt", {"type": "file", "format": "text", "content": "no"}),
        ("POST", "api/contents", {"type": "notebook"}),
        ("POST", "api/kernels", {"name": "python3"}),
        ("POST", f"api/kernels/{kernel}/interrupt", None),
        ("POST", f"api/kernels/{kernel}/restart", None),
        ("DELETE", f"api/kernels/{kernel}", None),
        ("POST", "api/sessions", {"path": "x.ipynb", "type": "notebook", "kernel": {"name": "python3"}}),
        ("GET", "api/terminals", None),
        ("POST", "api/terminals", None),
        ("DELETE", f"api/terminals/{terminal}", None),
    ]
    for method, path, body in attempts:
        r = watcher.request(method, url + path, json=body)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
    assert not os.path.exists(os.path.join(notebook_folder, "user", "watched.txt"))
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"ws://127.0.0.1:{context['http_port']}/notebook/terminals/websocket/{terminal}",
                                    origin=demo_server.url, header=[f"Cookie: {watcher_cookie}"], timeout=30)
    assert refused.value.status_code == 403
    # The owner's kernel and terminal are untouched.
    assert kernel in [k["id"] for k in s.get(demo_server.url + "/notebook/api/kernels").json()]
    assert terminal in [t["name"] for t in s.get(demo_server.url + "/notebook/api/terminals").json()]

    # The kernel's websocket shows the kernel, and refuses the watcher's code.
    ws_url = f"ws://127.0.0.1:{context['http_port']}/notebook/api/kernels/{kernel}/channels"
    channel = KernelChannel(ws_url, origin=demo_server.url, cookie=watcher_cookie)
    try:
        msg_id = channel.send("shell", "kernel_info_request", {})
        info = next(c for k, c, _, _ in channel.replies(msg_id) if k == "kernel_info_reply")
        assert info["status"] == "ok"
        msg_id = channel.send("shell", "execute_request", {"code": "watched = 1", "silent": False,
                                                          "store_history": False, "user_expressions": {},
                                                          "allow_stdin": False, "stop_on_error": True})
        reply = next(c for k, c, _, _ in channel.replies(msg_id) if k == "execute_reply")
        assert reply["status"] == "error" and "watching" in reply["evalue"], reply
        for channel_name, msg_type in (("shell", "comm_open"), ("control", "interrupt_request"),
                                       ("shell", "complete_request")):
            msg_id = channel.send(channel_name, msg_type, {"code": "x", "cursor_pos": 1, "comm_id": "c",
                                                           "target_name": "t", "data": {}})
            if msg_type != "comm_open":
                reply_type = msg_type.replace("_request", "_reply")
                assert next(c for k, c, _, _ in channel.replies(msg_id) if k == reply_type)["status"] == "error"
    finally:
        channel.close()
    owner = KernelChannel(ws_url, origin=demo_server.url, cookie=cookie)
    try:
        assert owner.execute("'watched' in dir()") == "False"
    finally:
        owner.close()

    refusals = _refused(notebook_folder)
    assert {r["request"] for r in refusals if "request" in r} >= {
        f"{method} /notebook/{path}" for method, path, _ in attempts} | {
        f"GET /notebook/terminals/websocket/{terminal}"}
    assert {r["msg_type"] for r in refusals if "msg_type" in r} == {
        "execute_request", "comm_open", "interrupt_request", "complete_request"}
    assert all(r["role"] == "watch" and r["owner"] == "user" for r in refusals)
    assert not [r for r in records(notebook_folder, "execute") if r.get("user") == "viewer"]
    assert audit.verify(stream_of(notebook_folder)) is None
    shown = cli("show", notebook_folder, "--user", "viewer").stdout
    assert "viewer (watch in user's notebook)" in shown and "[refused PUT /notebook/api/contents/watched.txt]" in shown


# --- every relay mode carries the person, never the browser's ------------------------------------


@pytest.mark.parametrize("mode", ["uwsgi", "asgi", "accel"])
def test_every_relay_vouches_for_the_person_on_requests_and_websockets(mode, tmp_path):
    from tests.test_audit_relays import _Relay

    relay = _Relay(mode, tmp_path)
    try:
        s, location, kernel, cookie = open_kernel(relay.url)
        from pyramid_notebook.backends.local.manager import NotebookManager

        context = NotebookManager(relay.folder).get_notebook_status("user")
        planted = sign_person(context["token"], Person("mallory", "Mallory", WATCH))
        r = s.get(relay.url + "/notebook/api/me", headers={PERSON_HEADER: planted})
        assert r.status_code == 200, r.text
        identity = r.json()["identity"]
        assert (identity["username"], identity["role"]) == ("user", "owner")
        # The handshake without the notebook's login cookie: only the relay's person says who it is.
        site_only = "; ".join(f"{c.name}={c.value}" for c in s.cookies if not c.name.startswith("pyramid-notebook-"))
        channel = KernelChannel(f"{relay.url.replace('http://', 'ws://')}/notebook/api/kernels/{kernel}/channels",
                                origin=relay.url, cookie=site_only, headers=[f"{PERSON_HEADER}: {planted}"])
        try:
            assert channel.execute(f"'relayed by {mode}'") == f"'relayed by {mode}'"
        finally:
            channel.close()
        cell = [r for r in records(relay.folder, "execute") if r["code"] == f"'relayed by {mode}'"]
        assert [(r["user"], r["owner"], r["role"]) for r in cell] == [("user", "user", "owner")]
    finally:
        relay.stop()
