"""Kernels forked from the kernel zygote (issue 33): through the demo site, real servers and kernels.

The forked kernel runs the site's startup and is managed as Jupyter manages any kernel (interrupt,
restart, memory limit, audit); two kernels share no state; an unsafe preload is refused; the
setting turns it off; a killed zygote never leaves a kernel start hanging.
"""
import os
import signal

import psutil

from pyramid_notebook.core import audit
from tests.helpers import interrupt_a_long_cell, login, pserve_kernel_channel, run_cell, socket_inodes, wait_for
from tests.test_private_kernels import browser_headers, launch, start_kernel

channel = pserve_kernel_channel


def server_process(server):
    return psutil.Process(server.manager.get_notebook_status("user")["pid"])


def _find_kernel(server, kernel_id):
    for p in server_process(server).children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and any(f"kernel-{kernel_id}.json" in a for a in p.cmdline()):
                return p
        except psutil.Error:
            continue
    return None


def kernel_process(server, kernel_id):
    """The kernel's process (its command line names its connection file, forked or not; a fork takes
    its title a moment after the zygote answered)."""
    wait_for(lambda: _find_kernel(server, kernel_id), timeout=30, message=f"the process of kernel {kernel_id}")
    return _find_kernel(server, kernel_id)


def zygotes(server):
    found = []
    for p in server_process(server).children():
        try:
            if "kernel zygote" in " ".join(p.cmdline()):
                found.append(p)
        except psutil.Error:
            continue
    return found


def forked(server, kernel_id) -> bool:
    """True if the kernel is a zygote's child (a plain kernel is the server's)."""
    parent = kernel_process(server, kernel_id).parent()
    return parent is not None and "kernel zygote" in " ".join(parent.cmdline())


def test_a_forked_kernel_runs_the_startup_and_is_interrupted_restarted_and_audited(demo_server, notebook_folder):
    base = demo_server.url
    s = login(base)
    launch(s, base)
    work = demo_server.manager.get_work_folder("user").rstrip("/")
    kernel_id = start_kernel(s, base, "forked.ipynb")
    assert forked(demo_server, kernel_id), "the kernel was forked from the zygote"
    ch = channel(s, demo_server, kernel_id)
    try:
        assert ch.execute("type(registry).__name__") == "'Registry'", "the site's startup (pshell namespace) ran"
        assert ch.execute("import os; os.getcwd()") == repr(work)
        assert ch.execute("import sys; sys.path[0] == os.getcwd()") == "True"
        # Its pid is the provisioner's: the kernel itself (interrupts, kills, resource usage address it).
        assert ch.execute("os.getpid()") == str(kernel_process(demo_server, kernel_id).pid)
        ch.execute("marker = 'before restart'")
        # Interrupt: SIGINT to the forked kernel stops a long cell.
        assert interrupt_a_long_cell(ch, s, base, kernel_id, browser_headers(s, base)) == ["KeyboardInterrupt"]
    finally:
        ch.close()
    old_pid = kernel_process(demo_server, kernel_id).pid
    r = s.post(f"{base}/notebook/api/kernels/{kernel_id}/restart", headers=browser_headers(s, base))
    assert r.status_code == 200, r.text
    wait_for(lambda: not psutil.pid_exists(old_pid) or psutil.Process(old_pid).status() == psutil.STATUS_ZOMBIE,
             message="the old kernel ended")
    assert forked(demo_server, kernel_id) and kernel_process(demo_server, kernel_id).pid != old_pid
    ch = channel(s, demo_server, kernel_id)
    try:
        assert ch.execute("type(registry).__name__") == "'Registry'", "the startup ran again after the restart"
        assert run_cell(ch, "marker")[0] == "NameError"
        ch.execute("audited = 6 * 7")
    finally:
        ch.close()
    stream = os.path.join(notebook_folder, ".state", "user", audit.AUDIT_FILE_NAME)
    codes = [r.get("code") for r in audit.read_records(stream) if r.get("kind") == "execute"]
    assert "audited = 6 * 7" in codes and "import time; time.sleep(120)" in codes
    # Shut down: the kernel ends; the zygote stays for the next one.
    r = s.delete(f"{base}/notebook/api/kernels/{kernel_id}", headers=browser_headers(s, base))
    assert r.status_code == 204, r.text
    assert len(zygotes(demo_server)) == 1


def test_two_forked_kernels_share_no_state(demo_server):
    base = demo_server.url
    s = login(base)
    launch(s, base)
    first, second = start_kernel(s, base, "one.ipynb"), start_kernel(s, base, "two.ipynb")
    assert forked(demo_server, first) and forked(demo_server, second)
    a, b = channel(s, demo_server, first), channel(s, demo_server, second)
    draw = ("import random, tempfile, os; f = tempfile.NamedTemporaryFile(delete=False); "
            "(random.random(), random.getrandbits(64), os.path.basename(f.name), tempfile.mkdtemp())")
    try:
        a.execute("shared = 'only in the first'")
        assert run_cell(b, "shared")[0] == "NameError"
        assert a.execute(draw) != b.execute(draw), "random numbers and temporary names differ"
        assert a.execute("import os; os.getpid()") != b.execute("import os; os.getpid()")
        # No descriptor of the zygote's (its socket to the server) is open in a kernel.
        zygote = kernel_process(demo_server, first).parent()
        assert socket_inodes(zygote.pid) and not socket_inodes(zygote.pid) & socket_inodes(kernel_process(demo_server, first).pid)
    finally:
        a.close()
        b.close()


