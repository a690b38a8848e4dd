"""The site's kernel zygote (issue 33): every user's kernels forked from one process the fork server forked.

Through the demo site with the fork server on (the shipped default), real servers and kernels: two
users' kernels share one zygote; their memory still shows in the notebook's top bar and the operator
console; a kernel ends with its server, not with the zygote; a killed zygote never leaves a kernel
start hanging.
"""
import os
import signal
import threading

import psutil
import pytest

from pyramid_notebook.backends.local.inventory import inventory
from pyramid_notebook.core.process import read_pid_file
from tests.helpers import interrupt_a_long_cell, login, pserve_kernel_channel, wait_for
from tests.test_private_kernels import browser_headers, launch, start_kernel

pytestmark = pytest.mark.timeout(300)


def kernel_process(kernel_id):
    """The kernel's process, wherever it is (a forked kernel takes its title a moment after the fork)."""
    def find():
        for p in psutil.process_iter(["cmdline", "status"]):
            if p.info["status"] != psutil.STATUS_ZOMBIE and any(f"kernel-{kernel_id}.json" in a
                                                                  for a in p.info["cmdline"] or ()):
                return p
        return None

    return wait_for(find, timeout=30, message=f"the process of kernel {kernel_id}")


def title(process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def gone(pid) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.fixture
def site(make_demo_server):
    return make_demo_server(**{"pyramid_notebook.fork_server": "true"})


def test_two_users_kernels_come_from_the_sites_one_zygote_and_count_as_theirs(site, notebook_folder):
    sessions = {user: login(site.url, user) for user in ("user", "user2")}
    kernels = {}
    for user, s in sessions.items():
        launch(s, site.url)
        kernels[user] = start_kernel(s, site.url, "site.ipynb")
    parents = {user: kernel_process(k).parent() for user, k in kernels.items()}
    zygote = parents["user"]
    assert parents["user2"].pid == zygote.pid, "both users' kernels were forked by one process"
    assert "kernel zygote (site" in title(zygote)
    fork_server = read_pid_file(site.manager.fork_server.pid_file)
    assert zygote.ppid() == fork_server, "the fork server forked the site's zygote"
    server = psutil.Process(site.manager.get_notebook_status("user")["pid"])
    assert kernel_process(kernels["user"]).pid not in {p.pid for p in server.children(recursive=True)}
    for user, s in sessions.items():
        ch = pserve_kernel_channel(s, site, kernels[user], username=user)
        try:
            assert ch.execute("type(registry).__name__") == "'Registry'", "the site's startup ran"
            assert ch.execute("import os; os.getcwd()") == repr(site.manager.get_work_folder(user).rstrip("/"))
        finally:
            ch.close()
    # The top bar's memory (jupyter-resource-usage) counts the kernel with the server.
    kernel = kernel_process(kernels["user"])
    r = sessions["user"].get(site.url + "/notebook/api/metrics/v1", headers=browser_headers(sessions["user"], site.url))
    assert r.status_code == 200, r.text
    server_alone = server.memory_full_info().pss
    assert r.json()["pss"] >= server_alone + kernel.memory_full_info().pss * 0.8
    # So does the operator console's row, with the kernel's own pid and memory.
    (row,) = [row for row in inventory(notebook_folder, cpu=False) if row["user"] == "user"]
    (listed,) = [k for k in row["kernels"] if k["id"] == kernels["user"]]
    assert listed["pid"] == kernel.pid and listed["memory"] > 0
    assert row["memory"] >= server_alone + listed["memory"] * 0.8


def test_a_kernel_ends_with_its_server_not_with_the_zygote(site):
    s = login(site.url)
    launch(s, site.url)
    first = start_kernel(s, site.url, "before.ipynb")
    kernel = kernel_process(first)
    zygote = kernel.parent()
    assert "kernel zygote (site" in title(zygote)
    os.kill(zygote.pid, signal.SIGKILL)
    wait_for(lambda: gone(zygote.pid), message="the zygote ended")
    ch = pserve_kernel_channel(s, site, first)
    try:
        assert ch.execute("6 * 7") == "42", "the kernel outlives the zygote that forked it"
    finally:
        ch.close()
    later = start_kernel(s, site.url, "after.ipynb")  # answered: never a hang on the dead zygote
    ch = pserve_kernel_channel(s, site, later)
    try:
        assert ch.execute("type(registry).__name__") == "'Registry'"
    finally:
        ch.close()
    third = kernel_process(start_kernel(s, site.url, "third.ipynb"))
    assert "kernel zygote" in title(third.parent()) and third.parent().pid != zygote.pid, \
        "a new zygote forks the next kernels"
    server = site.manager.get_notebook_status("user")["pid"]
    os.kill(server, signal.SIGKILL)
    wait_for(lambda: gone(kernel.pid) and gone(third.pid), message="the server's kernels ended with it")


def test_the_console_and_a_new_server_after_the_zygote_went_stale(site, tmp_path):
    """A server started after its site's zygote went away gets a new site zygote from the fork server."""
    s = login(site.url)
    launch(s, site.url)
    zygote = kernel_process(start_kernel(s, site.url, "one.ipynb")).parent()
    os.kill(zygote.pid, signal.SIGKILL)
    wait_for(lambda: gone(zygote.pid), message="the zygote ended")
    s2 = login(site.url, "user2")
    launch(s2, site.url)
    kernel = kernel_process(start_kernel(s2, site.url, "two.ipynb"))
    assert "kernel zygote (site" in title(kernel.parent()) and kernel.parent().pid != zygote.pid


def test_a_changed_site_module_retires_the_sites_zygote(make_demo_server, tmp_path, monkeypatch):
    modules = tmp_path / "preloads"
    modules.mkdir()
    site_module = modules / "site_models.py"
    site_module.write_text("VERSION = 1\n")
    monkeypatch.setenv("PYTHONPATH", str(modules))
    site = make_demo_server(**{"pyramid_notebook.fork_server": "true", "pyramid_notebook.kernel_preload": "site_models"})
    s = login(site.url)
    launch(s, site.url)
    first = kernel_process(start_kernel(s, site.url, "one.ipynb"))
    zygote = first.parent()
    assert "kernel zygote (site" in title(zygote)
    site_module.write_text("VERSION = 2  # deployed\n")
    os.utime(site_module, ns=(os.stat(site_module).st_atime_ns, os.stat(site_module).st_mtime_ns + 10**9))
    second = kernel_process(start_kernel(s, site.url, "two.ipynb"))  # the stale zygote does not serve it
    assert second.parent().pid != zygote.pid
    # Another user's new server gets a new site zygote, which has the deployed module.
    s2 = login(site.url, "user2")
    launch(s2, site.url)
    kernel_id = start_kernel(s2, site.url, "three.ipynb")
    fresh = kernel_process(kernel_id).parent()
    assert "kernel zygote (site" in title(fresh) and fresh.pid != zygote.pid
    ch = pserve_kernel_channel(s2, site, kernel_id, username="user2")
    try:
        assert ch.execute("import site_models; site_models.VERSION") == "2"
    finally:
        ch.close()
    # The stale zygote stays the parent of its running kernel until that kernel ends.
    assert first.parent().pid == zygote.pid


def test_a_restarted_fork_server_forks_the_sites_zygote_before_the_first_launch(site):
    s = login(site.url)
    launch(s, site.url)
    before = kernel_process(start_kernel(s, site.url, "one.ipynb")).parent()
    fork_server = site.manager.fork_server
    old = read_pid_file(fork_server.pid_file)
    assert fork_server.stop()
    wait_for(lambda: gone(old), message="the fork server stopped")
    fork_server.ensure_running()
    fork_server.wait_until_ready(timeout=120)
    new = read_pid_file(fork_server.pid_file)

    def forked_again():
        with_title = [p for p in psutil.Process(new).children() if "kernel zygote (site" in title(p)]
        return with_title and with_title[0]

    zygote = wait_for(forked_again, timeout=60, message="the site's zygote, forked at the fork server's start")
    assert zygote.pid != before.pid
    # The running server's next kernels come from the new site zygote, not from one of its own.
    start_kernel(s, site.url, "two.ipynb")  # the old zygote is gone: this one may start the plain way
    later = kernel_process(start_kernel(s, site.url, "three.ipynb"))
    assert later.parent().pid == zygote.pid


def test_a_kernel_of_the_sites_zygote_is_interrupted_restarted_limited_and_audited(make_demo_server, notebook_folder):
    from pyramid_notebook.core import audit
    from tests.helpers import run_cell

    site = make_demo_server(**{"pyramid_notebook.fork_server": "true", "pyramid_notebook.memory_limit": "400M"})
    s = login(site.url)
    launch(s, site.url)
    kernel_id = start_kernel(s, site.url, "managed.ipynb")
    kernel = kernel_process(kernel_id)
    zygote = kernel.parent()
    assert "kernel zygote (site" in title(zygote)
    ch = pserve_kernel_channel(s, site, kernel_id)
    try:
        error, out = run_cell(ch, "import resource; resource.getrlimit(resource.RLIMIT_DATA)")
        assert (error, out) == (None, "(419430400, 419430400)"), out
        assert run_cell(ch, "big = bytearray(1200 * 1024 * 1024)")[0] == "MemoryError"
        assert interrupt_a_long_cell(ch, s, site.url, kernel_id, browser_headers(s, site.url)) == ["KeyboardInterrupt"]
    finally:
        ch.close()
    r = s.post(f"{site.url}/notebook/api/kernels/{kernel_id}/restart", headers=browser_headers(s, site.url))
    assert r.status_code == 200, r.text
    wait_for(lambda: gone(kernel.pid), message="the old kernel ended")
    again = kernel_process(kernel_id)
    assert again.pid != kernel.pid and again.parent().pid == zygote.pid
    ch = pserve_kernel_channel(s, site, kernel_id)
    try:
        assert ch.execute("type(registry).__name__") == "'Registry'", "the startup ran again after the restart"
        ch.execute("audited = 6 * 7")
    finally:
        ch.close()
    stream = os.path.join(notebook_folder, ".state", "user", audit.AUDIT_FILE_NAME)
    codes = [r.get("code") for r in audit.read_records(stream) if r.get("kind") == "execute"]
    assert "audited = 6 * 7" in codes and "import time; time.sleep(120)" in codes


def test_an_idle_kernel_of_the_sites_zygote_is_culled(make_demo_server):
    site = make_demo_server(**{"pyramid_notebook.fork_server": "true", "pyramid_notebook.kernel_idle_timeout": "2"})
    s = login(site.url)
    launch(s, site.url)
    kernel_id = start_kernel(s, site.url, "left.ipynb")
    kernel = kernel_process(kernel_id)
    assert "kernel zygote (site" in title(kernel.parent())
    # Nobody connects to it: Jupyter's culling shuts it down, and its process (not the server's child) ends.
    wait_for(lambda: kernel_id not in [k["id"] for k in s.get(site.url + "/notebook/api/kernels").json()],
             timeout=60, message="the idle kernel is culled")
    wait_for(lambda: gone(kernel.pid), message="the culled kernel's process ended")


def test_two_users_kernels_from_the_sites_zygote_share_no_state(site):
    from tests.helpers import run_cell

    channels = []
    for user in ("user", "user2"):
        s = login(site.url, user)
        launch(s, site.url)
        channels.append(pserve_kernel_channel(s, site, start_kernel(s, site.url, "state.ipynb"), username=user))
    a, b = channels
    draw = ("import random, tempfile, os; f = tempfile.NamedTemporaryFile(delete=False); "
            "(random.random(), random.getrandbits(64), os.path.basename(f.name), os.getpid())")
    try:
        a.execute("shared = 'only in the first'")
        assert run_cell(b, "shared")[0] == "NameError"
        assert a.execute(draw) != b.execute(draw), "random numbers, temporary names and pids differ"
        # Each in its own user's folder, with its own database session (the zygote opened none).
        assert a.execute("os.getcwd()") != b.execute("os.getcwd()")
        assert a.execute("request.dbsession.get_bind().pool.checkedout()") == "0"
    finally:
        a.close()
        b.close()


def test_a_kernel_that_bootstraps_the_site_starts_none_of_its_web_side_work(make_demo_server):
    """A kernel builds the site's app as pshell does, and the site's start-time work ran in it too: a fork
    server watcher per kernel, which spawned a fork server nobody stopped once the site's had stopped,
    and an audit verification and a warm-up per user (core/inkernel.py, web/sitestart.py)."""
    site = make_demo_server(**{"pyramid_notebook.fork_server": "true", "pyramid_notebook.warm_up": "true"})
    in_site = {t.name for t in threading.enumerate()}
    assert {"pyramid_notebook fork server watcher", "pyramid_notebook audit trails"} <= in_site
    assert hasattr(site.app.registry, "pyramid_notebook_warmup"), "the site itself warms up"
    s = login(site.url)
    launch(s, site.url)
    ch = pserve_kernel_channel(s, site, start_kernel(s, site.url, "site.ipynb"))
    try:
        assert ch.execute("type(registry).__name__") == "'Registry'", "the kernel bootstrapped the site"
        assert ch.execute("import threading; sorted(t.name for t in threading.enumerate() "
                          "if t.name.startswith('pyramid_notebook '))") == "[]"
        assert ch.execute("hasattr(registry, 'pyramid_notebook_warmup')") == "False"
    finally:
        ch.close()
