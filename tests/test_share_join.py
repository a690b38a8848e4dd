"""Joining a shared notebook (issue 31), through the real demo site and real notebook servers: the guest
opens the grant's link and works in the owner's server under the grant's prefix, while their own shell
keeps working; a watcher reads and is refused; revoke and expiry close the guest's open websockets within
2 s and refuse the next request; each relay mode carries a guest; the owner's secret never reaches one."""
import json
import re
import time

import pytest
import requests
import websocket

from pyramid_notebook.core import audit
from tests.helpers import CLICK, KernelChannel, login
from tests.test_audit import open_kernel, records, stream_of
from tests.test_shares import api, listing, revoke, share

#: A revoked or expired guest's open websockets close within this many seconds.
CLOSE_WITHIN = 2.0


class Guest:
    """A logged-in guest's session that keeps every answer it got (to look for the owner's secret)."""

    def __init__(self, base, username):
        self.base = base
        self.session = login(base, username)
        self.answers = []
        self.session.hooks["response"].append(lambda r, *a, **k: self.answers.append(r))

    def join(self, grant):
        """Open the grant's link; return (the prefix, the page's config)."""
        r = self.session.get(grant["url"], headers={"Accept": "text/html"}, allow_redirects=False)
        assert r.status_code == 302, (r.status_code, r.text)
        prefix = f"/notebook/shared/{grant['id']}/"
        assert r.headers["Location"].startswith(self.base + prefix + "notebooks/"), r.headers["Location"]
        page = self.session.get(r.headers["Location"], headers={"Accept": "text/html"})
        assert page.status_code == 200, page.text
        config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                      page.text, re.S).group(1))
        return prefix, config

    def xsrf(self, prefix):
        return {"X-XSRFToken": self.session.cookies.get("_xsrf"), "Origin": self.base}

    def cookie_header(self):
        return "; ".join(f"{c.name}={c.value}" for c in self.session.cookies)

    def assert_never_saw(self, *secrets):
        for r in self.answers:
            text = r.content.decode("utf-8", "replace") + json.dumps(dict(r.headers))
            for secret in secrets:
                assert secret not in text, (r.url, secret[:4])
        for c in self.session.cookies:
            for secret in secrets:
                assert secret not in (c.value or ""), c.name


def ws_root(base, config):
    """Where the guest's page opens websockets: wsUrl (pserve: the owner's port) or the site."""
    return config.get("wsUrl") or base.replace("http://", "ws://") + config["baseUrl"]


def closed_within(channel, seconds):
    """Seconds until the server closed ``channel`` (reading until the close frame), or fail after ``seconds``."""
    started = time.monotonic()
    channel.ws.settimeout(seconds)
    try:
        while True:
            opcode, _ = channel.ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        pass
    except websocket.WebSocketTimeoutException:
        raise AssertionError(f"the guest's websocket was still open after {seconds} s") from None
    return time.monotonic() - started


def owner_kernel(base):
    s, location, kernel, cookie = open_kernel(base, "user", shell="shell2")
    return s, kernel


