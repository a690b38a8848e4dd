"""Team recipes (issue 36), through the real demo site: publish, versions with their git authors, list,
render, diff, open into a real notebook server, re-open keeping the user's edits, delete rules, two
processes publishing at once, every bad input, and ``<script>`` never running on the site's pages."""
import json
import os
import subprocess
import sys
import textwrap

import nbformat
import pytest

from pyramid_notebook.core import audit
from tests.helpers import CLICK, login

JSON = {"Accept": "application/json"}
CLI = os.path.join(os.path.dirname(sys.executable), "pyramid-notebook")


def same_origin(base_url):
    """What a script on the site's own page sends: the site's Origin and a JSON body."""
    return {"Origin": base_url, "Accept": "application/json", "Content-Type": "application/json"}


def write_notebook(notebook_folder, user, path, title="Orders per day", code="print(6 * 7)", output="42\n",
                   extra_cells=()):
    """A notebook in ``user``'s own folder, with a heading, a paragraph and a cell with its output."""
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# {title}\n\nCounts the orders of each day."))
    cell = nbformat.v4.new_code_cell(code, execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", text=output)]
    nb.cells.append(cell)
    nb.cells.extend(extra_cells)
    full = os.path.join(notebook_folder, user, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    nbformat.write(nb, full)
    return full


def publish(session, base_url, path, name=None, message="", expect=201):
    body = {"path": path, "message": message}
    if name is not None:
        body["name"] = name
    r = session.post(base_url + "/notebook/recipes", data=json.dumps(body), headers=same_origin(base_url))
    assert r.status_code == expect, r.text
    return r.json()


def git_log(folder):
    """``(author name, message)`` of every commit, newest first, as git itself stores them (dulwich)."""
    from dulwich.repo import Repo

    repo = Repo(folder)
    try:
        return [(c.commit.author.decode().split(" <")[0], c.commit.message.decode()) for c in repo.get_walker()]
    finally:
        repo.close()


def test_publish_versions_list_render_and_diff(demo_server, notebook_folder):
    base = demo_server.url
    user, user2 = login(base, "user"), login(base, "user2")
    write_notebook(notebook_folder, "user", "work/orders.ipynb")
    assert publish(user, base, "work/orders.ipynb", message="First cut") == {
        "name": "orders", "version": 1, "url": base + "/notebook/recipes/orders"}
    write_notebook(notebook_folder, "user2", "mine.ipynb", code="print(7 * 7)", output="49\n")
    assert publish(user2, base, "mine.ipynb", name="orders", message="Sevens")["version"] == 2
    # git's own history: one commit per version, authored by the site user who published it.
    log = git_log(os.path.join(notebook_folder, ".recipes"))
    assert [(a, m.splitlines()[0]) for a, m in log[:2]] == [("user2", "Sevens"), ("user", "First cut")]
    assert os.path.isfile(os.path.join(notebook_folder, ".recipes", "orders.ipynb"))

    listing = user2.get(base + "/notebook/recipes", headers=JSON).json()["recipes"]
    assert len(listing) == 1
    recipe = listing[0]
    assert {k: recipe[k] for k in ("name", "title", "description", "author", "version")} == {
        "name": "orders", "title": "Orders per day", "description": "Counts the orders of each day.",
        "author": "user", "version": 2}
    assert recipe["updated"].endswith("Z")
    page = user2.get(base + "/notebook/recipes")
    assert page.status_code == 200 and "Orders per day" in page.text and 'id="recipe-search"' in page.text
    assert "script-src 'none'" in page.headers["Content-Security-Policy"]
    assert "Orders per day" not in user2.get(base + "/notebook/recipes?q=payments").text
    assert "Orders per day" in user2.get(base + "/notebook/recipes?q=ORDERS user").text

    detail = user.get(base + "/notebook/recipes/orders", headers=JSON).json()
    assert [(v["version"], v["author"], v["message"]) for v in detail["versions"]] == [
        (1, "user", "First cut"), (2, "user2", "Sevens")]
    rendered = user.get(base + "/notebook/recipes/orders")
    assert rendered.status_code == 200 and "<pre>49" in rendered.text and "print" in rendered.text
    first = user.get(base + "/notebook/recipes/orders?version=1")
    assert "<pre>42" in first.text and "<pre>49" not in first.text
    diff = user.get(base + "/notebook/recipes/orders/diff?from=1&to=2")
    assert diff.status_code == 200
    assert "print(6 * 7)" in diff.text and "print(7 * 7)" in diff.text


def test_bad_input(make_demo_server, notebook_folder, tmp_path):
    server = make_demo_server(**{"pyramid_notebook.recipe_max_bytes": "4K"})
    base = server.url
    user = login(base, "user")
    write_notebook(notebook_folder, "user", "good.ipynb")
    # Unknown recipe, unknown version: 404.
    assert user.get(base + "/notebook/recipes/nothing-here", headers=JSON).status_code == 404
    assert user.get(base + "/notebook/recipes/nothing-here").status_code == 404
    publish(user, base, "good.ipynb", name="good")
    assert user.get(base + "/notebook/recipes/good?version=7").status_code == 404
    assert user.post(base + "/notebook/recipes/nothing/open", data="{}", headers=same_origin(base)).status_code == 404
    # Paths outside the folder, not notebooks, invalid JSON, bad names, too large: 400 naming it.
    os.symlink("/etc/hostname", os.path.join(notebook_folder, "user", "escape.ipynb"))
    with open(os.path.join(notebook_folder, "user", "broken.ipynb"), "w") as f:
        f.write('{"cells": [')
    with open(os.path.join(notebook_folder, "user", "notes.txt"), "w") as f:
        f.write("hello")
    with open(os.path.join(notebook_folder, "user", "fake.ipynb"), "w") as f:
        f.write('{"hello": "world"}')
    write_notebook(notebook_folder, "user", "big.ipynb", output="x" * 8000)
    for path, name, words in [
        ("../user2/x.ipynb", None, "'..'"), ("/etc/passwd", None, "relative"), ("escape.ipynb", None, "outside"),
        ("notes.txt", None, "not a notebook"), ("broken.ipynb", None, "not valid notebook JSON"),
        ("fake.ipynb", None, "not a valid Jupyter notebook"), ("missing.ipynb", None, "no notebook"),
        ("good.ipynb", "Bad Name", "lowercase"), ("good.ipynb", "x" * 65, "64"), ("good.ipynb", "-dash", "dash"),
        ("big.ipynb", None, "recipe_max_bytes"), (None, "ok", "empty"),
    ]:
        r = user.post(base + "/notebook/recipes", data=json.dumps({"path": path, "name": name}),
                      headers=same_origin(base))
        assert r.status_code == 400, (path, name, r.text)
        assert words in r.json()["error"], (path, name, r.json())
    # Anonymous: the site's login page / forbidden view.
    anonymous = user.__class__()
    r = anonymous.get(base + "/notebook/recipes", headers={"Accept": "text/html"}, allow_redirects=False)
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert anonymous.post(base + "/notebook/recipes", data="{}", headers=same_origin(base)).status_code == 403
    # Cross-site: 403, nothing published or deleted; a form's content type: refused too.
    evil = dict(same_origin(base), Origin="http://evil.example")
    r = user.post(base + "/notebook/recipes", data=json.dumps({"path": "good.ipynb", "name": "evil"}), headers=evil)
    assert r.status_code == 403
    r = user.post(base + "/notebook/recipes", data=json.dumps({"path": "good.ipynb", "name": "evil"}),
                  headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "empty", "Content-Type": "text/plain"})
    assert r.status_code == 403
    r = user.post(base + "/notebook/recipes", data={"path": "good.ipynb", "name": "evil"},
                  headers={"Origin": base})
    assert r.status_code == 415
    assert user.delete(base + "/notebook/recipes/good", headers={"Origin": "http://evil.example"}).status_code == 403
    assert user.post(base + "/notebook/recipes/good/delete", data={"csrf_token": "forged"}).status_code == 403
    assert user.post(base + "/notebook/recipes/good/open", data={"csrf_token": "forged"}).status_code == 403
    names = [r["name"] for r in user.get(base + "/notebook/recipes", headers=JSON).json()["recipes"]]
    assert names == ["good"]


def test_unwritable_library_is_a_503_and_the_site_works(make_demo_server, notebook_folder, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    server = make_demo_server(**{"pyramid_notebook.recipes_folder": str(blocker / "recipes")})
    user = login(server.url, "user")
    write_notebook(notebook_folder, "user", "good.ipynb")
    r = user.post(server.url + "/notebook/recipes", data=json.dumps({"path": "good.ipynb"}),
                  headers=same_origin(server.url))
    assert r.status_code == 503 and "recipe library" in r.json()["title"]
    r = user.get(server.url + "/notebook/recipes")
    assert r.status_code == 503 and "recipes_folder" in r.text
    assert user.get(server.url + "/").status_code == 200


def test_delete_rules_and_history(demo_server, notebook_folder):
    base = demo_server.url
    admin, user2 = login(base, "user"), login(base, "user2")
    write_notebook(notebook_folder, "user", "a.ipynb")
    write_notebook(notebook_folder, "user2", "b.ipynb")
    publish(admin, base, "a.ipynb", name="admins")
    publish(user2, base, "b.ipynb", name="theirs")
    publish(user2, base, "b.ipynb", name="other")
    r = user2.delete(base + "/notebook/recipes/admins", headers={"Origin": base, "Accept": "application/json"})
    assert r.status_code == 403 and "first author" in r.json()["error"]
    page = user2.get(base + "/notebook/recipes/admins")
    assert 'id="recipe-delete"' not in page.text and 'id="recipe-open"' in page.text
    assert user2.delete(base + "/notebook/recipes/theirs", headers={"Origin": base}).json() == {
        "name": "theirs", "deleted": True}
    # The admin deletes another's recipe with the page's own form (CSRF token).
    import re

    page = admin.get(base + "/notebook/recipes/other")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = admin.post(base + "/notebook/recipes/other/delete", data={"csrf_token": token}, headers=CLICK,
                   allow_redirects=False)
    assert r.status_code == 303
    assert [r["name"] for r in admin.get(base + "/notebook/recipes", headers=JSON).json()["recipes"]] == ["admins"]
    assert user2.get(base + "/notebook/recipes/theirs").status_code == 404
    messages = [m.splitlines()[0] for _, m in git_log(os.path.join(notebook_folder, ".recipes"))]
    assert "Delete theirs" in messages and "Delete other" in messages and "Publish theirs" in messages
    # Every publish and delete is in the site's audit stream, which the CLI lists and verifies.
    out = subprocess.run([CLI, "audit", "show", "--json", notebook_folder], capture_output=True, text=True,
                         timeout=60)
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    ops = [(r["op"], r["user"], r["recipe"]) for r in records if r.get("kind") == "recipe"]
    assert ops == [("publish", "user", "admins"), ("publish", "user2", "theirs"), ("publish", "user2", "other"),
                   ("delete", "user2", "theirs"), ("delete", "user", "other")]
    assert audit.verify(os.path.join(notebook_folder, ".state", *audit.SITE_STREAM)) is None


PUBLISHER = textwrap.dedent("""
    import os, sys, time
    from pyramid_notebook.core.recipes import RecipeLibrary
    folder, who, count, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    library = RecipeLibrary(folder)
    library.repo()
    while not os.path.exists(start):
        time.sleep(0.001)
    for i in range(count):
        library.publish("shared", ('{"nbformat": 4, "who": "%s-%d"}' % (who, i)).encode(), who, f"{who} {i}")
""")


def test_two_processes_publishing_at_once_lose_nothing(tmp_path):
    """Two web nodes (two processes) publish one name at the same moment: every version lands, in order."""
    from pyramid_notebook.core.recipes import RecipeLibrary

    folder, start = str(tmp_path / "recipes"), str(tmp_path / "go")
    RecipeLibrary(folder).repo()
    procs = [subprocess.Popen([sys.executable, "-c", PUBLISHER, folder, who, "15", start])
             for who in ("node1", "node2")]
    try:
        open(start, "w").close()
        assert [p.wait(timeout=120) for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    versions = RecipeLibrary(folder).recipe("shared")["versions"]
    assert [v["version"] for v in versions] == list(range(1, 31))
    for who in ("node1", "node2"):
        assert [v["message"] for v in versions if v["author"] == who] == [f"{who} {i}" for i in range(15)]
    log = git_log(folder)
    assert len(log) == 31  # the library's first commit and one per version
    assert sorted(m.splitlines()[0] for _, m in log[:-1]) == sorted(v["message"] for v in versions)


def test_concurrent_publishes_through_the_site(demo_server, notebook_folder):
    from concurrent.futures import ThreadPoolExecutor

    base = demo_server.url
    sessions = [login(base, "user"), login(base, "user2")]
    write_notebook(notebook_folder, "user", "n.ipynb")
    write_notebook(notebook_folder, "user2", "n.ipynb")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: publish(sessions[i % 2], base, "n.ipynb", name="race", message=str(i)),
                                range(16)))
    assert sorted(r["version"] for r in results) == list(range(1, 17))
    versions = sessions[0].get(base + "/notebook/recipes/race", headers=JSON).json()["versions"]
    assert sorted(int(v["message"]) for v in versions) == list(range(16))


def test_script_in_markdown_and_outputs_is_not_on_the_page(demo_server, notebook_folder):
    base = demo_server.url
    user = login(base, "user")
    evil = nbformat.v4.new_code_cell("x", execution_count=2)
    evil.outputs = [nbformat.v4.new_output("display_data", data={
        "text/html": "<b>bold output</b><script>window.pwned = 1</script><img src=x onerror='window.pwned=2'>",
        "application/javascript": "window.pwned = 3", "text/plain": "x"})]
    md = nbformat.v4.new_markdown_cell(
        "Some <script>window.pwned = 4</script> text <a href='javascript:alert(1)'>l</a>")
    write_notebook(notebook_folder, "user", "evil.ipynb", extra_cells=[evil, md])
    publish(user, base, "evil.ipynb", name="evil")
    page = user.get(base + "/notebook/recipes/evil")
    assert page.status_code == 200 and "<b>bold output</b>" in page.text
    lowered = page.text.lower()
    assert "<script" not in lowered and "onerror" not in lowered and "javascript:" not in lowered
    assert "window.pwned = 3" not in page.text
    assert "script-src 'none'" in page.headers["Content-Security-Policy"]


def test_open_copies_and_reopen_keeps_the_users_edits(demo_server, notebook_folder):
    import re

    base = demo_server.url
    user, user2 = login(base, "user"), login(base, "user2")
    write_notebook(notebook_folder, "user", "shell2.ipynb")
    publish(user, base, "shell2.ipynb", name="orders")
    # A JSON open by user2: a copy in their folder, and the URL of their shell on it.
    r = user2.post(base + "/notebook/recipes/orders/open", data="{}", headers=same_origin(base))
    assert r.status_code == 200, r.text
    opened = r.json()
    assert opened["url"] == base + "/notebook/notebooks/recipes/orders.ipynb" and opened["note"] == ""
    copy = os.path.join(notebook_folder, "user2", "recipes", "orders.ipynb")
    assert "print(6 * 7)" in open(copy).read()
    assert user2.get(opened["url"]).status_code == 200
    # Untouched copy, new version: the copy is brought up to date.
    write_notebook(notebook_folder, "user", "shell2.ipynb", code="print('v2')")
    publish(user, base, "shell2.ipynb", name="orders")
    r = user2.post(base + "/notebook/recipes/orders/open", data="{}", headers=same_origin(base))
    assert r.json()["note"] == "" and "print('v2')" in open(copy).read()
    # user2 edits their copy; version 3 appears; re-opening keeps the edit and says version 3 exists.
    nb = nbformat.read(copy, as_version=4)
    nb.cells[1].source = "print('my own change')"
    nbformat.write(nb, copy)
    write_notebook(notebook_folder, "user", "shell2.ipynb", code="print('v3')")
    publish(user, base, "shell2.ipynb", name="orders")
    r = user2.post(base + "/notebook/recipes/orders/open", data="{}", headers=same_origin(base)).json()
    assert "version 3" in r["note"] and r["url"].endswith("/recipes/orders.ipynb")
    assert "my own change" in open(copy).read()
    # The page's button: the note page, whose forms open the copy as it is or take version 3 beside it.
    page = user2.get(base + "/notebook/recipes/orders")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = user2.post(base + "/notebook/recipes/orders/open", data={"csrf_token": token}, headers=CLICK,
                   allow_redirects=False)
    assert r.status_code == 200 and 'id="recipe-note"' in r.text and "version 3" in r.text
    r = user2.post(base + "/notebook/recipes/orders/open", data={"csrf_token": token, "as_is": "1"}, headers=CLICK,
                   allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].endswith("/notebook/notebooks/recipes/orders.ipynb")
    r = user2.post(base + "/notebook/recipes/orders/open", data={"csrf_token": token, "take": "3"}, headers=CLICK,
                   allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].endswith("/notebook/notebooks/recipes/orders-v3.ipynb")
    assert "print('v3')" in open(os.path.join(notebook_folder, "user2", "recipes", "orders-v3.ipynb")).read()
    assert "my own change" in open(copy).read()
    # Opens are in the audit trail with the version opened.
    opens = [r for r in audit.read_records(os.path.join(notebook_folder, ".state", *audit.SITE_STREAM))
             if r.get("op") == "open"]
    assert [(r["user"], r["version"]) for r in opens][:2] == [("user2", 1), ("user2", 2)]


def test_team_recipes_folder_is_read_only_in_the_file_browser(demo_server, notebook_folder):
    base = demo_server.url
    user = login(base, "user")
    write_notebook(notebook_folder, "user", "a.ipynb")
    publish(user, base, "a.ipynb", name="shared-one")
    r = user.get(base + "/shell1", headers=CLICK, allow_redirects=False)
    assert r.status_code == 302
    assert user.get(r.headers["Location"]).status_code == 200
    xsrf = user.cookies.get("_xsrf", path="/notebook/")
    api = {"X-XSRFToken": xsrf, "Origin": base}
    listing = user.get(base + "/notebook/api/contents/team-recipes", headers=api)
    assert listing.status_code == 200, listing.text
    assert [m["name"] for m in listing.json()["content"]] == ["shared-one.ipynb"]
    model = user.get(base + "/notebook/api/contents/team-recipes/shared-one.ipynb", headers=api).json()
    assert model["type"] == "notebook"
    r = user.put(base + "/notebook/api/contents/team-recipes/shared-one.ipynb", headers=api,
                 data=json.dumps({"type": "notebook", "format": "json", "content": model["content"]}))
    assert r.status_code == 403 and "read-only" in r.json()["message"]
    r = user.delete(base + "/notebook/api/contents/team-recipes/shared-one.ipynb", headers=api)
    assert r.status_code == 403
    # Copying out of it into the user's own folder works.
    r = user.post(base + "/notebook/api/contents", headers=api,
                  data=json.dumps({"copy_from": "team-recipes/shared-one.ipynb"}))
    assert r.status_code == 201, r.text


def test_strip_outputs_setting(make_demo_server, notebook_folder):
    server = make_demo_server(**{"pyramid_notebook.recipe_strip_outputs": "true"})
    user = login(server.url, "user")
    write_notebook(notebook_folder, "user", "n.ipynb", output="the-output-text\n")
    publish(user, server.url, "n.ipynb", name="stripped")
    stored = nbformat.read(os.path.join(notebook_folder, ".recipes", "stripped.ipynb"), as_version=4)
    assert stored.cells[1].outputs == [] and stored.cells[1].source == "print(6 * 7)"
    assert "the-output-text" not in user.get(server.url + "/notebook/recipes/stripped").text


def test_publish_through_the_users_server_contents_api(demo_server, notebook_folder):
    """The JupyterHub backend's way (the hub keeps the files): the notebook is read through the user's
    running server's contents API, as text, with its size checked first. Here a real local server."""
    from pyramid.request import Request

    from pyramid_notebook.core.recipenb import BadNotebook
    from pyramid_notebook.web import recipes_io

    base = demo_server.url
    user = login(base, "user")
    request = Request.blank("/")
    request.registry = demo_server.app.registry
    write_notebook(notebook_folder, "user", "remote.ipynb")
    with pytest.raises(BadNotebook, match="not running"):
        recipes_io.read_through_server(request, "user", "remote.ipynb", 1 << 20)
    r = user.get(base + "/shell1", headers=CLICK, allow_redirects=False)
    assert user.get(r.headers["Location"]).status_code == 200
    data = recipes_io.read_through_server(request, "user", "remote.ipynb", 1 << 20)
    assert data == open(os.path.join(notebook_folder, "user", "remote.ipynb"), "rb").read()
    with open(os.path.join(notebook_folder, "user", "broken.ipynb"), "w") as f:
        f.write('{"cells": [')
    assert recipes_io.read_through_server(request, "user", "broken.ipynb", 1 << 20) == b'{"cells": ['
    with pytest.raises(BadNotebook, match="recipe_max_bytes"):
        recipes_io.read_through_server(request, "user", "remote.ipynb", 100)
    with pytest.raises(BadNotebook, match="no notebook"):
        recipes_io.read_through_server(request, "user", "missing.ipynb", 1 << 20)


@pytest.mark.skipif(not os.path.exists("/usr/sbin/nginx"), reason="needs nginx (scripts/test installs it)")
def test_recipes_through_nginx_in_accel_mode(make_demo_server, notebook_folder, tmp_path):
    """The shipped nginx-accel.conf sends /notebook/recipes to the site itself (not to a notebook)."""
    import signal

    from tests.helpers import stop_process
    from tests.test_accel import start_nginx

    server = make_demo_server(**{"pyramid_notebook.accel_redirect": "/_pyramid_notebook/"})
    nginx, url = start_nginx(tmp_path / "nginx", server.port)
    try:
        user = login(url, "user")
        write_notebook(notebook_folder, "user", "a.ipynb")
        assert publish(user, url, "a.ipynb", name="via-nginx")["version"] == 1
        assert [r["name"] for r in user.get(url + "/notebook/recipes", headers=JSON).json()["recipes"]] == ["via-nginx"]
        page = user.get(url + "/notebook/recipes/via-nginx")
        assert page.status_code == 200 and "Orders per day" in page.text
        assert user.delete(url + "/notebook/recipes/via-nginx", headers={"Origin": url}).status_code == 200
    finally:
        stop_process(nginx, signal.SIGQUIT)


def test_an_unwritable_audit_trail_refuses_the_action(demo_server, notebook_folder):
    """Publish, delete and open are recorded before they happen; a trail that cannot be written: 503, not done."""
    base = demo_server.url
    user = login(base, "user")
    write_notebook(notebook_folder, "user", "a.ipynb")
    publish(user, base, "a.ipynb", name="kept")
    blocker = os.path.join(notebook_folder, ".state", audit.SITE_STREAM[0])
    os.rename(blocker, blocker + ".moved")
    with open(blocker, "w") as f:
        f.write("not a folder")
    r = user.post(base + "/notebook/recipes", data=json.dumps({"path": "a.ipynb", "name": "refused"}),
                  headers=same_origin(base))
    assert r.status_code == 503 and "audit trail" in r.json()["title"]
    r = user.delete(base + "/notebook/recipes/kept", headers={"Origin": base, "Accept": "application/json"})
    assert r.status_code == 503
    listing = user.get(base + "/notebook/recipes", headers=JSON).json()["recipes"]
    assert [(r["name"], r["version"]) for r in listing] == [("kept", 1)]
    assert user.get(base + "/").status_code == 200
    os.unlink(blocker)
    os.rename(blocker + ".moved", blocker)
    assert publish(user, base, "a.ipynb", name="kept")["version"] == 2
    assert audit.verify(os.path.join(blocker, audit.AUDIT_FILE_NAME)) is None
