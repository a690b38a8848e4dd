"""Real-time collaboration in live shared sessions (issue 31): jupyter-collaboration in the notebook server.

Real notebook servers with jupyter-collaboration loaded, real Y websockets spoken with pycrdt (the
protocol the page's provider speaks). A watcher's document websocket reads but every change it sends
is refused; a collaborator's edits reach the disk through the room's save, which is in the audit
trail as a file write naming who edited. The person is signed as the site's relay signs it
(tests/test_person_identity.py).
"""
import json
import os

import pytest
import requests
import websocket
from pycrdt import (Awareness, Decoder, Doc, YMessageType, YSyncMessageType, create_awareness_message,
                    create_sync_message, create_update_message, handle_sync_message)

from pyramid_notebook.core.person import COLLABORATE, WATCH
from pyramid_notebook.server.collaboration import LABEXTENSIONS
from pyramid_notebook.server.collaboration_guard import watcher_message_allowed
from tests.helpers import wait_for
from tests.test_audit import records
from tests.test_person_identity import direct, launch, vouched

pytest.importorskip("jupyter_server_ydoc")


class Room:
    """A document websocket (``api/collaboration/room/...``) spoken as the page's provider speaks it."""

    def __init__(self, url, path, headers, origin):
        # What the person's browser does first: open the notebook's page (with the default "auto" a
        # guest's first page is what loads the collaboration into the server).
        page = requests.get(url + "notebooks/" + path, headers=headers, timeout=60)
        assert page.status_code == 200, page.text
        r = requests.put(url + "api/collaboration/session/" + path, json={"format": "json", "type": "notebook"},
                         headers=headers, timeout=30)
        assert r.status_code in (200, 201), (r.status_code, r.text)
        session = r.json()
        ws_url = url.replace("http://", "ws://") + \
            f"api/collaboration/room/json:notebook:{session['fileId']}?sessionId={session['sessionId']}"
        self.ws = websocket.create_connection(ws_url, header=[f"{k}: {v}" for k, v in headers.items()],
                                              origin=origin, timeout=30)
        self.doc = Doc()
        self.ws.send_binary(create_sync_message(self.doc))

    def sync(self):
        """Read until the server's sync step 2 has filled the local document."""
        while True:
            message = self.ws.recv_data()[1]
            if message[0] == YMessageType.SYNC:
                reply = handle_sync_message(message[1:], self.doc)
                if reply is not None:
                    self.ws.send_binary(reply)
                if message[1] == YSyncMessageType.SYNC_STEP2:
                    return

    def cells(self):
        return self.doc.get("cells", type=__import__("pycrdt").Array)

    def edit(self, text):
        """Append ``text`` to the first code cell's source; return the update message it makes."""
        from pycrdt import Map, Text

        updates = []
        subscription = self.doc.observe(lambda event: updates.append(event.update))
        cells = self.cells()
        with self.doc.transaction():
            for cell in cells:
                if isinstance(cell, Map) and cell.get("cell_type") == "code":
                    source = cell.get("source")
                    assert isinstance(source, Text)
                    source += text
                    break
        self.doc.unobserve(subscription)
        assert updates
        return create_update_message(updates[0])


def test_the_watcher_filter_passes_reads_only():
    doc = Doc()
    assert watcher_message_allowed(create_sync_message(doc))  # step 1: "send me what I lack"
    empty_step2 = handle_sync_message(create_sync_message(Doc())[1:], doc)
    assert watcher_message_allowed(empty_step2)  # a fresh client's reply: nothing to add
    awareness = Awareness(doc)
    awareness.set_local_state({"user": {"name": "viewer"}})
    assert watcher_message_allowed(create_awareness_message(awareness.encode_awareness_update([doc.client_id])))
    text = doc.get("t", type=__import__("pycrdt").Text)
    text += "changed"
    full_step2 = handle_sync_message(create_sync_message(Doc())[1:], doc)
    assert not watcher_message_allowed(full_step2)  # a step 2 that carries changes
    assert not watcher_message_allowed(create_update_message(doc.get_update()))
    for other in (b"", b"\x02\x04save\x01", b"\x7d\x00", b"\x00\x09", b"\x00"):
        assert not watcher_message_allowed(other), other


