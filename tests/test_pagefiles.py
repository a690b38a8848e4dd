"""What a notebook page loaded, as the page reports it (web/pagefiles.py): which reported files may be
listed, the majority rule over the last reports, and the list kept per Jupyter version across restarts.
The browser and the site's preload of them are in tests/test_preload.py."""
import json
import os

import pytest

from pyramid_notebook.web import pagefiles
from pyramid_notebook.web.pagefiles import BadReport, PageFile, PageFiles, checked_report


@pytest.fixture
def install(tmp_path):
    """An installation folder with a static route, a lab extension's folder and a users' folder."""
    static = tmp_path / "prefix" / "static"
    ext = tmp_path / "prefix" / "ext" / "static"
    users = tmp_path / "users"
    for folder in (static, ext, users / "alice"):
        folder.mkdir(parents=True)
    for name in ("main.1a.js", "chunk.2b.js", "font.3c.woff2", "theme.css", "data.json"):
        (static / name).write_text("x")
    (ext / "remoteEntry.4d.js").write_text("x")
    (users / "alice" / "mine.js").write_text("x")
    context = {"notebook_path": "/notebook/", "static_files": {
        "routes": [{"prefix": "/notebook/static/notebook/", "roots": [str(static)], "no_cache_paths": []},
                   {"prefix": "/notebook/lab/extensions/ext/static/", "roots": [str(ext)], "no_cache_paths": []},
                   {"prefix": "/notebook/files/", "roots": [str(users / "alice")], "kind": "files"},
                   {"prefix": "/notebook/static/user/", "roots": [str(users / "alice")], "no_cache_paths": []}],
        "immutable": ["/notebook/lab/extensions/ext/static/"]}}
    return dict(context=context, allowed=(str(tmp_path / "prefix"),), forbidden=(str(users),), static=static, ext=ext)


def report(*files, page="notebooks/Untitled.ipynb"):
    return json.dumps({"page": page, "files": list(files)}).encode()


def test_a_report_lists_the_pages_versioned_and_immutable_static_files(install):
    found = checked_report(report(
        "static/notebook/main.1a.js?v=1a", "static/notebook/chunk.2b.js?v=2b", "static/notebook/font.3c.woff2?v=3c",
        "lab/extensions/ext/static/remoteEntry.4d.js",  # immutable prefix: no ?v= needed
        "static/notebook/theme.css",  # no-cache: the browser would ask again
        "static/notebook/data.json?v=1",  # no preload type
        "static/notebook/missing.js?v=1",  # no such file
        "files/mine.js?v=1", "static/user/mine.js?v=1",  # the user's own files; a route into the users' folder
        "api/kernels?v=1", "http://elsewhere.example/static/notebook/main.1a.js?v=1a",
        "static/notebook/../../files/mine.js?v=1"), install["context"], install["allowed"], install["forbidden"])
    assert list(found) == ["static/notebook/main.1a.js?v=1a", "static/notebook/chunk.2b.js?v=2b",
                           "static/notebook/font.3c.woff2?v=3c", "lab/extensions/ext/static/remoteEntry.4d.js"]
    font = found["static/notebook/font.3c.woff2?v=3c"]
    assert (font.kind, font.crossorigin, font.immutable) == ("font", True, False)
    entry = found["lab/extensions/ext/static/remoteEntry.4d.js"]
    assert (entry.kind, entry.immutable, entry.path) == ("script", True, str(install["ext"] / "remoteEntry.4d.js"))


@pytest.mark.parametrize("body, why", [
    (b"{not json", "not JSON"),
    (b'["static/notebook/main.1a.js"]', "not {"),
    (json.dumps({"page": "notebooks/x", "files": [1]}).encode(), "not {"),
    (report("static/notebook/main.1a.js?v=1a", page="tree/"), "only notebook pages"),
    (report(*["static/notebook/main.1a.js?v=1a"] * (pagefiles.MAX_FILES + 1)), "at most"),
    (b" " * (pagefiles.MAX_BODY + 1), "at most"),
])
def test_a_report_that_is_not_a_notebook_pages_file_list_is_refused(install, body, why):
    with pytest.raises(BadReport, match=why):
        checked_report(body, install["context"], install["allowed"], install["forbidden"])


def files(*names):
    return {name: PageFile(name, __file__, "script", False) for name in names}


def test_files_most_pages_loaded_are_listed_in_the_order_pages_load_them(tmp_path):
    store = PageFiles()
    store.add("v1", files("main", "core", "csv-viewer"))  # one page: all of it
    assert [f.url for f in store.listed("v1")] == ["main", "core", "csv-viewer"]
    store.add("v1", files("main", "core", "toc"))
    store.add("v1", files("main", "core"))
    # Two of three pages did without the CSV viewer and the table of contents: left out.
    assert [f.url for f in store.listed("v1")] == ["main", "core"]
    assert store.listed("v2") == [], "another Jupyter version starts again"
    for _ in range(pagefiles.REPORTS):
        store.add("v1", files("main", "lab"))
    assert [f.url for f in store.listed("v1")] == ["main", "lab"], "only the last reports decide"


def test_the_list_survives_a_restart_in_the_cache_folder_and_skips_files_gone(tmp_path):
    gone = tmp_path / "gone.js"
    gone.write_text("x")
    store = PageFiles(str(tmp_path / "cache"))
    store.add("v1", {**files("main"), "gone": PageFile("gone", str(gone), "script", True)})
    again = PageFiles(str(tmp_path / "cache"))
    assert [(f.url, f.immutable) for f in again.listed("v1")] == [("main", False), ("gone", True)]
    os.remove(gone)
    assert [f.url for f in again.listed("v1")] == ["main"], "a file no longer on disk is not named"
    assert PageFiles(str(tmp_path / "cache")).listed("v2") == []
    # A damaged file is ignored, never an error on a page.
    for name in os.listdir(tmp_path / "cache"):
        (tmp_path / "cache" / name).write_text("{")
    assert PageFiles(str(tmp_path / "cache")).listed("v1") == []


def test_the_processes_of_a_web_server_share_the_reports(tmp_path):
    """gunicorn's or uWSGI's workers: each adds its reports to the file, and reads the others'."""
    one, two = PageFiles(str(tmp_path)), PageFiles(str(tmp_path))
    assert one.listed("v1") == two.listed("v1") == []
    one.add("v1", files("main", "csv-viewer"))
    assert [f.url for f in two.listed("v1")] == ["main", "csv-viewer"], "the other worker's report"
    two.add("v1", files("main"))
    two.add("v1", files("main", "core"))
    # Three reports in all, whichever worker took them: the same majority in both.
    assert [f.url for f in one.listed("v1")] == [f.url for f in two.listed("v1")] == ["main"]
    assert len(json.load(open(one._file("v1")))["reports"]) == 3


def test_without_a_folder_the_reports_stay_in_the_process():
    store = PageFiles()
    store.add("v1", files("main"))
    assert [f.url for f in store.listed("v1")] == ["main"]
