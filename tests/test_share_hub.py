"""Shared sessions (issue 31) on the JupyterHub backend, against a real JupyterHub 6 and configurable-http-proxy
(the shipped hub/jupyterhub_config.py) and a real web node serving hub.ini.

A grant is a JupyterHub share of the owner's server, made through the hub's REST API and deleted on revoke;
the guest reaches the owner's hub server through the site with a hub token of their own (never the owner's),
the person signed per request; a watcher is refused in the server; revoke closes the guest's websocket.
"""
import json
import os
import re
import time

import pytest
import requests
import websocket

from pyramid_notebook.backends.hub.shares import GUEST_TOKEN_NOTE
from pyramid_notebook.core import audit
from tests.helpers import CLICK, KernelChannel, login_form_token
from tests.hubhelpers import CHP, HUB_TOKEN, JUPYTERHUB, Hub, WebNode
from tests.test_share_join import CLOSE_WITHIN, closed_within

pytestmark = [
    pytest.mark.skipif(not (os.path.exists(JUPYTERHUB) and os.path.exists(CHP)),
                       reason="needs jupyterhub and configurable-http-proxy (scripts/test installs them)"),
    pytest.mark.timeout(900),
]
PUBLIC = "site.example.test"
ORIGIN = f"http://{PUBLIC}"
#: What a JupyterHub API token looks like (``secrets.token_hex(16)``).
TOKEN_LIKE = re.compile(rb"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
EXECUTE = {"silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False,
           "stop_on_error": True}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    hub = Hub(tmp_path_factory.mktemp("hub"))
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def node(hub, tmp_path_factory):
    node = WebNode(tmp_path_factory.mktemp("node"), hub, "node1", "pserve")
    yield node
    node.stop()


class Person:
    """A browser's session on the web node, as the public name, keeping every answer it got."""

    def __init__(self, node, username):
        self.node, self.answers = node, []
        self.s = requests.Session()
        self.s.headers["Host"] = PUBLIC
        self.s.hooks["response"].append(lambda r, *a, **k: self.answers.append(r))
        r = self.s.post(node.url + "/login", data={"username": username, "password": "password",
                                                   "csrf_token": login_form_token(self.s, node.url)},
                        allow_redirects=False)
        assert r.status_code == 302, r.text

    def get(self, path, **kw):
        return self.s.get(self.node.url + path, allow_redirects=False, **kw)

    def api(self, method, path, body=None):
        headers = {"Origin": ORIGIN, "Accept": "application/json", "Content-Type": "application/json"}
        return self.s.request(method, self.node.url + path, headers=headers,
                              data=None if body is None else json.dumps(body))

    def write(self, method, path, body):
        """A write as the notebook page sends it: Jupyter's XSRF token and the site's Origin."""
        return self.s.request(method, self.node.url + path, json=body,
                              headers={"X-XSRFToken": self.s.cookies.get("_xsrf") or "", "Origin": ORIGIN})

    def cookies(self):
        return "; ".join(f"{c.name}={c.value}" for c in self.s.cookies)

    def channel(self, path):
        url = self.node.url.replace("http://", "ws://") + path
        return KernelChannel(url, origin=ORIGIN, cookie=self.cookies(), host=PUBLIC)

    def join(self, grant):
        """Open the grant's link; return the guest's prefix (the page loaded under it)."""
        assert grant["url"].startswith(ORIGIN + "/notebook/shared/"), grant["url"]
        r = self.get(grant["url"][len(ORIGIN):], headers={"Accept": "text/html"})
        assert r.status_code == 302, (r.status_code, r.text)
        prefix = f"/notebook/user/user/shared/{grant['id']}/"
        assert r.headers["Location"].startswith(ORIGIN + prefix + "notebooks/"), r.headers["Location"]
        page = self.get(r.headers["Location"][len(ORIGIN):], headers={"Accept": "text/html"})
        assert page.status_code == 200, page.text[:500]
        config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                      page.text, re.S).group(1))
        assert config["baseUrl"] == prefix and config["token"] == ""
        return prefix

    def assert_never_saw(self, hub, *secrets):
        """No owner's secret, no hub token that works, in any answer or cookie this person got."""
        candidates = set()
        for r in self.answers:
            text = r.content + json.dumps(dict(r.headers)).encode()
            for secret in secrets + (HUB_TOKEN,):
                assert secret.encode() not in text, (r.url, secret[:4])
            candidates.update(TOKEN_LIKE.findall(text))
        for c in self.s.cookies:
            candidates.update(TOKEN_LIKE.findall((c.value or "").encode()))
        for candidate in candidates:
            r = requests.get(hub.url + "hub/api/user", headers={"Authorization": f"token {candidate.decode()}"},
                             timeout=10)
            assert r.status_code in (401, 403), f"a live hub token reached a browser: {r.text[:200]}"


