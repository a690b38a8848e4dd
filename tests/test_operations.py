"""Operating notebooks: the admin CLI, the user limit and the idle shutdown, with real daemons."""
import json
import os
import subprocess
import sys
import time

import pytest
import requests

from pyramid_notebook.notebookmanager import NotebookManager, TooManyNotebooks
from tests.helpers import daemons_under, login, random_port_base, wait_for
from tests.test_manager import CONTEXT

CLI = os.path.join(os.path.dirname(sys.executable), "pyramid-notebook")


def cli(*args):
    r = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=120)
    return r


def cli_json(*args):
    r = cli(*args, "--json")
    assert r.returncode in (0, 3), r.stderr
    return json.loads(r.stdout)


def test_cli_against_real_daemons(manager):
    alice = manager.start_notebook("alice", CONTEXT)
    bob = manager.start_notebook("bob@example.com", CONTEXT)
    folder = manager.notebook_folder

    rows = {r["user"]: r for r in cli_json("list", folder)}
    assert set(rows) == {"alice", "bob@example.com"}
    assert rows["alice"]["alive"] and rows["alice"]["pid"] == alice["pid"] and rows["alice"]["port"] == alice["http_port"]
    assert rows["alice"]["context_hash"] == CONTEXT["context_hash"] and rows["alice"]["started"]
    assert rows["alice"]["last_activity"], "asked from Jupyter's own activity tracking"
    human = cli("list", folder).stdout
    assert "USER" in human and "alice" in human and str(bob["http_port"]) in human

    status = cli_json("status", folder, "bob@example.com")
    assert status["alive"] and status["pid"] == bob["pid"]
    logs = cli("logs", folder, "alice", "-n", "200").stdout
    assert "Jupyter Server" in logs and "http://127.0.0.1:%d/notebook/" % alice["http_port"] in logs

    stopped = cli_json("stop", folder, "alice")
    assert stopped == [{"user": "alice", "pid": alice["pid"], "stopped": True, "stale": None}]
    assert not manager.is_running("alice") and manager.is_running("bob@example.com")
    assert cli("status", folder, "alice").returncode == 3

    manager.start_notebook("alice", CONTEXT)
    results = cli_json("stop-all", folder)
    assert sorted(r["user"] for r in results if r["stopped"]) == ["alice", "bob@example.com"]
    assert daemons_under(folder) == []
    assert "alice: not running" in cli("stop", folder, "alice").stdout


def test_cli_never_kills_an_unrelated_process_behind_a_stale_pid(manager):
    manager.start_notebook("alice", CONTEXT)
    manager.stop_notebook("alice")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        pid_file = manager.get_pid_file("alice")
        with open(pid_file, "w") as f:
            f.write(str(sleeper.pid))
        assert cli_json("stop-all", manager.notebook_folder)[0]["stopped"] is False
        assert sleeper.poll() is None
        with open(pid_file, "w") as f:
            f.write(str(sleeper.pid))
        rows = cli_json("list", manager.notebook_folder)
        assert rows[0]["alive"] is False and "not this folder's notebook daemon" in rows[0]["stale"]
        assert not os.path.exists(pid_file), "the stale entry is cleaned"
        assert sleeper.poll() is None, "and the process behind it left alone"
        # The table says so too (the entry is written again: the listing above cleaned it).
        with open(pid_file, "w") as f:
            f.write(str(sleeper.pid))
        table = cli("list", manager.notebook_folder).stdout
        assert "alice" in table and "not this folder's notebook daemon" in table, table
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_cli_errors_are_clear(tmp_path):
    r = cli("list", tmp_path / "missing")
    assert r.returncode != 0 and "No such notebook folder" in r.stderr
    (tmp_path / "nb").mkdir()
    assert cli("list", tmp_path / "nb").stdout.strip() == "No notebooks."
    r = cli("status", tmp_path / "nb", "nobody")
    assert r.returncode != 0 and "No notebook state for user 'nobody'" in r.stderr


def test_user_limit(notebook_folder):
    manager = NotebookManager(notebook_folder, min_port=random_port_base(), port_range=20, max_notebooks=2, fork_server=False)
    manager.start_notebook_on_demand("alice", CONTEXT)
    manager.start_notebook_on_demand("bob", CONTEXT)
    with pytest.raises(TooManyNotebooks, match="max_notebooks = 2"):
        manager.start_notebook_on_demand("carol", CONTEXT)
    assert len(daemons_under(notebook_folder)) == 2
    # A running user relaunching is not a new user.
    assert manager.start_notebook_on_demand("alice", CONTEXT)[1] is False
    manager.stop_notebook("bob")
    assert manager.start_notebook_on_demand("carol", CONTEXT)[1] is True


def test_user_limit_answers_503(make_demo_server):
    server = make_demo_server(**{"pyramid_notebook.max_notebooks": "1"})
    assert login(server.url, "user").get(server.url + "/shell1", allow_redirects=False).status_code == 302
    r = login(server.url, "user2").get(server.url + "/shell1", allow_redirects=False)
    assert r.status_code == 503
    assert "max_notebooks" in r.text and "Traceback" not in r.text


def start_kernel_on_raw_port(context):
    """Start a kernel as the proxy would: secret header plus Jupyter's XSRF cookie and header."""
    s = requests.Session()
    s.headers["Authorization"] = "token " + context["token"]
    base = f"http://127.0.0.1:{context['http_port']}/notebook/"
    s.get(base + "tree")
    r = s.post(base + "api/kernels", json={"name": "python3"},
               headers={"X-XSRFToken": s.cookies.get("_xsrf", path="/notebook/")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_idle_notebook_stops_itself_but_not_while_busy(notebook_folder):
    """Jupyter checks for idleness once a minute, so this test takes a little over two minutes."""
    manager = NotebookManager(notebook_folder, min_port=random_port_base(), port_range=20, idle_timeout=5, fork_server=False)
    idle = manager.start_notebook("idle", CONTEXT)
    busy = manager.start_notebook("busy", CONTEXT)
    started = time.monotonic()
    for context in (idle, busy):
        context["kernel"] = start_kernel_on_raw_port(context)
    # Keep one kernel busy for longer than Jupyter's first idle check (60 s after start).
    from tests.helpers import KernelChannel

    ws_url = f"ws://127.0.0.1:{busy['http_port']}/notebook/api/kernels/{busy['kernel']}/channels"
    channel = KernelChannel(ws_url, headers=[f"Authorization: token {busy['token']}"], timeout=120)
    channel.send("shell", "execute_request", {"code": "import time; time.sleep(80)", "silent": False})

    wait_for(lambda: not manager.is_running("idle"), timeout=100, interval=1, message="the idle notebook to stop")
    assert manager.get_context("idle")["state"] == "stopped"
    assert manager.is_running("busy"), "a kernel running a long computation keeps its notebook alive"
    assert time.monotonic() - started > 5
    channel.ws.close()
    manager.stop_notebook("busy")
    # The user comes back: files are there and a launch just works.
    again, created = manager.start_notebook_on_demand("idle", CONTEXT)
    assert created and os.path.exists(os.path.join(manager.get_work_folder("idle"), again["notebook_name"]))