def test_a_guest_runs_a_cell_in_the_owners_kernel_and_keeps_their_own_shell(demo_server, notebook_folder):
    base = demo_server.url
    owner, kernel = owner_kernel(base)
    context = demo_server.manager.get_notebook_status("user")
    grant = share(owner, base, **{"with": "user2", "mode": "collaborate", "expires_in": 600})
    guest = Guest(base, "user2")
    # The guest's own shell runs beside it.
    r = guest.session.get(base + "/shell1", headers=CLICK, allow_redirects=False)
    assert r.status_code == 302

    prefix, config = guest.join(grant)
    assert config["baseUrl"] == prefix
    assert config["wsUrl"] == f"ws://127.0.0.1:{context['http_port']}{prefix}"  # pserve: the owner's port
    assert config["fullStaticUrl"].startswith(prefix) and config["fullLabextensionsUrl"].startswith(prefix)
    assert config["pyramidNotebookShutdownUrl"] == ""  # the guest's shut-down would stop their own notebook
    # The login cookie the owner's server gave the guest names the guest, under the prefix only.
    cookie = next(c for c in guest.session.cookies if c.name == f"pyramid-notebook-{context['http_port']}")
    assert cookie.path == prefix

    me = guest.session.get(base + prefix + "api/me").json()["identity"]
    assert (me["username"], me["name"], me["role"]) == ("user2", "Second User", "collaborate")
    notebook = guest.session.get(base + prefix + "api/contents/" + grant["path"])
    assert notebook.status_code == 200 and notebook.json()["type"] == "notebook"
    assert kernel in [k["id"] for k in guest.session.get(base + prefix + "api/kernels").json()]
    main_js = re.search(r'src="([^"]+/main\.[0-9a-f]+\.js)', guest.answers[-1].text if False else
                        guest.session.get(base + prefix + "tree", headers={"Accept": "text/html"}).text).group(1)
    assert main_js.startswith(prefix + "static/notebook/")  # the bundle under the prefix too
    assert guest.session.get(base + main_js).status_code == 200

    channel = KernelChannel(ws_root(base, config) + f"api/kernels/{kernel}/channels", origin=base,
                            cookie=guest.cookie_header())
    try:
        assert channel.execute("guest_ran = 6 * 7; guest_ran") == "42"
    finally:
        channel.close()
    cell = [r for r in records(notebook_folder, "execute") if r["code"] == "guest_ran = 6 * 7; guest_ran"]
    assert [(r["user"], r["owner"], r["role"]) for r in cell] == [("user2", "user", "collaborate")]
    assert audit.verify(stream_of(notebook_folder)) is None

    # A write, as the page sends it. Both servers keep Jupyter's XSRF cookie at /notebook/ (one cookie: its
    # token is a random value any of them checks against its header), so the guest's two tabs agree.
    assert [c.path for c in guest.session.cookies if c.name == "_xsrf"] == ["/notebook/"]
    r = guest.session.put(base + prefix + "api/contents/from-guest.txt", headers=guest.xsrf(prefix),
                          json={"type": "file", "format": "text", "content": "hello"})
    assert r.status_code == 201, r.text
    assert r.headers["Location"].split("://", 1)[-1].partition("/")[2].startswith(prefix[1:])  # under the prefix
    with open(f"{notebook_folder}/user/from-guest.txt") as f:
        assert f.read() == "hello"

    # The guest's own notebook, in its own server, is still theirs.
    own = guest.session.get(base + "/notebook/api/me").json()["identity"]
    assert (own["username"], own["role"]) == ("user2", "owner")
    assert guest.session.get(base + "/notebook/api/contents").status_code == 200
    own_context = demo_server.manager.get_notebook_status("user2")
    assert own_context["http_port"] != context["http_port"]

    # Another prefix, or the owner's own paths, are not the guest's way in.
    assert guest.session.get(base + f"/notebook/shared/{'B' * 32}/api/me").status_code == 403
    assert guest.session.get(base + prefix + "pyramid-notebook/guests").status_code == 404
    # A stranger with the link learns nothing.
    stranger = login(base, "viewer")
    r = stranger.get(base + prefix + "api/contents", headers={"Accept": "text/html"})
    assert r.status_code == 403 and "not for you" in r.text and "ipynb" not in r.text

    guest.assert_never_saw(context["token"], *[c.value for c in owner.cookies if c.name.startswith("pyramid")])


def joined_channel(base, kernel, owner, **grant_fields):
    """Share the owner's notebook with user2, join it, open the guest's kernel channel: (grant, guest,
    prefix, config, channel)."""
    grant = share(owner, base, **dict({"with": "user2", "mode": "collaborate"}, **grant_fields))
    guest = Guest(base, "user2")
    prefix, config = guest.join(grant)
    channel = KernelChannel(ws_root(base, config) + f"api/kernels/{kernel}/channels", origin=base,
                            cookie=guest.cookie_header())
    return grant, guest, prefix, config, channel


