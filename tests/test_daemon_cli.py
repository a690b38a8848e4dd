"""notebook_daemon.py by hand, as the README documents it for debugging."""
import json
import os
import signal
import subprocess
import sys
import time

import requests

from pyramid_notebook.core.contextfile import read_context
from pyramid_notebook.core.process import get_daemon_process
from tests.helpers import free_port, wait_for

import pyramid_notebook.server.notebook_daemon as daemon_module

SCRIPT = daemon_module.__file__


def write_context(folder, **extra):
    context = {"token": "s3cret", "notebook_path": "/notebook/", "greeting": "by hand"}
    context.update(extra)
    (folder / "context.json").write_text(json.dumps(context))


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=60)


def answers(port, token="s3cret"):
    try:
        r = requests.get(f"http://127.0.0.1:{port}/notebook/api/status", headers={"Authorization": "token " + token},
                         timeout=2)
        return r.status_code == 200
    except requests.ConnectionError:
        return False


def prepared_folder(tmp_path):
    """A user folder and a state folder with a context file; returns (folder, pid file, free port)."""
    work = tmp_path / "u"
    work.mkdir()
    state = tmp_path / ".state" / "u"
    state.mkdir(parents=True)
    write_context(state)
    return work, state / "notebook.pid", free_port()


def start_by_hand(tmp_path, kill_timeout=600):
    """``notebook_daemon.py start`` and wait until it answers; returns (folder, pid file, port)."""
    work, pid_file, port = prepared_folder(tmp_path)
    r = cli("start", pid_file, work, port, kill_timeout)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: answers(port), timeout=60, message="the daemon to answer")
    return work, pid_file, port


def test_start_status_stop(tmp_path):
    work, pid_file, port = start_by_hand(tmp_path)
    try:
        context = read_context(str(pid_file))
        assert context["pid"] == int(pid_file.read_text()) and context["http_port"] == port
        assert context["notebook_name"] == "default.ipynb" and (work / "default.ipynb").exists()
        state = pid_file.parent
        assert (state / "notebook.stderr.log").stat().st_size > 0, "state goes beside the pid file"
        assert {p.name for p in state.iterdir()} >= {"context.json", "notebook.stdout.log", ".jupyter", ".ipython"}
        assert [p.name for p in work.iterdir()] == ["default.ipynb"], "nothing of the daemon's in WORK_FOLDER"
        r = cli("status", pid_file, work, port, 600)
        assert r.returncode == 0 and f"port={port}" in r.stdout
    finally:
        r = cli("stop", pid_file, work, port, 600)
    assert r.returncode == 0 and "stopped" in r.stdout
    assert not answers(port) and not pid_file.exists()
    assert read_context(str(pid_file))["state"] == "stopped"
    r = cli("status", pid_file, work, port, 600)
    assert r.returncode == 1 and "not running" in r.stdout


def test_relative_paths_by_hand(tmp_path):
    work, _, port = prepared_folder(tmp_path)
    try:
        assert cli("start", ".state/u/notebook.pid", "u", port, 600, cwd=tmp_path).returncode == 0
        wait_for(lambda: answers(port), timeout=60, message="the daemon to answer")
        assert cli("status", ".state/u/notebook.pid", "u", port, 600, cwd=tmp_path).returncode == 0
    finally:
        assert "stopped" in cli("stop", ".state/u/notebook.pid", "u", port, 600, cwd=tmp_path).stdout
    assert not answers(port)


def test_fg_runs_in_the_foreground(tmp_path):
    work, pid_file, port = prepared_folder(tmp_path)
    proc = subprocess.Popen([sys.executable, SCRIPT, "fg", str(pid_file), str(work), str(port), "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: answers(port), timeout=60, message="the foreground server to answer")
        assert get_daemon_process(str(pid_file)) is not None
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert not answers(port)
    assert b"Jupyter Server" in err, "in the foreground the log goes to the terminal"


def test_dead_mans_switch(tmp_path):
    work, pid_file, port = start_by_hand(tmp_path, kill_timeout=4)
    started = time.monotonic()
    wait_for(lambda: not pid_file.exists(), timeout=30, message="the kill timeout to end the daemon")
    assert time.monotonic() - started < 30
    assert read_context(str(pid_file))["state"] == "stopped"
    assert not answers(port)


def test_stop_escalates_to_sigkill(tmp_path):
    work, pid_file, port = start_by_hand(tmp_path)
    pid = int(pid_file.read_text())
    os.kill(pid, signal.SIGSTOP)  # a hung server ignores SIGTERM
    r = cli("stop", pid_file, work, port, 600)
    assert r.returncode == 0 and "stopped" in r.stdout
    assert get_daemon_process(str(pid_file), pid=pid) is None and not pid_file.exists()


def test_usage_errors(tmp_path):
    r = cli("explode", tmp_path / "p", tmp_path, 1, 1)
    assert r.returncode == 2 and "Usage" in r.stderr
    r = cli("start", tmp_path / "p", tmp_path, "port", 1)
    assert r.returncode == 2 and "whole numbers" in r.stderr