def hub_api(hub, path):
    r = requests.get(hub.url + "hub/api/" + path, headers={"Authorization": f"token {HUB_TOKEN}",
                                                           "Accept": "application/jupyterhub-pagination+json"},
                     timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def shared_with(hub, owner="user"):
    return sorted(share["user"]["name"] for share in hub_api(hub, f"shares/{owner}/")["items"] if share["user"])


def guest_tokens(hub, guest):
    return [t for t in hub_api(hub, f"users/{guest}/tokens")["api_tokens"] if t.get("note") == GUEST_TOKEN_NOTE]


def audit_records(hub, kind, owner="user"):
    stream = os.path.join(hub.env["PYRAMID_NOTEBOOK_FOLDER"], owner, audit.HUB_AUDIT_FOLDER, audit.AUDIT_FILE_NAME)
    return [r for r in audit.read_records(stream) if r.get("kind") == kind]


def owner_kernel(owner):
    """Launch the owner's Shell 2 on the hub and start its notebook's kernel; ``(notebook name, kernel id)``."""
    r = owner.get("/shell2", headers=CLICK)
    assert r.status_code == 302, r.text
    location = r.headers["Location"][len(ORIGIN):]
    assert owner.get(location).status_code == 200  # the page sets Jupyter's _xsrf cookie
    name = location.rsplit("/", 1)[1]
    r = owner.write("POST", "/notebook/user/user/api/sessions",
                    {"path": name, "type": "notebook", "kernel": {"name": "python3"}})
    assert r.status_code == 201, r.text
    return name, r.json()["kernel"]["id"]


def test_a_grant_is_a_hub_share_and_its_guest_works_in_the_owners_server(hub, node):
    owner = Person(node, "user")
    name, kernel = owner_kernel(owner)
    collaborate = owner.api("POST", "/notebook/shares", {"with": "user2", "mode": "collaborate", "expires_in": 600})
    assert collaborate.status_code == 201, collaborate.text
    collaborate = collaborate.json()
    watch = owner.api("POST", "/notebook/shares", {"with": "viewer", "mode": "watch", "expires_in": 600}).json()
    assert watch["mode"] == "watch" and collaborate["mode"] == "collaborate"
    assert shared_with(hub) == ["user2", "viewer"]  # one JupyterHub share per grant's grantee

    # The collaborator: their own hub token reaches the owner's server, under the grant's prefix.
    guest = Person(node, "user2")
    prefix = guest.join(collaborate)
    me = guest.get(prefix + "api/me").json()["identity"]
    assert (me["username"], me["name"], me["role"]) == ("user2", "Second User", "collaborate")
    assert guest.get(prefix + "api/contents/" + collaborate["path"]).json()["type"] == "notebook"
    # Real-time co-editing, loaded into the owner's hub server once it is shared (collaboration = auto).
    page = guest.get(prefix + "notebooks/" + collaborate["path"], headers={"Accept": "text/html"})
    assert '"pyramidNotebookCollaboration": "live"' in page.text
    room = guest.write("PUT", prefix + "api/collaboration/session/" + collaborate["path"],
                       {"format": "json", "type": "notebook"})
    assert room.status_code in (200, 201) and room.json()["fileId"], room.text
    assert [t["note"] for t in guest_tokens(hub, "user2")] == [GUEST_TOKEN_NOTE]
    # The guest's token: their own, reaching the owner's server only (and naming its user, as every token).
    assert [[s for s in t["scopes"] if not s.startswith("read:users:")] for t in guest_tokens(hub, "user2")] == \
        [["access:servers!server=user/"]]
    # ... and it is what the site relays the guest with: the hub saw it used (the owner's token is not).
    assert guest_tokens(hub, "user2")[0]["last_activity"], guest_tokens(hub, "user2")
    channel = guest.channel(prefix + f"api/kernels/{kernel}/channels")
    try:
        assert channel.execute("guest_on_hub = 6 * 7; guest_on_hub") == "42"
        # The owner's listing asks their hub server who is connected (the guests endpoint, through the hub).
        given = owner.s.get(node.url + "/notebook/shares", headers={"Accept": "application/json"}).json()["given"]
        assert next(g for g in given if g["id"] == collaborate["id"])["active"] == ["user2"]
        cell = [r for r in audit_records(hub, "execute") if r["code"] == "guest_on_hub = 6 * 7; guest_on_hub"]
        assert [(r["user"], r["owner"], r["role"]) for r in cell] == [("user2", "user", "collaborate")]
        r = guest.write("PUT", prefix + "api/contents/from-hub-guest.txt",
                        {"type": "file", "format": "text", "content": "hello"})
        assert r.status_code == 201, r.text

        # The watcher reads, and is refused a cell and a write, each an audit record.
        viewer = Person(node, "viewer")
        watch_prefix = viewer.join(watch)
        assert viewer.get(watch_prefix + "api/me").json()["identity"]["role"] == "watch"
        assert viewer.get(watch_prefix + "api/contents/" + watch["path"]).status_code == 200
        r = viewer.write("PUT", watch_prefix + "api/contents/watched.txt",
                         {"type": "file", "format": "text", "content": "no"})
        assert r.status_code == 403, r.text
        watching = viewer.channel(watch_prefix + f"api/kernels/{kernel}/channels")
        try:
            msg_id = watching.send("shell", "execute_request", dict(EXECUTE, code="watched = 1"))
            reply = next(c for k, c, _, _ in watching.replies(msg_id) if k == "execute_reply")
            assert reply["status"] == "error" and "watching" in reply["evalue"], reply
        finally:
            watching.close()
        refused = [r for r in audit_records(hub, "refused") if r.get("user") == "viewer"]
        assert {r.get("msg_type") for r in refused} >= {"execute_request"}
        assert any(r.get("request", "").startswith("PUT ") for r in refused)

        # Strangers: another grantee's link and prefix, or a forged one, are refused and say nothing.
        r = viewer.get(collaborate["url"][len(ORIGIN):], headers={"Accept": "text/html"})
        assert r.status_code == 403 and "not for you" in r.text
        r = viewer.get(prefix + "api/contents", headers={"Accept": "text/html"})
        assert r.status_code == 403 and "ipynb" not in r.text
        assert viewer.get(f"/notebook/user/user/shared/{'B' * 32}/api/me").status_code == 403
        r = viewer.get("/notebook/user/user/api/me")  # the owner's own path: not the viewer's notebook
        assert r.status_code in (403, 404) and "Demo User" not in r.text

        # Revoke: the hub's share and the guest's token go, the websocket closes, the next request is refused.
        started = time.monotonic()
        assert owner.api("DELETE", f"/notebook/shares/{collaborate['id']}").status_code == 204
        closed_within(channel, CLOSE_WITHIN)
        assert time.monotonic() - started < CLOSE_WITHIN
    finally:
        channel.close()
    assert shared_with(hub) == ["viewer"]
    assert guest_tokens(hub, "user2") == []
    r = guest.get(prefix + "api/me", headers={"Accept": "text/html"})
    assert r.status_code == 403 and "revoked" in r.text
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        guest.channel(prefix + f"api/kernels/{kernel}/channels")
    assert refused.value.status_code == 403
    assert owner.api("DELETE", f"/notebook/shares/{watch['id']}").status_code == 204
    assert shared_with(hub) == []
    assert viewer.get(watch_prefix + "api/me", headers={"Accept": "text/html"}).status_code == 403

    # The owner is still themselves in their own server, and no guest saw a token or the owner's cookies.
    me = owner.get("/notebook/user/user/api/me").json()["identity"]
    assert (me["username"], me["role"]) == ("user", "owner")
    # (Not JupyterHub's _xsrf: with no hub login cookie its value is the same for every browser behind the
    # site, made of the site's address and the user agent, and the hub does not check it on token requests.)
    owner_cookies = [c.value for c in owner.s.cookies if c.value and len(c.value) >= 16 and c.name != "_xsrf"]
    assert owner_cookies  # the site's login ticket at least
    for person in (guest, viewer):
        person.assert_never_saw(hub, *owner_cookies)


def test_a_grant_ends_with_the_owners_hub_server(hub, node):
    owner = Person(node, "user")
    owner_kernel(owner)
    grant = owner.api("POST", "/notebook/shares", {"with": "user2", "mode": "collaborate"}).json()
    guest = Person(node, "user2")
    prefix = guest.join(grant)
    assert shared_with(hub) == ["user2"]
    r = owner.get("/notebook/shutdown", headers=CLICK)
    assert r.status_code == 302, r.text
    assert shared_with(hub) == []  # the stopped server's shares are deleted
    r = guest.get(prefix + "api/me", headers={"Accept": "text/html"})
    assert r.status_code == 403 and "This session has ended" in r.text


def test_a_grant_to_a_principal_shares_with_each_holder_who_joins(hub, node):
    owner = Person(node, "user")
    owner_kernel(owner)
    grant = owner.api("POST", "/notebook/shares", {"with": "role:shell", "mode": "watch"}).json()
    assert shared_with(hub) == []  # no hub user to name yet
    guest = Person(node, "user2")
    prefix = guest.join(grant)
    assert guest.get(prefix + "api/me").json()["identity"]["role"] == "watch"
    assert shared_with(hub) == ["user2"]  # shared with the holder who joined
    viewer = Person(node, "viewer")  # holds no role:shell
    assert viewer.get(grant["url"][len(ORIGIN):], headers={"Accept": "text/html"}).status_code == 403
    assert shared_with(hub) == ["user2"]
    assert owner.api("DELETE", f"/notebook/shares/{grant['id']}").status_code == 204
    assert shared_with(hub) == [] and guest_tokens(hub, "user2") == []
    assert guest.get(prefix + "api/me", headers={"Accept": "text/html"}).status_code == 403