def test_revoke_closes_the_guests_websocket_and_refuses_the_next_request(demo_server, notebook_folder):
    base = demo_server.url
    owner, kernel = owner_kernel(base)
    grant, guest, prefix, config, channel = joined_channel(base, kernel, owner, expires_in=600)
    try:
        assert channel.execute("'joined'") == "'joined'"
        # The owner's listing says who is connected now.
        entry = next(g for g in listing(owner, base)["given"] if g["id"] == grant["id"])
        assert entry["active"] == ["user2"]
        started = time.monotonic()
        assert revoke(owner, base, grant["id"]).status_code == 204
        closed_within(channel, CLOSE_WITHIN)
        assert time.monotonic() - started < CLOSE_WITHIN
    finally:
        channel.close()
    r = guest.session.get(base + prefix + "api/me", headers={"Accept": "text/html"})
    assert r.status_code == 403 and "revoked" in r.text
    # The guest's cookie for the owner's port is refused from now on (pserve's direct websockets).
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        KernelChannel(ws_root(base, config) + f"api/kernels/{kernel}/channels", origin=base,
                      cookie=guest.cookie_header())
    assert refused.value.status_code == 403
    assert grant["id"] not in [g["id"] for g in listing(owner, base)["given"]]


def test_expiry_closes_the_guests_websocket(demo_server, notebook_folder):
    base = demo_server.url
    owner, kernel = owner_kernel(base)
    grant, guest, prefix, config, channel = joined_channel(base, kernel, owner, expires_in=4)
    try:
        assert channel.execute("'until expiry'") == "'until expiry'"
        expires = grant["expires"]
        import calendar

        at = calendar.timegm(time.strptime(expires, "%Y-%m-%dT%H:%M:%SZ"))
        closed_within(channel, at - time.time() + CLOSE_WITHIN + 1)  # the stored expiry is whole seconds
        assert time.time() < at + CLOSE_WITHIN
    finally:
        channel.close()
    r = guest.session.get(base + prefix + "api/me", headers={"Accept": "text/html"})
    assert r.status_code == 403 and "expired" in r.text


def test_a_watcher_reads_but_cannot_run_or_write(demo_server, notebook_folder):
    base = demo_server.url
    owner, kernel = owner_kernel(base)
    # collaborate asked, but viewer holds no shell permission: watch.
    grant = share(owner, base, **{"with": "viewer", "mode": "collaborate"})
    assert grant["mode"] == "watch"
    viewer = Guest(base, "viewer")
    prefix, config = viewer.join(grant)
    me = viewer.session.get(base + prefix + "api/me").json()["identity"]
    assert (me["username"], me["role"]) == ("viewer", "watch")
    r = viewer.session.get(base + prefix + "api/contents/" + grant["path"])
    assert r.status_code == 200 and r.json()["type"] == "notebook"
    r = viewer.session.put(base + prefix + "api/contents/watched.txt", headers=viewer.xsrf(prefix),
                           json={"type": "file", "format": "text", "content": "no"})
    assert r.status_code == 403, r.text
    channel = KernelChannel(ws_root(base, config) + f"api/kernels/{kernel}/channels", origin=base,
                            cookie=viewer.cookie_header())
    try:
        msg_id = channel.send("shell", "execute_request", {"code": "watched = 1", "silent": False,
                                                          "store_history": False, "user_expressions": {},
                                                          "allow_stdin": False, "stop_on_error": True})
        reply = next(c for k, c, _, _ in channel.replies(msg_id) if k == "execute_reply")
        assert reply["status"] == "error" and "watching" in reply["evalue"], reply
    finally:
        channel.close()
    refused = [r for r in records(notebook_folder, "refused") if r.get("user") == "viewer"]
    assert {r.get("msg_type") for r in refused} >= {"execute_request"}
    assert any(r.get("request", "").startswith("PUT ") for r in refused)
    context = demo_server.manager.get_notebook_status("user")
    viewer.assert_never_saw(context["token"])