def _notebook_text(folder, name):
    with open(os.path.join(folder, "user", name), encoding="utf-8") as f:
        return f.read()


def test_a_watcher_reads_the_document_and_every_change_it_sends_is_refused(demo_server, notebook_folder):
    s, context = launch(demo_server)
    url, name = direct(context), context["notebook_name"]
    before = _notebook_text(notebook_folder, name)
    watcher = vouched(context, "viewer", WATCH, name="Viewer")

    room = Room(url, name, watcher, demo_server.url)  # the room's session: allowed to a watcher
    room.sync()
    kinds = [cell.get("cell_type") for cell in room.cells()]
    assert kinds == ["markdown", "markdown", "code"]  # the welcome notebook, read
    # Awareness (its cursor and name) is a read: the connection stays open and answers.
    awareness = Awareness(room.doc)
    awareness.set_local_state({"user": {"username": "viewer", "name": "Viewer"}})
    room.ws.send_binary(create_awareness_message(awareness.encode_awareness_update([room.doc.client_id])))
    room.ws.send_binary(create_sync_message(room.doc))
    wait_for(lambda: room.ws.recv_data()[1][0] == YMessageType.SYNC, timeout=20)

    # A change: refused, on record, never reaching the room; the connection stays open (it still reads).
    room.ws.send_binary(room.edit("import os; os.remove('everything')"))
    refused = wait_for(lambda: [r for r in records(notebook_folder, "refused")
                                if r.get("user") == "viewer" and r.get("resource") == "collaboration"], timeout=20)
    assert refused[0]["role"] == "watch" and refused[0]["owner"] == "user"
    assert "api/collaboration/room/" in refused[0]["request"]
    room.ws.send_binary(create_sync_message(Doc()))  # still served: the server's document, without the edit
    wait_for(lambda: room.ws.recv_data()[1][:2] == bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2]),
             timeout=20)
    # A save request (RAW "save"), and a step 2 carrying changes, on new connections: refused as well.
    for message in (b"\x02\x04save\x01", None):
        room = Room(url, name, watcher, demo_server.url)
        room.sync()
        if message is None:
            room.edit("x = 1")
            message = handle_sync_message(create_sync_message(Doc())[1:], room.doc)
        count = len([r for r in records(notebook_folder, "refused") if r.get("resource") == "collaboration"])
        room.ws.send_binary(message)
        wait_for(lambda: len([r for r in records(notebook_folder, "refused")
                              if r.get("resource") == "collaboration"]) == count + 1, timeout=20)
    # Nothing reached the room: a collaborator's view of the document, and the file, are as before.
    other = Room(url, name, vouched(context, "user2", COLLABORATE), demo_server.url)
    other.sync()
    sources = [str(cell.get("source")) for cell in other.cells()]
    assert not any("everything" in source or "x = 1" in source for source in sources), sources
    assert _notebook_text(notebook_folder, name) == before
    # The REST side of collaboration that changes things stays refused to a watcher.
    r = requests.put(url + "api/collaboration/undoredo/json:notebook:x", headers=watcher, timeout=30,
                     data=json.dumps({"action": "undo"}))
    assert r.status_code in (403, 404)


