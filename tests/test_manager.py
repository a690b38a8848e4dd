"""NotebookManager against real Jupyter servers."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading

import psutil
import pytest
import requests

from pyramid_notebook.notebookmanager import NotebookManager, NotebookStartError
from pyramid_notebook.backends.local.ports import NoFreePort
from pyramid_notebook.core.inkernel import MARK_LINE
from tests.helpers import daemons_under, wait_for

CONTEXT = {"context_hash": "one", "greeting": "Hello *you*", "startup": "x = 42\n", "notebook_path": "/notebook/"}


def status_url(context):
    return f"http://127.0.0.1:{context['http_port']}/notebook/api/status"


def answers_with_token(context):
    return requests.get(status_url(context), headers={"Authorization": "token " + context["token"]}, timeout=5)


def test_spawn_and_stop(manager):
    context = manager.start_notebook("alice", CONTEXT)
    assert manager.is_running("alice")
    assert answers_with_token(context).status_code == 200
    status = manager.get_notebook_status("alice")
    assert status["pid"] == context["pid"] and status["http_port"] == context["http_port"]
    folder = manager.get_work_folder("alice")
    state = manager.get_state_folder("alice")
    assert os.stat(folder).st_mode & 0o077 == 0, "the user's folder is private"
    assert os.stat(state).st_mode & 0o077 == 0 and os.stat(os.path.dirname(state)).st_mode & 0o077 == 0
    assert os.stat(os.path.join(state, "context.json")).st_mode & 0o077 == 0, "the context holds a secret"
    nb = json.load(open(os.path.join(folder, context["notebook_name"])))
    assert [c["cell_type"] for c in nb["cells"]] == ["markdown", "markdown", "code"]
    assert "Hello *you*" in "".join(nb["cells"][1]["source"])
    assert os.path.exists(os.path.join(state, "notebook.stderr.log"))
    assert sorted(os.listdir(folder)) == [context["notebook_name"]], "only the user's own files in their folder"
    # Every kernel's startup file picks its notebook's context; this one's script is kept privately.
    startup = os.path.join(state, ".ipython", "profile_default", "startup", "00-pyramid-notebook.py")
    assert "JPY_SESSION_NAME" in open(startup).read()
    contexts = os.path.join(state, ".ipython", "pyramid_notebook_contexts")
    # First the line that marks a kernel (core/inkernel.py), then the context's own script.
    assert open(os.path.join(contexts, "default.py")).read() == MARK_LINE + "x = 42\n"

    assert manager.stop_notebook("alice") is True
    assert not manager.is_running("alice")
    assert manager.get_notebook_status("alice") is None
    with pytest.raises(requests.ConnectionError):
        answers_with_token(context)
    assert manager.stop_notebook("alice") is False
    assert os.path.exists(os.path.join(folder, context["notebook_name"])), "files survive a stop"


def test_raw_port_requires_the_secret(manager):
    context = manager.start_notebook("alice", CONTEXT)
    base = f"http://127.0.0.1:{context['http_port']}/notebook/"
    assert requests.get(base + "api/contents", timeout=5).status_code == 403
    assert requests.get(base + "api/contents", headers={"Authorization": "token wrong"}, timeout=5).status_code == 403
    assert requests.get(base + "api/contents?token=" + context["token"], timeout=5).status_code == 403, \
        "the secret is only accepted as a header from the proxy"
    tree = requests.get(base + "tree", timeout=5)
    assert tree.status_code in (403, 404), "pages are not served either (no login page to fall back to)"
    listening = [c.laddr for c in psutil.Process(context["pid"]).net_connections() if c.status == "LISTEN"]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening)


def test_reuse_same_context_restart_on_change(manager):
    first, created = manager.start_notebook_on_demand("alice", CONTEXT)
    assert created
    again, created = manager.start_notebook_on_demand("alice", dict(CONTEXT))
    assert not created and again["pid"] == first["pid"]
    changed, created = manager.start_notebook_on_demand("alice", dict(CONTEXT, context_hash="two", greeting="New"))
    assert created and changed["pid"] != first["pid"]
    assert not psutil.pid_exists(first["pid"]) or psutil.Process(first["pid"]).status() == psutil.STATUS_ZOMBIE
    assert changed["token"] != first["token"], "a fresh secret per start"
    assert answers_with_token(changed).status_code == 200
    assert len(daemons_under(manager.notebook_folder)) == 1


def test_concurrent_launches_from_threads_start_one(manager):
    results = []

    def launch():
        results.append(manager.start_notebook_on_demand("alice", CONTEXT))

    threads = [threading.Thread(target=launch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 4
    assert sum(created for _, created in results) == 1
    assert len({ctx["pid"] for ctx, _ in results}) == 1
    assert len(daemons_under(manager.notebook_folder)) == 1


LAUNCH_SCRIPT = """
import json, sys
from pyramid_notebook.notebookmanager import NotebookManager
m = NotebookManager(sys.argv[1], min_port=int(sys.argv[2]), port_range=20, fork_server=False)
ctx, created = m.start_notebook_on_demand("alice", json.loads(sys.argv[3]))
print(json.dumps({"pid": ctx["pid"], "created": created}))
"""


def test_concurrent_launches_from_processes_start_one(manager):
    args = [sys.executable, "-c", LAUNCH_SCRIPT, manager.notebook_folder, str(manager.min_port), json.dumps(CONTEXT)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert sum(o["created"] for o in outputs) == 1
    assert len({o["pid"] for o in outputs}) == 1
    assert len(daemons_under(manager.notebook_folder)) == 1


def test_kill_9_recovery(manager):
    first = manager.start_notebook("alice", CONTEXT)
    os.kill(first["pid"], signal.SIGKILL)
    wait_for(lambda: not manager.is_running("alice"), timeout=10, message="the daemon to die")
    assert os.path.exists(manager.get_pid_file("alice")), "a stale pid file is left behind"
    context, created = manager.start_notebook_on_demand("alice", CONTEXT)
    assert created and context["pid"] != first["pid"]
    assert answers_with_token(context).status_code == 200
    assert [p.pid for p in daemons_under(manager.notebook_folder)] == [context["pid"]]


def test_stale_pid_of_unrelated_process_is_not_touched(manager):
    folder = manager.get_state_folder("alice")
    os.makedirs(folder)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        with open(manager.get_pid_file("alice"), "w") as f:
            f.write(str(sleeper.pid))
        assert not manager.is_running("alice")
        assert manager.stop_notebook("alice") is False
        context, created = manager.start_notebook_on_demand("alice", CONTEXT)
        assert created and sleeper.poll() is None, "an unrelated process must never be signalled"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_corrupt_context_file(manager):
    first = manager.start_notebook("alice", CONTEXT)
    with open(os.path.join(manager.get_state_folder("alice"), "context.json"), "w") as f:
        f.write("{not json")
    assert manager.get_context("alice") is None
    context, created = manager.start_notebook_on_demand("alice", CONTEXT)
    assert created and context["pid"] != first["pid"]
    assert [p.pid for p in daemons_under(manager.notebook_folder)] == [context["pid"]]
    assert os.path.exists(os.path.join(manager.get_work_folder("alice"), first["notebook_name"]))


def test_user_files_are_never_deleted(manager):
    folder = manager.get_work_folder("alice")
    os.makedirs(folder)
    with open(os.path.join(folder, "mine.ipynb"), "w") as f:
        f.write("precious")
    name = "default-" + CONTEXT["context_hash"][:8] + ".ipynb"
    with open(os.path.join(folder, name), "w") as f:
        f.write("edited by the user")
    manager.start_notebook("alice", CONTEXT)
    manager.stop_notebook("alice")
    assert open(os.path.join(folder, "mine.ipynb")).read() == "precious"
    assert open(os.path.join(folder, name)).read() == "edited by the user"


def test_port_exhaustion(notebook_folder):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        manager = NotebookManager(notebook_folder, min_port=port, port_range=1, fork_server=False)
        with pytest.raises(NoFreePort, match="in use"):
            manager.start_notebook_on_demand("alice", CONTEXT)
    assert daemons_under(notebook_folder) == []


def test_reserved_ports_are_not_reused(notebook_folder):
    base = wait_for(lambda: _two_free_ports(), message="two adjacent free ports")
    manager = NotebookManager(notebook_folder, min_port=base, port_range=2, fork_server=False)
    a = manager.start_notebook("alice", CONTEXT)
    b = manager.start_notebook("bob", CONTEXT)
    assert {a["http_port"], b["http_port"]} == {base, base + 1}
    with pytest.raises(NoFreePort):
        manager.start_notebook("carol", CONTEXT)
    assert manager.is_running("alice") and manager.is_running("bob")


def _two_free_ports():
    from pyramid_notebook.backends.local.ports import port_is_free
    from tests.helpers import random_port_base

    base = random_port_base(2)
    return base if port_is_free(base) and port_is_free(base + 1) else None


def test_daemon_dying_at_start_reports_its_log(manager):
    bad = dict(CONTEXT, extra_template_paths=[["not", "a", "path"]])
    with pytest.raises(NotebookStartError) as e:
        manager.start_notebook_on_demand("alice", bad)
    assert "extra_template_paths" in e.value.log_tail
    assert not manager.is_running("alice")
    assert daemons_under(manager.notebook_folder) == []


def test_pid_alive():
    from pyramid_notebook.core.process import pid_alive

    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_for(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE, timeout=10, message="a zombie")
    assert pid_alive(os.getpid()) is True
    assert pid_alive(zombie.pid) is False
    zombie.wait()
    assert pid_alive(zombie.pid) is False
    assert pid_alive(None) is False and pid_alive(0) is False and pid_alive("1") is False


def test_port_taken_before_jupyter_binds_is_retried(manager, monkeypatch):
    """Another process grabbing the port between our pick and Jupyter's bind costs a retry, not an error."""
    import pyramid_notebook.backends.local.manager as nm

    real_pick = nm.pick_port
    thief = socket.socket()
    thief.bind(("127.0.0.1", 0))
    thief.listen()
    picks = []

    def pick_taken_port_first(*args, **kwargs):
        picks.append(thief.getsockname()[1] if not picks else real_pick(*args, **kwargs))
        return picks[-1]

    monkeypatch.setattr(nm, "pick_port", pick_taken_port_first)
    try:
        context = manager.start_notebook("alice", CONTEXT)
    finally:
        thief.close()
    assert len(picks) == 2 and context["http_port"] == picks[1] != picks[0]
    assert answers_with_token(context).status_code == 200