def test_the_memory_limit_holds_in_a_forked_kernel(make_demo_server):
    server = make_demo_server(**{"pyramid_notebook.memory_limit": "400M"})
    s = login(server.url)
    launch(s, server.url)
    kernel_id = start_kernel(s, server.url, "limited.ipynb")
    assert forked(server, kernel_id)
    ch = channel(s, server, kernel_id)
    try:
        error, out = run_cell(ch, "import os, resource; resource.getrlimit(resource.RLIMIT_DATA), "
                             "os.environ['PYRAMID_NOTEBOOK_MEMORY_LIMIT_MODE']")
        assert error is None and out == "((419430400, 419430400), 'rlimit')", out
        error, out = run_cell(ch, "big = bytearray(1200 * 1024 * 1024)")
        assert error == "MemoryError" and "400 MiB limit" in out, out
        assert run_cell(ch, "1 + 1") == (None, "2")
    finally:
        ch.close()


def test_a_preload_that_starts_a_thread_is_refused_and_kernels_start_plain(make_demo_server, tmp_path, monkeypatch):
    modules = tmp_path / "preloads"
    modules.mkdir()
    (modules / "threaded_site_module.py").write_text(
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(3600,), name='site-poller', daemon=True).start()\n")
    monkeypatch.setenv("PYTHONPATH", str(modules))  # the daemon (and so the zygote) can import it
    server = make_demo_server(**{"pyramid_notebook.kernel_preload": "threaded_site_module"})
    s = login(server.url)
    launch(s, server.url)
    kernel_id = start_kernel(s, server.url, "plain.ipynb")
    assert not forked(server, kernel_id)
    ch = channel(s, server, kernel_id)
    try:
        assert ch.execute("type(registry).__name__") == "'Registry'"
    finally:
        ch.close()
    log = os.path.join(server.manager.get_state_folder("user"), "notebook.stderr.log")
    with open(log) as f:
        text = f.read()
    assert "importing threaded_site_module left threads site-poller behind" in text, text[-2000:]
    assert zygotes(server) == [], "the refusing zygote exited"


def test_kernel_fork_false_starts_plain_kernels(make_demo_server):
    server = make_demo_server(**{"pyramid_notebook.kernel_fork": "false"})
    s = login(server.url)
    launch(s, server.url)
    kernel_id = start_kernel(s, server.url, "plain.ipynb")
    assert kernel_process(server, kernel_id).parent().pid == server_process(server).pid
    assert zygotes(server) == []
    ch = channel(s, server, kernel_id)
    try:
        assert ch.execute("import sys; sys.flags.safe_path, type(registry).__name__") == "(True, 'Registry')"
    finally:
        ch.close()


def test_a_killed_zygote_never_serves_and_the_next_kernels_start(demo_server):
    base = demo_server.url
    s = login(base)
    launch(s, base)
    wait_for(lambda: len(zygotes(demo_server)) == 1, message="the zygote")
    (zygote,) = zygotes(demo_server)
    before = kernel_process(demo_server, start_kernel(s, base, "before.ipynb"))
    os.kill(zygote.pid, signal.SIGKILL)
    # Its kernel does not live on as an orphan: ipykernel's parent check ends it (Jupyter restarts it).
    wait_for(lambda: not psutil.pid_exists(before.pid) or before.status() == psutil.STATUS_ZOMBIE,
             message="the killed zygote's kernel ended")
    kernel_id = start_kernel(s, base, "after-kill.ipynb")  # answered: a plain start, not a hang
    ch = channel(s, demo_server, kernel_id)
    try:
        assert ch.execute("type(registry).__name__") == "'Registry'"
    finally:
        ch.close()
    # A new zygote took its place and forks the next kernel.
    later = start_kernel(s, base, "later.ipynb")
    assert forked(demo_server, later)
    assert [z.pid for z in zygotes(demo_server)] != [zygote.pid]


def test_a_changed_site_module_replaces_the_zygote(make_demo_server, tmp_path, monkeypatch):
    modules = tmp_path / "preloads"
    modules.mkdir()
    site_module = modules / "site_models.py"
    site_module.write_text("VERSION = 1\n")
    monkeypatch.setenv("PYTHONPATH", str(modules))
    server = make_demo_server(**{"pyramid_notebook.kernel_preload": "site_models"})
    s = login(server.url)
    launch(s, server.url)
    first = start_kernel(s, server.url, "one.ipynb")
    assert forked(server, first)
    (zygote,) = zygotes(server)
    site_module.write_text("VERSION = 2  # deployed\n")
    os.utime(site_module, ns=(os.stat(site_module).st_atime_ns, os.stat(site_module).st_mtime_ns + 10**9))
    second = start_kernel(s, server.url, "two.ipynb")  # the stale zygote does not serve it
    assert not forked(server, second)
    third = start_kernel(s, server.url, "three.ipynb")
    assert forked(server, third), "a new zygote forks the next kernel"
    assert kernel_process(server, third).parent().pid != zygote.pid
    ch = channel(s, server, third)
    try:
        assert ch.execute("import site_models; site_models.VERSION") == "2"
    finally:
        ch.close()
    # The stale zygote keeps its running kernel's parent until that kernel ends.
    assert kernel_process(server, first).parent().pid == zygote.pid