def test_a_collaborators_edits_reach_the_disk_recorded_as_their_file_write(demo_server, notebook_folder):
    s, context = launch(demo_server)
    url, name = direct(context), context["notebook_name"]
    room = Room(url, name, vouched(context, "user2", COLLABORATE, name="Second User"), demo_server.url)
    room.sync()
    r = requests.get(url + "api/me", headers=vouched(context, "user2", COLLABORATE, name="Second User"), timeout=30)
    assert r.json()["identity"]["username"] == "user2"  # what the page names the cursor with

    room.ws.send_binary(room.edit("print('typed by user2')"))
    # The room saves (after jupyter-collaboration's save delay) through the contents manager.
    wait_for(lambda: "typed by user2" in _notebook_text(notebook_folder, name), timeout=30)
    saves = [r for r in records(notebook_folder, "file") if r.get("via") == "collaboration"]
    assert saves, records(notebook_folder, "file")
    save = saves[-1]
    assert (save["op"], save["path"], save["user"], save["role"], save["owner"]) == \
        ("save", name, "user2", "collaborate", "user")
    assert save["editors"] == ["user2"]
    assert "typed by user2" in save["text"]
    import hashlib

    with open(os.path.join(notebook_folder, "user", name), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == save["sha256"]  # recorded what was written
    room.ws.close()


def test_off_leaves_collaboration_out_of_the_server_and_its_pages(make_demo_server, notebook_folder):
    server = make_demo_server(**{"pyramid_notebook.collaboration": "off"})
    s, context = launch(server)
    url = direct(context)
    headers = vouched(context, "user", "owner")
    r = requests.put(url + "api/collaboration/session/" + context["notebook_name"], headers=headers,
                     json={"format": "json", "type": "notebook"}, timeout=30)
    assert r.status_code == 404
    config = page_config(s.get(server.url + "/notebook/notebooks/" + context["notebook_name"]).text)
    assert config["pyramidNotebookCollaboration"] == "off"
    assert not {e["name"] for e in config["federated_extensions"]} & set(LABEXTENSIONS)  # not even fetched
    # ...and the core plugins they replace are back: without them no cell could run.
    assert "@jupyterlab/notebook-extension:cell-executor" not in config["disabledExtensions"]


def page_config(page: str) -> dict:
    """The page config Jupyter wrote into a notebook page."""
    import html
    import re

    match = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S)
    assert match, page[:2000]
    return json.loads(html.unescape(match.group(1)))


def test_auto_loads_the_collaboration_pages_once_the_server_is_shared(demo_server, notebook_folder):
    s, context = launch(demo_server)
    url, name = direct(context), context["notebook_name"]

    def names(headers):
        page = requests.get(url + "notebooks/" + name, headers=headers, timeout=30)
        assert page.status_code == 200, page.text
        config = page_config(page.text)
        return config, {e["name"] for e in config["federated_extensions"]}

    config, loaded = names(vouched(context, "user", "owner"))
    assert config["pyramidNotebookCollaboration"] == "dormant" and not loaded & set(LABEXTENSIONS)
    assert "@jupyterlab/notebook-extension:cell-executor" not in config["disabledExtensions"]
    assert config["pyramidNotebookRole"] == "owner"
    def session():
        return requests.put(url + "api/collaboration/session/" + name, headers=vouched(context, "user", "owner"),
                            json={"format": "json", "type": "notebook"}, timeout=30).status_code

    assert session() == 404  # not loaded in a server nobody shares: it costs nothing there
    # The owner says it is shared (the Share dialog does, after a grant): the pages co-edit from now on.
    watcher = vouched(context, "viewer", WATCH)
    r = requests.put(url + "api/pyramid-notebook/collaboration", headers=watcher, timeout=30)
    assert r.status_code == 403  # only the owner
    r = requests.put(url + "api/pyramid-notebook/collaboration", headers=vouched(context, "user", "owner"), timeout=30)
    assert r.status_code == 200 and r.json() == {"mode": "auto", "shared": True, "live": True}
    config, loaded = names(vouched(context, "user", "owner"))
    assert config["pyramidNotebookCollaboration"] == "live" and set(LABEXTENSIONS) <= loaded
    assert session() in (200, 201)  # loaded into the running server, no restart
    assert "@jupyterlab/notebook-extension:cell-executor" in config["disabledExtensions"]  # theirs instead
    config, loaded = names(watcher)
    assert config["pyramidNotebookRole"] == "watch" and set(LABEXTENSIONS) <= loaded


