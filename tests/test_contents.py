"""pyramid_notebook.web.contents: paths are checked before anything is sent; a real notebook does the rest."""
import pytest
from pyramid import testing
from pyramid.httpexceptions import HTTPBadRequest

from pyramid_notebook.web import contents
from pyramid_notebook.notebookmanager import NotebookManager
from pyramid_notebook.views import notebook_url
from tests.helpers import free_port, random_port_base, stop_all_notebooks


@pytest.mark.parametrize("path", [
    "", "  ", None, 42, "/etc/passwd", "../other-user/default.ipynb", "a/../../b.ipynb", "a//b.ipynb", "./a.ipynb",
    "a/./b.ipynb", "a/", ".jupyter/jupyter_server_config.json", "sub/.ipython/startup.py", ".hidden.ipynb",
    "notebook.pid", "context.json", "notebook.stderr.log", "a\\..\\b.ipynb", "C:evil.ipynb", "a\x00.ipynb",
    "new\nline.ipynb", "x" * 2000,
])
def test_bad_paths_are_refused(path):
    with pytest.raises(contents.BadPath):
        contents.validate_path(path)


@pytest.mark.parametrize("path", ["a.ipynb", "analyses/2024/report 1.ipynb", "données.ipynb", "a..b.ipynb"])
def test_plain_paths_pass(path):
    assert contents.validate_path(path) == path


def test_no_context_is_not_running():
    for context in (None, {}, {"http_port": 1234}, {"token": "x"}):
        with pytest.raises(contents.NotebookNotRunning):
            contents.NotebookContents(context)


def test_dead_server_is_not_running():
    client = contents.NotebookContents({"http_port": free_port(), "token": "secret", "notebook_path": "/notebook/"})
    with pytest.raises(contents.NotebookNotRunning, match="does not answer"):
        client.read_notebook("a.ipynb")


def test_bad_path_is_refused_before_any_request():
    # Nothing listens on this port: a BadPath (not NotebookNotRunning) proves no request went out.
    client = contents.NotebookContents({"http_port": free_port(), "token": "secret"})
    for call in (lambda: client.read_notebook("../x.ipynb"), lambda: client.write_notebook("/x.ipynb", {"cells": []}),
                 lambda: client.create_notebook(".x.ipynb"), lambda: client.delete("context.json"),
                 lambda: client.list_files(".jupyter"), lambda: client.write_notebook("x.txt", {"cells": []})):
        with pytest.raises(contents.BadPath):
            call()
    with pytest.raises(contents.ContentsError, match="not a notebook"):
        client.write_notebook("x.ipynb", {"no": "cells"})


@pytest.fixture
def site_request(tmp_path):
    config = testing.setUp(settings={"pyramid_notebook.notebook_folder": str(tmp_path / "notebooks"),
                                     "pyramid_notebook.port_base": str(random_port_base())})
    config.include("pyramid_notebook")
    config.commit()
    yield testing.DummyRequest()
    testing.tearDown()


def test_user_without_running_notebook(site_request):
    for username in ("user", None, ""):
        with pytest.raises(contents.NotebookNotRunning):
            contents.read_notebook(site_request, username, "a.ipynb")


@pytest.mark.parametrize("path", ["../user2/default.ipynb", "/etc/passwd", ".jupyter/jupyter_server_config.json"])
def test_notebook_url_refuses_bad_paths_with_400(site_request, path):
    with pytest.raises(HTTPBadRequest) as info:
        notebook_url(site_request, "user", {}, path=path)
    assert "Unusable notebook path" in info.value.text
    assert not site_request.registry.pyramid_notebook_manager.is_running("user")


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """One real notebook server for the round trips below."""
    folder = str(tmp_path_factory.mktemp("contents") / "notebooks")
    manager = NotebookManager(folder, min_port=random_port_base(), port_range=20, kill_timeout=600,
                              startup_timeout=60, fork_server=False)
    context, _ = manager.start_notebook_on_demand("user", {"notebook_path": "/notebook/", "startup": "",
                                                           "greeting": "", "extra_template_paths": []})
    yield contents.NotebookContents(context)
    stop_all_notebooks(folder)


def test_round_trip_through_the_running_notebook(running):
    running.create_notebook("sub.ipynb")
    with pytest.raises(contents.ContentsError, match="exists already"):
        running.create_notebook("sub.ipynb")
    nb = running.read_notebook("sub.ipynb")
    assert nb["cells"] == []
    nb["cells"].append({"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": [], "execution_count": None})
    running.write_notebook("sub.ipynb", nb)  # a PUT: Jupyter's XSRF check passes
    assert running.read_notebook("sub.ipynb")["cells"][0]["source"] == "x = 1"
    names = [m["name"] for m in running.list_files()]
    assert "sub.ipynb" in names and not [n for n in names if n.startswith(".") or n in contents.STATE_FILES]
    running.delete("sub.ipynb")
    with pytest.raises(contents.ContentsNotFound):
        running.read_notebook("sub.ipynb")
    with pytest.raises(contents.ContentsNotFound):
        running.delete("sub.ipynb")


def test_wrong_secret_is_refused(running):
    impostor = contents.NotebookContents({"http_port": running.port, "token": "not-the-secret"})
    with pytest.raises(contents.ContentsError, match="403|401"):
        impostor.list_files()