@pytest.mark.parametrize("mode", ["uwsgi", "asgi", "accel"])
def test_every_relay_carries_a_guest(mode, tmp_path):
    from pyramid_notebook.backends.local.manager import NotebookManager
    from tests.test_audit_relays import _Relay

    relay = _Relay(mode, tmp_path)
    try:
        base = relay.url
        owner, kernel = owner_kernel(base)
        context = NotebookManager(relay.folder).get_notebook_status("user")
        grant = share(owner, base, **{"with": "user2", "mode": "collaborate", "expires_in": 600})
        guest = Guest(base, "user2")
        prefix, config = guest.join(grant)
        assert config["baseUrl"] == prefix and not config.get("wsUrl")  # relayed: the site's own origin
        channel = KernelChannel(ws_root(base, config) + f"api/kernels/{kernel}/channels", origin=base,
                                cookie=guest.cookie_header())
        try:
            assert channel.execute(f"'guest through {mode}'") == f"'guest through {mode}'"
            started = time.monotonic()
            assert revoke(owner, base, grant["id"]).status_code == 204
            closed_within(channel, CLOSE_WITHIN)
            assert time.monotonic() - started < CLOSE_WITHIN
        finally:
            channel.close()
        cell = [r for r in records(relay.folder, "execute") if r["code"] == f"'guest through {mode}'"]
        assert [(r["user"], r["owner"]) for r in cell] == [("user2", "user")]
        assert guest.session.get(base + prefix + "api/me", headers={"Accept": "text/html"}).status_code == 403
        guest.assert_never_saw(context["token"])
    finally:
        relay.stop()


def test_the_shares_api_stays_same_origin(demo_server):
    base = demo_server.url
    owner, _ = owner_kernel(base)
    r = owner.post(base + "/notebook/shares", data=json.dumps({"with": "user2", "mode": "watch"}),
                   headers=dict(api(base), Origin="http://evil.example"))
    assert r.status_code == 403
    anonymous = requests.get(base + "/notebook/shared/" + "A" * 32 + "/api/me", allow_redirects=False)
    assert anonymous.status_code in (302, 403)


def test_guest_prefixes_and_signed_grants():
    from pyramid_notebook.core.guests import guest_prefix, split_guest_path
    from pyramid_notebook.core.person import COLLABORATE, Person, sign_person, verify_person

    grant = "G" * 32
    assert guest_prefix("/notebook/", grant) == f"/notebook/shared/{grant}/"
    assert split_guest_path("/notebook/", f"/notebook/shared/{grant}/api/me") == (grant, "/notebook/api/me")
    for path in ("/notebook/api/me", f"/notebook/shared/{grant}", "/notebook/shared/short/api/me",
                 f"/notebook/shared/{grant[:-1]}%2F/x", "/other/shared/" + grant + "/x"):
        assert split_guest_path("/notebook/", path) == (None, path)
    value = sign_person("secret", Person("user2", role=COLLABORATE, grant=grant, until=2_000_000_000), now=1e9)
    person = verify_person("secret", value, now=1e9)
    assert (person.grant, person.until) == (grant, 2_000_000_000)
    with pytest.raises(ValueError):  # a guest is never the owner
        sign_person("secret", Person("user2", role="owner", grant=grant))


def test_the_server_admits_a_guest_under_their_grants_prefix_only(demo_server, notebook_folder):
    from tests.test_person_identity import direct, launch, vouched
    from pyramid_notebook.core.person import COLLABORATE, PERSON_HEADER, Person, sign_person

    _, context = launch(demo_server)
    url, grant, other = direct(context), "G" * 32, "H" * 32
    headers = vouched(context, "user2", COLLABORATE)
    headers[PERSON_HEADER] = sign_person(context["token"], Person("user2", role=COLLABORATE, grant=grant,
                                                                  until=int(time.time()) + 600))
    r = requests.get(f"{url}shared/{grant}/api/me", headers=headers, timeout=30)
    assert r.status_code == 200 and r.json()["identity"]["username"] == "user2"
    for path in ("api/me", f"shared/{other}/api/me"):  # outside their grant's prefix
        assert requests.get(url + path, headers=headers, timeout=30).status_code == 403, path
    owner = vouched(context, "user", "owner")  # nobody else under a grant's prefix, not even the owner
    assert requests.get(f"{url}shared/{grant}/api/me", headers=owner, timeout=30).status_code == 403
    expired = dict(headers, **{PERSON_HEADER: sign_person(context["token"], Person(
        "user2", role=COLLABORATE, grant=grant, until=int(time.time()) - 1))})
    assert requests.get(f"{url}shared/{grant}/api/me", headers=expired, timeout=30).status_code == 403
    # The site's endpoint about guests answers the site's proof only.
    r = requests.post(url + "pyramid-notebook/guests", data=b'{"active": true}', headers=owner, timeout=30)
    assert r.status_code == 404
