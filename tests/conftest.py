"""Fixtures: real notebook managers, the real demo app in a real waitress server."""
import os
import textwrap

import pytest

from pyramid_notebook.notebookmanager import NotebookManager
from tests.helpers import (
    WSGIServerThread, daemons_under, fork_servers_under, join_background_starts, random_port_base, stop_all_notebooks,
)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Let fixtures see whether the test failed (for screenshots on failure)."""
    report = yield
    setattr(item, "rep_" + report.when, report)
    return report


@pytest.fixture(scope="session", autouse=True)
def no_notebook_left_behind(tmp_path_factory):
    """Fail the run if any test leaves a notebook daemon running."""
    base = tmp_path_factory.getbasetemp()
    yield
    left = daemons_under(base) + fork_servers_under(base)
    for proc in left:  # clean up anyway, then report
        proc.kill()
    assert not left, f"Notebook daemons or fork servers left running: {[p.pid for p in left]}"


@pytest.fixture
def notebook_folder(tmp_path):
    """A notebook folder whose daemons are all stopped after the test."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    yield str(folder)
    stop_all_notebooks(str(folder))


@pytest.fixture
def manager(notebook_folder):
    """A real NotebookManager on a random port range, its fork server ready (stopped after the test)."""
    manager = NotebookManager(notebook_folder, min_port=random_port_base(), port_range=20, kill_timeout=600,
                              startup_timeout=60, fork_server=True)
    manager.start_fork_server()
    manager.fork_server.wait_until_ready(timeout=120)
    return manager


def write_demo_ini(tmp_path, notebook_folder, **extra_settings):
    """An INI file for the demo app using temporary folders; returns its path."""
    settings = {
        "pyramid_notebook.notebook_folder": notebook_folder,
        "pyramid_notebook.port_base": str(random_port_base()),
        "pyramid_notebook.port_range": "20",
        "pyramid_notebook.startup_timeout": "60",
        "sqlalchemy.url": f"sqlite:///{tmp_path / 'demo.sqlite'}",
        # Tests of other features launch once or twice per folder: a fork server (the default)
        # would import Jupyter beside each first launch for nothing. test_forkserver and
        # test_progress test it; the shipped INI files (accel.ini, development.ini, ...) run with it.
        "pyramid_notebook.fork_server": "false",
    }
    settings.update(extra_settings)
    lines = "\n".join(f"{k} = {v}" for k, v in settings.items())
    ini = tmp_path / "demo.ini"
    ini.write_text(textwrap.dedent("[app:main]\nuse = egg:pyramid_notebook#demo\n") + lines + "\n")
    return str(ini)


@pytest.fixture
def make_demo_server(tmp_path, notebook_folder):
    """Factory: start the demo app (optionally with extra settings) in waitress."""
    from pyramid.paster import get_app

    servers = []

    def make(**extra_settings):
        ini = write_demo_ini(tmp_path, notebook_folder, **extra_settings)
        server = WSGIServerThread(get_app(ini, "main")).__enter__()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.__exit__(None, None, None)
    join_background_starts()


@pytest.fixture
def demo_server(make_demo_server):
    """The demo app in waitress, pserve mode (websockets straight to the notebook port)."""
    return make_demo_server()


@pytest.fixture
def browser(request):
    """A fresh headless Chromium; on failure its screenshot and console log are saved."""
    import shutil

    from tests.browser import make_browser, save_artifacts

    b, profile = make_browser()
    yield b
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        folder = save_artifacts(b, request.node.name)
        print(f"\nScreenshot, console log and page source saved in {folder}")
    b.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def python_exe():
    """The interpreter running the tests (and the daemons)."""
    import sys

    return os.environ.get("PYRAMID_NOTEBOOK_PYTHON", sys.executable)


def pytest_sessionfinish(session, exitstatus):
    """In CI (``CI`` set) a skipped test fails the run: every test's real parts are installed there
    by ``scripts/test``, so a skip means one is missing and the feature went untested."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("CI") and skipped and exitstatus == 0:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; a part the suite needs is missing", red=True)
        session.exitstatus = 1
