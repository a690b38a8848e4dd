"""Faults while launching: unwritable or full folders, hung servers, killed kernels, a killed web server.

Each ends in a clear error page or a recovered notebook on the next launch, never a
wedged user and never a lost file.
"""
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading

import psutil
import pytest
import requests

from pyramid_notebook.core.contextfile import read_context
from pyramid_notebook.core.process import pid_alive
from tests.conftest import write_demo_ini
from tests.helpers import daemons_under, free_port, login, stop_all_notebooks, stop_if_it_fails, stop_process, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _mount_tmpfs(folder, size):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path):
    """A real, tiny file system (tmpfs) of its own; unmounted after the test."""
    folder = tmp_path / "disk"
    folder.mkdir()
    _mount_tmpfs(folder, "1m")
    yield folder
    stop_all_notebooks(str(folder / "notebooks"))
    subprocess.run(["umount", "-l", str(folder)], check=False)


def remount(folder, mode):
    subprocess.run(["mount", "-o", f"remount,{mode}", str(folder)], check=True)


def fill(folder):
    """Fill the file system holding ``folder`` to the last byte; return the filler's path."""
    filler = os.path.join(folder, "filler.bin")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def test_read_only_then_full_notebook_folder(small_disk, make_demo_server):
    folder = small_disk / "notebooks"
    server = make_demo_server(**{"pyramid_notebook.notebook_folder": str(folder)})
    s = login(server.url)
    # The user's own work is there from before.
    work = server.manager.get_work_folder("user")
    os.makedirs(work)
    with open(os.path.join(work, "mine.ipynb"), "w") as f:
        f.write("precious")

    remount(small_disk, "ro")
    try:
        r = s.get(server.url + "/shell1", allow_redirects=False)
        assert r.status_code == 503, r.text
        assert "cannot be written" in r.text and "Read-only file system" in r.text and "Traceback" not in r.text
        r = s.get(server.url + "/notebook/shutdown", headers={"Sec-Fetch-Site": "same-origin"},
                  allow_redirects=False)
        assert r.status_code in (302, 503) and "Traceback" not in r.text
    finally:
        remount(small_disk, "rw")
    assert daemons_under(str(folder)) == []

    filler = fill(small_disk)
    r = s.get(server.url + "/shell1", allow_redirects=False)
    assert r.status_code == 507, r.text  # README: "507 when the disk is full"
    assert "Traceback" not in r.text and "The notebook folder is full" in r.text, r.text
    assert daemons_under(str(folder)) == []

    os.unlink(filler)
    r = s.get(server.url + "/shell1", allow_redirects=False)
    assert r.status_code == 302, "space again: the next launch recovers"
    assert s.get(server.url + "/notebook/api/contents").status_code == 200
    assert open(os.path.join(work, "mine.ipynb")).read() == "precious"
    name = server.manager.get_notebook_status("user")["notebook_name"]
    json.load(open(os.path.join(work, name)))  # the welcome notebook is whole


def test_welcome_notebook_is_never_left_truncated_by_a_full_disk(small_disk):
    from pyramid_notebook.server.notebook_daemon import write_default_notebook

    path = os.path.join(small_disk, "default-x.ipynb")
    filler = fill(small_disk)
    with pytest.raises(OSError):
        write_default_notebook(path, "hello " * 1000)
    assert not os.path.exists(path), "no truncated notebook that later launches would keep"
    os.unlink(filler)
    write_default_notebook(path, "hello")
    assert json.load(open(path))["cells"]
    assert sorted(os.listdir(small_disk)) == ["default-x.ipynb"], "no temporary files left"


