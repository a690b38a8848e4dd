"""A pytest plugin: the run fails when a test leaves a process running, whatever its kind.

The suite starts notebook daemons, fork servers, kernels, web servers (waitress, pserve,
gunicorn, uWSGI, uvicorn), nginx, JupyterHub with configurable-http-proxy and single-user
servers, Chromium and chromedriver. Some stay children of the pytest process; others detach
(daemons double-fork, a hub's proxy outlives a killed hub). So at the end of the session a process
is a leak if it is (still) a descendant of pytest, or if its command line or working folder names
the session's temporary folder, where every test's servers keep their state. Each one found is
stopped by its pid, listed, and the run fails.

Loaded by tests/conftest.py; ``pytest -p tests.leakcheck`` loads it in any other run.
"""
import os

import psutil
import pytest

#: A descendant of pytest that belongs to the interpreter, not to a test.
_NOT_OURS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def _describe(proc) -> str:
    try:
        return f"{proc.pid} {' '.join(proc.cmdline())[:200]}"
    except psutil.Error:
        return str(proc.pid)


def _names_folder(proc, folder: str) -> bool:
    """The process's command line or working folder names ``folder`` (or a path inside it)."""
    inside = folder + os.sep  # never a sibling: pytest-6 is not pytest-67, another run's
    try:
        if any(arg == folder or arg.endswith("=" + folder) or inside in arg for arg in proc.cmdline()):
            return True
        cwd = proc.cwd()
    except psutil.Error:
        return False
    return cwd == folder or cwd.startswith(folder + os.sep)


def leaked_processes(folder) -> list:
    """Live processes of this user that a test left running: descendants of this process, and
    processes whose command line or working folder is inside ``folder``."""
    me = psutil.Process()
    ancestors = {p.pid for p in me.parents()} | {me.pid}
    folder = os.path.realpath(str(folder))
    found = {}
    try:
        for child in me.children(recursive=True):
            found[child.pid] = child
    except psutil.Error:
        pass
    uid = os.getuid()
    for proc in psutil.process_iter(["pid", "uids"]):
        if proc.pid in ancestors or proc.pid in found:
            continue
        try:
            if proc.info["uids"] and proc.info["uids"].real != uid:
                continue
        except (KeyError, AttributeError):
            continue
        if _names_folder(proc, folder):
            found[proc.pid] = proc
    left = []
    for proc in found.values():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if any(name in " ".join(proc.cmdline()) for name in _NOT_OURS):
                continue
        except psutil.Error:
            continue
        left.append(proc)
    return left


def stop_processes(procs, timeout=10):
    """SIGTERM each by pid, then SIGKILL what is still alive after ``timeout``."""
    for proc in procs:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """After every fixture's teardown: stop and report what is still running; fail the run."""
    if hasattr(session.config, "workerinput"):
        # A pytest-xdist worker: its verdict would not reach the run's exit status. The controller
        # checks once every worker has ended (its temporary folder holds the workers' folders).
        return
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    try:
        base = factory.getbasetemp()
    except Exception:  # no temporary folder was ever made or it is gone: only descendants count
        base = "/nonexistent-folder"
    left = leaked_processes(base)
    if not left:
        return
    listing = [_describe(p) for p in left]
    stop_processes(left)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = "Processes left running by the tests (now stopped):\n  " + "\n  ".join(listing)
    if reporter is not None:
        reporter.write_sep("=", "LEAKED PROCESSES", red=True)
        reporter.write_line(message, red=True)
    else:
        print(message)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
