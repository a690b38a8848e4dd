"""Supervision (issue 31): an administrator watches a running notebook from the operator console. The
watch is read only, its start and end are audit records in the owner's stream, and the owner's pages are
told who is watching (the server's event stream, and the page config of a page opened meanwhile); the
owner cannot end it, an administrator can. Real demo site, real notebook servers."""
import json
import re

import websocket

from pyramid_notebook.server.supervision import SCHEMA_ID
from tests.helpers import KernelChannel, login, wait_for
from tests.test_admin import csrf_token
from tests.test_audit import open_kernel, records
from tests.test_share_join import Guest, closed_within, ws_root

WATCH = "/notebook-admin/watch"


def watch(admin, base, user):
    """The console's Watch for ``user``: the link of the administrator's grant."""
    r = admin.post(base + WATCH, data={"user": user, "csrf_token": csrf_token(admin, base)},
                   headers={"Origin": base}, allow_redirects=False)
    assert r.status_code == 303, (r.status_code, r.text)
    link = r.headers["Location"]
    assert re.fullmatch(re.escape(base) + r"/notebook/shared/[\w-]+", link), link
    return {"url": link, "id": link.rsplit("/", 1)[1]}


class Events:
    """The owner's page's event websocket: the supervision events it receives."""

    def __init__(self, url, base, cookie):
        self.ws = websocket.create_connection(url, origin=base, cookie=cookie, timeout=15)

    def next_watch_event(self):
        while True:
            event = json.loads(self.ws.recv())
            if event.get("schema_id") == SCHEMA_ID:
                return event

    def close(self):
        self.ws.close()


def test_an_admin_watches_recorded_and_the_owner_sees_it(demo_server, notebook_folder):
    base = demo_server.url
    owner, location, kernel, cookie = open_kernel(base, "user2", shell="shell2")
    context = demo_server.manager.get_notebook_status("user2")
    events = Events(f"ws://127.0.0.1:{context['http_port']}/notebook/api/events/subscribe", base, cookie)
    admin = Guest(base, "user")
    try:
        # Not without the CSRF token: the confirmation page, whose button makes the POST.
        r = admin.session.get(base + WATCH, params={"user": "user2"})
        assert r.status_code == 200 and "Watch this notebook?" in r.text and 'name="csrf_token"' in r.text
        assert not records(notebook_folder, "watch", user="user2")

        grant = watch(admin.session, base, "user2")
        prefix, config = admin.join(grant)
        me = admin.session.get(base + prefix + "api/me").json()["identity"]
        assert (me["username"], me["role"]) == ("user", "watch")
        channel = KernelChannel(ws_root(base, config) + f"api/kernels/{kernel}/channels", origin=base,
                                cookie=admin.cookie_header())
        start = events.next_watch_event()
        assert (start["event"], start["user"], start["watching"]) == ("start", "user", ["Demo User"])
        started = wait_for(lambda: records(notebook_folder, "watch", user="user2"), timeout=10,
                           message="the watch's start record")
        assert (started[0]["event"], started[0]["user"], started[0]["owner"]) == ("start", "user", "user2")
        # A page the owner opens now is told at once; the owner's own shares list shows the watch.
        page = owner.get(location, headers={"Accept": "text/html"})
        assert '"pyramidNotebookWatchers": ["Demo User"]' in page.text
        given = owner.get(base + "/notebook/shares").json()["given"]
        assert [(g["with"], g["mode"], g["supervision"]) for g in given] == [("user", "watch", True)]

        # Read only, in the server.
        r = admin.session.put(base + prefix + "api/contents/planted.txt", headers=admin.xsrf(prefix),
                              json={"type": "file", "format": "text", "content": "x"})
        assert r.status_code == 403
        # The owner cannot end an administrator's watch.
        r = owner.delete(base + "/notebook/shares/" + grant["id"], headers={"Origin": base})
        assert r.status_code == 403 and "administrator" in r.json()["error"]

        # Closing the page ends the watch: a record, and the owner's pages are told.
        channel.close()
        end = events.next_watch_event()
        assert (end["event"], end["watching"]) == ("end", [])
        ended = wait_for(lambda: [r for r in records(notebook_folder, "watch", user="user2") if r["event"] == "end"],
                         timeout=10, message="the watch's end record")
        assert (ended[0]["user"], ended[0]["why"]) == ("user", "left")

        # Watching again reuses the grant; the administrator's revoke closes the watch with "revoked".
        again = watch(admin.session, base, "user2")
        assert again["id"] == grant["id"]
        channel = KernelChannel(ws_root(base, config) + f"api/kernels/{kernel}/channels", origin=base,
                                cookie=admin.cookie_header())
        assert events.next_watch_event()["event"] == "start"
        r = admin.session.delete(base + "/notebook/shares/" + grant["id"], headers={"Origin": base})
        assert r.status_code == 204
        closed_within(channel, 2.0)
        assert events.next_watch_event()["event"] == "end"
        kinds = wait_for(lambda: [(r["event"], r.get("why")) for r in records(notebook_folder, "watch", user="user2")]
                         if len(records(notebook_folder, "watch", user="user2")) == 4 else None,
                         timeout=10, message="four watch records")
        assert kinds == [("start", None), ("end", "left"), ("start", None), ("end", "revoked")]
        admin.assert_never_saw(context["token"])
    finally:
        events.close()


def test_watch_is_for_administrators_and_running_notebooks(demo_server):
    base = demo_server.url
    open_kernel(base, "user", shell="shell1")
    other = login(base, "user2")
    r = other.post(base + WATCH, data={"user": "user"}, headers={"Origin": base}, allow_redirects=False)
    assert r.status_code == 403
    admin = login(base, "user")
    token = csrf_token(admin, base)
    r = admin.post(base + WATCH, data={"user": "user", "csrf_token": token}, headers={"Origin": base})
    assert r.status_code == 400 and "Your own notebook" in r.text
    r = admin.post(base + WATCH, data={"user": "user2", "csrf_token": token}, headers={"Origin": base})
    assert r.status_code == 409 and "no notebook running" in r.text
    r = admin.post(base + WATCH, data={"csrf_token": token}, headers={"Origin": base})
    assert r.status_code == 400 and "Traceback" not in r.text
