"""The session's leak check (tests/leakcheck.py) fails a run that leaves a process behind.

A tiny test file is run by a pytest of its own (as the README's command runs the suite): its test
starts real nginx servers and "forgets" to stop them, one a child of pytest, one detached as nginx
daemonizes by default (re-parented away from pytest, found by its command line).
"""
import os
import subprocess
import sys

import psutil
import pytest

from tests.helpers import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NGINX = "/usr/sbin/nginx"

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="needs nginx (scripts/test installs it)")

TINY_TEST = r'''
import os, subprocess, time
from tests.helpers import free_port, wait_for

def nginx(prefix, daemon):
    (prefix / "logs").mkdir(parents=True)
    (prefix / "nginx.conf").write_text(
        "pid logs/nginx.pid; error_log logs/error.log; events {} "
        "http { access_log off; server { listen 127.0.0.1:%d; return 204; } }" % free_port())
    cmd = ["/usr/sbin/nginx", "-p", str(prefix), "-c", "nginx.conf"] + ([] if daemon else ["-g", "daemon off;"])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid_file = prefix / "logs" / "nginx.pid"
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=30, message="nginx's pid file")
    return int(pid_file.read_text()), proc

def test_starts_nginx(tmp_path):
    child, proc = nginx(tmp_path / "child", daemon=False)
    detached, _ = nginx(tmp_path / "detached", daemon=True)
    with open(os.environ["LEAK_PIDS"], "w") as f:
        f.write(f"{child} {detached}")
    if os.environ.get("LEAK") != "1":
        for pid in (child, detached):
            os.kill(pid, 15)  # SIGTERM: nginx's fast stop
        proc.wait(timeout=30)
        for pid in (child, detached):
            wait_for(lambda: not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z",
                     timeout=60, message="nginx to stop")
'''


def _run(tmp_path, leak):
    test_file = tmp_path / "test_tiny_leak.py"
    test_file.write_text(TINY_TEST)
    pids_file = tmp_path / "pids"
    env = dict(os.environ, LEAK="1" if leak else "0", LEAK_PIDS=str(pids_file))
    env.pop("PYTEST_ADDOPTS", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "tests.leakcheck",
         "--rootdir", str(tmp_path), "--basetemp", str(tmp_path / "basetemp"), str(test_file)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    pids = [int(p) for p in pids_file.read_text().split()]
    return result, pids


def _gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_leaked_nginx_fails_the_run_and_is_stopped(tmp_path):
    result, pids = _run(tmp_path, leak=True)
    try:
        output = result.stdout + result.stderr
        assert "1 passed" in output, output  # the test itself passed ...
        assert result.returncode == pytest.ExitCode.TESTS_FAILED, output  # ... the run did not
        assert "LEAKED PROCESSES" in output and "nginx" in output, output
        for pid in pids:
            assert str(pid) in output, (pid, output)
            wait_for(lambda: _gone(pid), timeout=30, message=f"leaked nginx {pid} to be stopped by the check")
    finally:
        for pid in pids:  # if the check failed to stop them, this test does
            if not _gone(pid):
                psutil.Process(pid).kill()


def test_a_run_that_stops_its_nginx_passes(tmp_path):
    result, pids = _run(tmp_path, leak=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "LEAKED PROCESSES" not in output
    assert all(_gone(pid) for pid in pids)
