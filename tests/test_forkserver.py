"""The fork server: notebook daemons forked from a pre-imported Jupyter, against real servers."""
import os
import shutil
import signal
import subprocess
import sys
import threading

import psutil
import pytest
import requests

from pyramid_notebook.backends.local import forkclient as forkserver
from pyramid_notebook.backends.local.manager import NotebookManager
from pyramid_notebook.core import paths
from pyramid_notebook.core.process import get_daemon_process
from tests.helpers import KernelChannel, daemons_under, fork_servers_under, random_port_base, stop_all_notebooks, \
    socket_inodes, wait_for

CONTEXT = {"context_hash": "fs", "greeting": "forked", "startup": "x = 42\n", "notebook_path": "/notebook/"}


def forked(pid) -> bool:
    """True if ``pid`` runs under the fork server's setproctitle title (one string, no NUL inside)."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return b"\0" not in f.read().rstrip(b"\0")


def answers(context):
    url = f"http://127.0.0.1:{context['http_port']}/notebook/api/status"
    return requests.get(url, headers={"Authorization": "token " + context["token"]}, timeout=5).status_code == 200


def kernel_channel(context):
    session = context["warm_session"]
    r = requests.get(f"http://127.0.0.1:{context['http_port']}/notebook/api/sessions/{session}",
                     headers={"Authorization": "token " + context["token"]}, timeout=10)
    assert r.status_code == 200, r.text
    kernel = r.json()["kernel"]["id"]
    ws_url = f"ws://127.0.0.1:{context['http_port']}/notebook/api/kernels/{kernel}/channels"
    return KernelChannel(ws_url, headers=[f"Authorization: token {context['token']}"])


def package_copy(tmp_path, monkeypatch):
    """A copy of the package that only this test's fork servers run (their script is the copy's):
    touching the checkout's own files would stale every other fork server running from it."""
    import pyramid_notebook

    copy = tmp_path / "packages" / "pyramid_notebook"
    shutil.copytree(os.path.dirname(pyramid_notebook.__file__), copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(paths, "FORKSERVER_SCRIPT", str(copy / "forkserver" / "serve.py"))
    return copy


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One fork server and two users forked from it, shared by the isolation tests."""
    folder = str(tmp_path_factory.mktemp("forked") / "notebooks")
    os.makedirs(folder)
    manager = NotebookManager(folder, min_port=random_port_base(), port_range=20, kill_timeout=600, fork_server=True)
    manager.start_fork_server()
    server = manager.fork_server.wait_until_ready(timeout=120)
    users = {}
    try:
        for name, startup in (("alice", "x = 'alice'\n"), ("bob", "x = 'bob'\n")):
            os.environ["PYRAMID_NOTEBOOK_TEST_LAUNCH"] = name
            users[name], created = manager.start_notebook_on_demand(name, dict(CONTEXT, startup=startup))
            assert created
        yield manager, server, users
    finally:
        os.environ.pop("PYRAMID_NOTEBOOK_TEST_LAUNCH", None)
        stop_all_notebooks(folder)


def test_daemons_are_forked_and_trusted(shared):
    manager, server, users = shared
    for name, context in users.items():
        assert forked(context["pid"]), "started by the fork server, not a fresh interpreter"
        proc = get_daemon_process(manager.get_pid_file(name))
        assert proc is not None and proc.pid == context["pid"], "the pid checks trust the titled daemon"
        assert proc.ppid() != server["pid"], "detached: the fork server is not its parent"
        assert os.getsid(context["pid"]) not in (os.getsid(server["pid"]), os.getsid(0)), "a session of its own"
        assert answers(context)
    fs = psutil.Process(server["pid"])
    assert fs.num_threads() == 1, "the fork server never starts a thread"


def test_users_are_isolated(shared):
    manager, server, users = shared
    alice, bob = users["alice"], users["bob"]
    assert alice["token"] != bob["token"] and alice["http_port"] != bob["http_port"]
    assert psutil.Process(alice["pid"]).cwd() == manager.get_work_folder("alice")
    assert psutil.Process(bob["pid"]).cwd() == manager.get_work_folder("bob")
    secrets_ = [open(os.path.join(manager.get_state_folder(u), ".jupyter", "runtime", "cookie_secret")).read()
                for u in ("alice", "bob")]
    assert secrets_[0] != secrets_[1]
    # No socket (in particular the control socket) and no file of the fork server is shared.
    fs_sockets = socket_inodes(server["pid"])
    assert fs_sockets
    for context in (alice, bob):
        assert not socket_inodes(context["pid"]) & fs_sockets
        files = {f.path for f in psutil.Process(context["pid"]).open_files()}
        assert manager.fork_server.log_file not in files
    assert not socket_inodes(alice["pid"]) & socket_inodes(bob["pid"])


def test_warm_kernels_ran_their_own_startup_and_stay_apart(shared):
    manager, server, users = shared
    channels = {name: kernel_channel(context) for name, context in users.items()}
    try:
        assert channels["alice"].execute("x") == "'alice'", "the warm kernel ran alice's startup script"
        assert channels["bob"].execute("x") == "'bob'"
        # The environment is the launching site's (at the time of that launch) plus the user's own folders,
        # as the server passed it on to its kernel.
        for name, channel in channels.items():
            env = eval(channel.execute("import os; {k: os.environ.get(k) for k in os.environ}"))
            assert env["PYRAMID_NOTEBOOK_TEST_LAUNCH"] == name
            for key in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
                assert env[key].startswith(manager.get_state_folder(name) + os.sep), key
            assert channel.execute("os.getcwd()") == repr(manager.get_work_folder(name))
        channels["alice"].execute("import json; json.MARK = 'alice was here'")
        assert channels["bob"].execute("import json; hasattr(json, 'MARK')") == "False"
        assert channels["alice"].execute("json.MARK") == "'alice was here'"
    finally:
        for channel in channels.values():
            channel.close()


def test_daemon_cli_handles_a_forked_daemon(manager):
    context = manager.start_notebook("carol", CONTEXT)
    assert forked(context["pid"])
    script = paths.DAEMON_SCRIPT
    args = [manager.get_pid_file("carol"), manager.get_work_folder("carol"), str(context["http_port"]), "600"]
    r = subprocess.run([sys.executable, script, "status", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and f"running pid={context['pid']}" in r.stdout
    r = subprocess.run([sys.executable, script, "stop", *args], capture_output=True, text=True, timeout=60)
    assert "stopped" in r.stdout
    assert not manager.is_running("carol") and not os.path.exists(manager.get_pid_file("carol"))
    assert manager.get_context("carol")["state"] == "stopped"


def test_killed_fork_server_falls_back_and_comes_back(manager):
    old = manager.fork_server.ping()["pid"]
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: manager.fork_server.ping(timeout=0.5) is None, message="the fork server to be gone")
    context = manager.start_notebook("alice", CONTEXT)
    assert answers(context) and not forked(context["pid"]), "a plain start, never a failed launch"
    new = manager.fork_server.wait_until_ready(timeout=120)["pid"]
    assert new != old, "restarted in the background"
    again, created = manager.start_notebook_on_demand("bob", CONTEXT)
    assert created and forked(again["pid"])


def test_corrupt_socket_falls_back(manager):
    old = manager.fork_server.ping()["pid"]
    sock = os.path.join(manager.fork_server.folder, forkserver.socket_name(manager.python))
    os.unlink(sock)
    with open(sock, "w") as f:
        f.write("not a socket")
    context = manager.start_notebook("alice", CONTEXT)
    assert answers(context) and not forked(context["pid"])
    assert not psutil.pid_exists(old) or psutil.Process(old).status() == psutil.STATUS_ZOMBIE, \
        "the unreachable fork server was replaced"
    assert manager.fork_server.wait_until_ready(timeout=120)["pid"] != old


def test_stale_fork_server_is_replaced(manager):
    old = manager.fork_server.ping()
    # A request from another interpreter (or after an upgrade) is refused and ends that fork server.
    answer = forkserver.request(manager.fork_server.folder, manager.python,
                                {"op": "start", "python": "/usr/bin/another-python", "pid_file": "/nonexistent"})
    assert answer == {"ok": False, "error": "stale", "fingerprint": old["fingerprint"]}
    wait_for(lambda: not psutil.pid_exists(old["pid"]) or
             psutil.Process(old["pid"]).status() == psutil.STATUS_ZOMBIE, message="the stale fork server to exit")
    context = manager.start_notebook("alice", CONTEXT)
    assert answers(context) and not forked(context["pid"])


def test_changed_package_files_make_the_fork_server_stale(notebook_folder, tmp_path, monkeypatch):
    """Our package's files changing on disk (an upgrade in place) make the running fork server stale.

    Changed in a copy of the package that only this test's fork server runs (its script is the
    copy's, which imports the copy): touching the checkout's own files would stale every other
    fork server running from it."""
    copy = package_copy(tmp_path, monkeypatch)
    manager = NotebookManager(notebook_folder, min_port=random_port_base(), port_range=20, kill_timeout=600,
                              fork_server=True)
    manager.start_fork_server()
    fresh = manager.fork_server.wait_until_ready(timeout=120)
    assert fresh["fingerprint"]["package"] == str(copy), "the fork server runs the copy"
    alice = manager.start_notebook("alice", CONTEXT)
    assert answers(alice) and forked(alice["pid"])
    touched = copy / "server" / "__init__.py"
    stat = os.stat(touched)
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    bob = manager.start_notebook("bob", CONTEXT)
    assert answers(bob) and not forked(bob["pid"]), "the stale fork server refused: started the plain way"
    assert manager.fork_server.wait_until_ready(timeout=120)["pid"] != fresh["pid"]


def test_another_interpreter_gets_its_own_fork_server(notebook_folder, tmp_path):
    # A second interpreter with the same packages: a virtualenv layout whose python links to ours.
    if sys.prefix == sys.base_prefix:
        pytest.skip("needs to run in a virtualenv")
    venv = tmp_path / "venv2"
    (venv / "bin").mkdir(parents=True)
    python = str(venv / "bin" / "python")
    os.symlink(sys.executable, python)
    os.symlink(os.path.join(sys.prefix, "lib"), venv / "lib")
    (venv / "pyvenv.cfg").write_text(open(os.path.join(sys.prefix, "pyvenv.cfg")).read())
    manager = NotebookManager(notebook_folder, min_port=random_port_base(), port_range=20, python=python,
                              fork_server=True)
    manager.start_fork_server()
    assert manager.fork_server.wait_until_ready(timeout=120)["fingerprint"]["python"] == python
    context = manager.start_notebook("alice", CONTEXT)
    assert forked(context["pid"]) and psutil.Process(context["pid"]).cmdline()[0] == python
    assert len(fork_servers_under(notebook_folder)) == 1


def test_a_fork_server_that_cannot_start_is_not_spawned_at_every_launch(notebook_folder, tmp_path):
    """An interpreter whose fork server dies while importing: launches start the plain way, and the
    fork server is tried once, not again at each launch (each try costs seconds of imports)."""
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\ncase \"$1\" in */forkserver/serve.py) echo 'cannot import Jupyter' >&2; exit 1;; esac\n"
                      f"exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    manager = NotebookManager(notebook_folder, min_port=random_port_base(), port_range=20, python=str(python),
                              kill_timeout=600, fork_server=True)
    client = manager.fork_server
    for name in ("alice", "bob", "carol"):
        context, created = manager.start_notebook_on_demand(name, CONTEXT)
        assert created and answers(context) and not forked(context["pid"]), "started the plain way"
        if client._spawned is not None:
            client._spawned.wait(timeout=60)  # the doomed fork server, spawned after the first launch
    with open(client.log_file) as f:
        assert f.read().count("cannot import Jupyter") == 1, "spawned once, then left alone"
    assert not fork_servers_under(notebook_folder)


def test_concurrent_launches_of_many_users(manager):
    names = [f"user{i}" for i in range(4)] + ["user0"] * 2
    results, errors = [], []

    def launch(name):
        try:
            results.append((name,) + manager.start_notebook_on_demand(name, CONTEXT))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=launch, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not errors and len(results) == len(names)
    pids = {name: {ctx["pid"] for n, ctx, _ in results if n == name} for name in set(names)}
    assert all(len(p) == 1 for p in pids.values()), "exactly one server per user"
    assert sum(created for _, _, created in results) == 4
    assert len({ctx["http_port"] for _, ctx, _ in results}) == 4
    assert len(daemons_under(manager.notebook_folder)) == 4
    assert all(forked(ctx["pid"]) and answers(ctx) for _, ctx, _ in results)


def test_a_launch_right_after_the_site_starts_is_forked(make_demo_server):
    """The site spawns its fork server when it starts; a launch that comes while the fork server still
    imports Jupyter waits for it instead of starting the plain way (and the site did not wait either)."""
    server = make_demo_server(**{"pyramid_notebook.fork_server": "true"})
    manager = server.manager
    context, created = manager.start_notebook_on_demand("alice", CONTEXT)
    assert created and answers(context)
    assert forked(context["pid"]), "the first launch after the site started was forked"
    assert len(fork_servers_under(manager.notebook_folder)) == 1


def test_a_manager_built_directly_has_the_settings_default():
    from pyramid_notebook.core.settings import NotebookSettings, parse_settings

    built = NotebookManager("/nonexistent/notebooks")
    from_settings = NotebookManager.from_settings(parse_settings({"pyramid_notebook.notebook_folder": "/nonexistent"}))
    assert NotebookSettings.fork_server is True
    assert built.fork_server is not None and from_settings.fork_server is not None


def test_the_watcher_replaces_an_exited_or_stale_fork_server(notebook_folder, tmp_path, monkeypatch):
    copy = package_copy(tmp_path, monkeypatch)
    manager = NotebookManager(notebook_folder, min_port=random_port_base(), port_range=20, kill_timeout=600)
    client = manager.fork_server
    client.watch(interval=0.2)
    try:
        first = client.wait_until_ready(timeout=120)
        # It exits (idle exit, a crash): the watcher spawns another before any launch asks.
        assert client.stop()
        second = wait_for(lambda: client.ping(timeout=1), timeout=120, message="a new fork server")
        assert second["pid"] != first["pid"]
        assert second["fingerprint"]["package"] == str(copy), "the fork server runs the copy"
        # A deploy changes our files: the watcher replaces the stale one.
        touched = copy / "server" / "__init__.py"
        stat = os.stat(touched)
        os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        third = wait_for(lambda: (a := client.ping(timeout=1)) and a["pid"] != second["pid"] and a,
                         timeout=120, message="the stale fork server to be replaced")
        context = manager.start_notebook("alice", CONTEXT)
        assert forked(context["pid"]) and client.ping()["pid"] == third["pid"]
    finally:
        manager.close()
        stop_all_notebooks(notebook_folder)


def test_an_idle_fork_server_exits_and_stop_all_stops_a_running_one(notebook_folder, monkeypatch):
    """The fork server gives its memory back after ``IDLE_EXIT`` seconds without a request (here
    :data:`~pyramid_notebook.core.forkprotocol.IDLE_EXIT_ENV` makes that 2 s), removing its
    socket; ``pyramid-notebook stop-all`` stops a running one by its pid."""
    from pyramid_notebook.core.forkprotocol import IDLE_EXIT_ENV

    def gone(pid):
        return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

    monkeypatch.setenv(IDLE_EXIT_ENV, "2")
    manager = NotebookManager(notebook_folder, min_port=random_port_base(), port_range=20, fork_server=True)
    manager.start_fork_server()
    client = manager.fork_server
    idle = client.wait_until_ready(timeout=120)
    socket_path = os.path.join(client.folder, forkserver.socket_name(manager.python))
    assert os.path.exists(socket_path)
    wait_for(lambda: gone(idle["pid"]), timeout=60, message="the idle fork server to exit")
    assert not os.path.exists(socket_path), "it removed its socket"
    assert client.ping(timeout=1) is None

    monkeypatch.delenv(IDLE_EXIT_ENV)
    client.ensure_running()
    running = client.wait_until_ready(timeout=120)
    assert running["pid"] != idle["pid"]
    cli = os.path.join(os.path.dirname(sys.executable), "pyramid-notebook")
    r = subprocess.run([cli, "stop-all", notebook_folder], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: gone(running["pid"]), timeout=30, message="stop-all to stop the fork server")
    assert fork_servers_under(notebook_folder) == []


def test_start_notebook_in_the_foreground_blocks_until_the_server_stops(notebook_folder):
    """``NotebookManager.start_notebook(name, context, fg=True)`` (debugging): the server runs in
    the caller's process group, the call returns its context once it has stopped."""
    manager = NotebookManager(notebook_folder, min_port=random_port_base(), port_range=20, fork_server=False)
    returned = {}
    thread = threading.Thread(target=lambda: returned.update(manager.start_notebook("alice", CONTEXT, fg=True)))
    thread.start()
    try:
        def answering():
            context = manager.get_notebook_status("alice")
            try:
                return context if context and answers(context) else None
            except requests.ConnectionError:  # not listening yet
                return None

        context = wait_for(answering, timeout=120, message="the foreground server to answer")
        assert thread.is_alive(), "fg=True blocks while the server runs"
        from pyramid_notebook.core.statefolder import STDERR_LOG

        log = os.path.join(manager.get_state_folder("alice"), STDERR_LOG)
        assert not os.path.exists(log), "in the foreground the log goes to the caller's terminal"
    finally:
        manager.stop_notebook("alice")
        thread.join(timeout=60)
    assert not thread.is_alive(), "it returned once the server stopped"
    assert returned["http_port"] == context["http_port"] and returned["username"] == "alice"
