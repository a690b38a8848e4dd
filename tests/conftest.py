"""Fixtures: real notebook managers, the real demo app in a real waitress server."""
import os
import textwrap

import pytest

from pyramid_notebook.backends.local.manager import NotebookManager
from tests.helpers import WSGIServerThread, join_background_starts, random_port_base, stop_all_notebooks

#: Every process a test leaves running fails the run (tests/leakcheck.py).
pytest_plugins = ["tests.leakcheck"]

#: Test files whose tests start no real server (no Jupyter, web server, nginx, hub or browser):
#: they run in seconds. Every other test is marked ``slow``; ``scripts/test -m "not slow"`` runs
#: only these (README, "Development"). Marked here by file so that test files need no edits.
FAST_FILES = {
    "test_framing.py", "test_origin.py", "test_settings.py", "test_utils.py", "test_proxy_unit.py",
    "test_static_unit.py", "test_hub_unit.py", "test_layout.py", "test_any_policy.py",
}


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """Failed browser tests' screenshots go to the run's temporary folder, not into the checkout."""
    import tests.browser

    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None:
        tests.browser.ARTIFACTS = str(factory.getbasetemp() / "test-artifacts")


def pytest_collection_modifyitems(config, items):
    """Mark every test outside :data:`FAST_FILES` ``slow``."""
    for item in items:
        if item.path.name not in FAST_FILES:
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Let fixtures see whether the test failed (for screenshots on failure)."""
    report = yield
    setattr(item, "rep_" + report.when, report)
    return report


@pytest.fixture(autouse=True)
def _stop_site_fork_servers(monkeypatch):
    """Every site a test creates (``make_wsgi_app``) starts its fork server in the background:
    after the test, stop the watcher thread, then that fork server, by the pid it recorded.

    Tests that build an app only to look at its routes or pages would otherwise leave one running.
    """
    started = []
    original = NotebookManager.on_site_start

    def on_site_start(self):
        started.append(self)
        return original(self)

    monkeypatch.setattr(NotebookManager, "on_site_start", on_site_start)
    yield
    from pyramid_notebook.backends.local import forkclient

    for manager in started:
        manager.close()
        forkclient.stop_all(manager.notebook_folder)


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
        # The spare kernel after a second shell (default ``false``): the shells' tests expect one.
        # test_shells tests the default too.
        "pyramid_notebook.spare_kernel": "true",
        # Likewise compressing Notebook's whole static folder at each site's start (default on):
        # minutes of CPU per test site. test_preload tests it, with the default.
        "pyramid_notebook.precompress": "false",
        # Likewise the warm-up's kernel interpreter import at each site's start: test_warmup tests it.
        "pyramid_notebook.warm_up": "false",
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


def _fresh_browser(request, name):
    import shutil

    from tests.browser import make_browser, save_artifacts

    b, profile = make_browser()
    yield b
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        folder = save_artifacts(b, request.node.name + name)
        print(f"\nScreenshot, console log and page source saved in {folder}")
    b.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(request):
    """A fresh headless Chromium; on failure its screenshot and console log are saved."""
    yield from _fresh_browser(request, "")


@pytest.fixture
def browser2(request):
    """A second fresh headless Chromium, its own profile: a second person beside :func:`browser`'s."""
    yield from _fresh_browser(request, "-second")


@pytest.fixture
def python_exe():
    """The interpreter running the tests (and the daemons)."""
    import sys

    return os.environ.get("PYRAMID_NOTEBOOK_PYTHON", sys.executable)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Whatever was skipped is said loudly at the end, with the reason: those parts of the
    mission went untested in this run (``-m`` deselections are not skips)."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons = {}
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reasons.setdefault(reason.removeprefix("Skipped: "), []).append(report.nodeid)
    terminalreporter.write_sep("!", f"{len(skipped)} TEST(S) SKIPPED: these parts went UNTESTED", red=True, bold=True)
    for reason, nodeids in sorted(reasons.items()):
        terminalreporter.write_line(f"{reason}  ({len(nodeids)} test(s)):", red=True, bold=True)
        for nodeid in nodeids:
            terminalreporter.write_line(f"    {nodeid}")


def pytest_sessionfinish(session, exitstatus):
    """In CI (``CI`` set) a skipped test fails the run: every test's real parts are installed there
    by ``scripts/test``, so a skip means one is missing and the feature went untested."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("CI") and skipped and exitstatus == 0:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; a part the suite needs is missing", red=True)
        session.exitstatus = 1


collect_ignore = ["sites"]  # tests/sites/*: sites with their own suites, run by the tests that use them