def test_the_owners_page_names_them_in_the_documents_awareness(browser, make_demo_server, notebook_folder):
    from tests.browser import CHROMEDRIVER, CHROMIUM
    from tests.test_browser import log_in

    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("needs Debian's chromium and chromium-driver")
    server = make_demo_server(**{"pyramid_notebook.collaboration": "always"})
    log_in(browser, server.url, "user")
    browser.find_by_id("shell2").click()
    assert browser.is_text_present("Available variables", wait_time=90)
    context = server.manager.get_notebook_status("user")
    room = Room(direct(context), context["notebook_name"], vouched(context, "user2", COLLABORATE), server.url)
    room.sync()
    awareness = Awareness(room.doc)

    def owner_state():
        message = room.ws.recv_data()[1]
        if message[0] == YMessageType.AWARENESS:
            awareness.apply_awareness_update(Decoder(message[1:]).read_message(), "remote")
        users = [state.get("user") for state in awareness.states.values() if isinstance(state, dict)]
        return [u for u in users if isinstance(u, dict) and u.get("username") == "user"]

    [user] = wait_for(owner_state, timeout=60, message="the owner's page in the room's awareness")
    assert user["name"] == "user"  # the site's user id (the demo's display name is the id)
    room.ws.close()


def test_the_setting_takes_auto_always_or_off():
    from pyramid.exceptions import ConfigurationError

    from pyramid_notebook.core.settings import parse_settings

    base = {"pyramid_notebook.notebook_folder": "/tmp/notebooks"}
    assert parse_settings(base).collaboration == "auto"
    for value in ("auto", "always", "off", " ALWAYS "):
        assert parse_settings(dict(base, **{"pyramid_notebook.collaboration": value})).collaboration == \
            value.strip().lower()
    with pytest.raises(ConfigurationError, match="collaboration must be one of auto, always, off, got 'on'"):
        parse_settings(dict(base, **{"pyramid_notebook.collaboration": "on"}))


def test_a_watchers_page_follows_the_document_live_and_is_not_refused(browser, demo_server, notebook_folder):
    """A real Notebook 7 page as the watcher (its login cookie, as a guest's relayed requests earn it):
    its document provider connects, reads, and shows a collaborator's edits live."""
    from tests.browser import CHROMEDRIVER, CHROMIUM
    from tests.test_person_identity import login_cookie

    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("needs Debian's chromium and chromium-driver")
    s, context = launch(demo_server)
    url, name = direct(context), context["notebook_name"]
    r = requests.get(url + "api/me", headers=vouched(context, "viewer", WATCH, name="Viewer"), timeout=30)
    cookie_name, cookie_value = login_cookie(r).split("=", 1)
    browser.visit(url + "api/status")  # the notebook port's origin, to set its cookie on
    browser.driver.add_cookie({"name": cookie_name, "value": cookie_value, "path": "/"})
    browser.visit(url + "notebooks/" + name)
    assert browser.is_text_present("Welcome to your shell", wait_time=90)
    config = browser.driver.execute_script("return document.getElementById('jupyter-config-data').textContent")
    assert '"pyramidNotebookCollaboration": "live"' in config and '"pyramidNotebookRole": "watch"' in config

    editor = Room(url, name, vouched(context, "user2", COLLABORATE), demo_server.url)
    editor.sync()
    editor.ws.send_binary(editor.edit("shown_to_the_watcher = 1"))
    wait_for(lambda: browser.is_text_present("shown_to_the_watcher"), timeout=60,
             message="the collaborator's edit in the watcher's page")
    # What the page writes on its own (its kernel's language in the notebook's metadata) never reaches
    # the room: refused, on record once per connection, and the page keeps following the document.
    refused = [r for r in records(notebook_folder, "refused") if r.get("resource") == "collaboration"]
    assert all(r["user"] == "viewer" and r["role"] == "watch" for r in refused)
    assert len(refused) <= 2, refused  # not one per message
    editor.ws.send_binary(editor.edit("and_this_too = 2"))
    wait_for(lambda: browser.is_text_present("and_this_too"), timeout=60, message="a second edit, live")
    editor.ws.close()