def _launch_in_background(session, url):
    result = {}

    def run():
        try:
            result["response"] = session.get(url, allow_redirects=False, timeout=120)
        except requests.RequestException as e:
            result["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def _daemon_pid(manager, user="user"):
    context = read_context(manager.get_pid_file(user)) or {}
    return context.get("pid") if context.get("state") == "running" else None


def test_notebook_hanging_at_start_ends_in_an_error_page_and_recovers(make_demo_server):
    server = make_demo_server(**{"pyramid_notebook.startup_timeout": "8"})
    s = login(server.url)
    thread, result = _launch_in_background(s, server.url + "/shell1")
    pid = wait_for(lambda: _daemon_pid(server.manager), timeout=60, interval=0.005, message="the daemon's pid")
    os.kill(pid, signal.SIGSTOP)  # hung before it ever answers
    thread.join(timeout=90)
    r = result["response"]
    assert r.status_code == 500 and "did not answer within 8 seconds" in r.text and "Traceback" not in r.text
    assert not pid_alive(pid), "the hung server is ended, not left holding the user's port and lock"
    assert daemons_under(server.manager.notebook_folder) == []
    # The next launch recovers (on a server with the usual start-up allowance: this machine may be slow).
    server = make_demo_server()
    s = login(server.url)
    r = s.get(server.url + "/shell1", allow_redirects=False)
    assert r.status_code == 302
    assert s.get(server.url + "/notebook/api/contents").status_code == 200


def test_kernel_killed_like_the_oom_killer(demo_server):
    s = login(demo_server.url)
    location = s.get(demo_server.url + "/shell2", allow_redirects=False).headers["Location"]
    s.get(location)
    name = location.rsplit("/", 1)[1]
    xsrf = {"X-XSRFToken": s.cookies.get("_xsrf", path="/notebook/"), "Origin": demo_server.url}
    r = s.post(demo_server.url + "/notebook/api/sessions", headers=xsrf,
               json={"path": name, "type": "notebook", "kernel": {"name": "python3"}})
    kernel_id = r.json()["kernel"]["id"]
    daemon = psutil.Process(demo_server.manager.get_notebook_status("user")["pid"])
    kernels = wait_for(lambda: _kernel_pids(daemon), timeout=60, message="the kernel process")
    os.kill(kernels[0], signal.SIGKILL)
    # Jupyter notices and restarts the kernel; the notebook server and the proxy carry on.
    wait_for(lambda: [p for p in _kernel_pids(daemon) if p != kernels[0]], timeout=60, message="a restarted kernel")
    r = s.get(f"{demo_server.url}/notebook/api/kernels/{kernel_id}")
    assert r.status_code == 200, "the same kernel id lives on"
    from tests.helpers import execute_over_websocket

    context = demo_server.manager.get_notebook_status("user")
    ws_url = f"ws://127.0.0.1:{context['http_port']}/notebook/api/kernels/{kernel_id}/channels"
    cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies if c.path.startswith("/notebook"))
    out, _ = wait_for(lambda: _try_execute(ws_url, demo_server.url, cookie), timeout=60, message="kernel answers")
    assert out.strip() == "Output of a + b is foobar", "the restarted kernel ran the site's start-up again"
    assert daemon.is_running() and s.get(demo_server.url + "/notebook/tree").status_code == 200


def _kernel_pids(daemon):
    pids = []
    for proc in daemon.children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and "ipykernel" in " ".join(proc.cmdline()):
                pids.append(proc.pid)
        except psutil.Error:
            pass
    return pids


def _try_execute(ws_url, origin, cookie):
    from tests.helpers import execute_over_websocket

    try:
        return execute_over_websocket(ws_url, 'print("Output of a + b is", a + b)', origin,
                                      [f"Cookie: {cookie}"], timeout=20)
    except Exception:
        return None


def test_web_server_killed_mid_launch(tmp_path, notebook_folder):
    """waitress (pserve) is SIGKILLed while a launch waits for the notebook; a fresh server recovers."""
    ini = write_demo_ini(tmp_path, notebook_folder)
    port = free_port()
    with open(ini, "a") as f:
        f.write(f"\n[server:main]\nuse = egg:waitress#main\nlisten = 127.0.0.1:{port}\n")
    pserve = os.path.join(os.path.dirname(sys.executable), "pserve")
    url = f"http://127.0.0.1:{port}"

    def start_server():
        proc = subprocess.Popen([pserve, ini], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stop_if_it_fails(lambda: stop_process(proc, signal.SIGKILL), lambda: (
            wait_for(lambda: proc.poll() is not None or _answers(url), timeout=60, message="pserve to listen"),
            _assert_alive(proc)))
        return proc

    from pyramid_notebook.notebookmanager import NotebookManager

    manager = NotebookManager(notebook_folder, fork_server=False)
    server = start_server()
    try:
        s = login(url)
        thread, result = _launch_in_background(s, url + "/shell1")
        wait_for(lambda: _daemon_pid(manager), timeout=60, interval=0.005, message="the daemon's pid")
        server.kill()  # mid-launch: the notebook is starting, nobody waits for it any more
        server.wait()
        thread.join(timeout=60)
        assert "error" in result
        server = start_server()
        s = login(url)
        r = s.get(url + "/shell1", allow_redirects=False)
        assert r.status_code == 302
        assert s.get(url + "/notebook/api/contents").status_code == 200
        assert len(daemons_under(notebook_folder)) == 1, "one notebook, whatever the launch that died did"
    finally:
        server.kill()
        server.wait()


def _assert_alive(proc):
    assert proc.poll() is None, f"pserve exited with {proc.returncode}"


def _answers(url):
    try:
        return requests.get(url + "/login", timeout=2).status_code == 200
    except requests.RequestException:
        return False
