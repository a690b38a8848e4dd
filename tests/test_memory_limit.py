"""pyramid_notebook.memory_limit on real kernels: an allocation past it fails cleanly, the rest goes on.

This machine has no writable cgroup v2 memory controller, so the per-kernel resource limit
(RLIMIT_DATA) is what runs here; the cgroup path is exercised where one is delegated.
"""
import subprocess
import sys

import requests

from pyramid_notebook.server import limit_exec
from tests.helpers import CLICK, login, pserve_kernel_channel, run_cell

LIMIT = 400 * 2 ** 20


def start_kernel(session, base_url, path):
    xsrf = session.cookies.get("_xsrf", path="/notebook/")
    r = session.post(base_url + "/notebook/api/sessions", json={"path": path, "type": "notebook",
                                                                 "kernel": {"name": "python3"}},
                     headers={"X-XSRFToken": xsrf, "Origin": base_url})
    assert r.status_code == 201, r.text
    return r.json()["kernel"]["id"]


channel = pserve_kernel_channel


def test_allocation_past_the_limit_fails_cleanly(make_demo_server):
    server = make_demo_server(**{"pyramid_notebook.memory_limit": "400M"})
    s = login(server.url)
    r = s.get(server.url + "/shell1", allow_redirects=False, headers=CLICK)
    assert r.status_code == 302
    s.get(r.headers["Location"])
    context = server.manager.get_notebook_status("user")
    assert context["memory_limit"] == LIMIT
    kernel = start_kernel(s, server.url, context["notebook_name"])
    ch = channel(s, server, kernel)
    try:
        error, out = run_cell(ch, "import os, resource; resource.getrlimit(resource.RLIMIT_DATA), "
                             "os.environ['PYRAMID_NOTEBOOK_MEMORY_LIMIT_MODE']")
        assert error is None and out == f"((419430400, 419430400), 'rlimit')", out
        error, out = run_cell(ch, "big = bytearray(1200 * 1024 * 1024)")
        assert error == "MemoryError", (error, out)
        assert "stopped at the 400 MiB limit" in out, out
        # The same kernel carries on, with its variables; the site answers.
        error, out = run_cell(ch, "x = 41\nx + 1")
        assert (error, out) == (None, "42")
        assert requests.get(server.url + "/login", timeout=10).status_code == 200
        assert s.get(server.url + "/notebook/api/status").status_code == 200
    finally:
        ch.close()
    # The user's next kernel works, and may use memory below the limit.
    r = s.delete(server.url + f"/notebook/api/kernels/{kernel}",
                 headers={"X-XSRFToken": s.cookies.get("_xsrf", path="/notebook/"), "Origin": server.url})
    assert r.status_code == 204
    ch = channel(s, server, start_kernel(s, server.url, "second.ipynb"))
    try:
        error, out = run_cell(ch, "len(bytearray(100 * 1024 * 1024))")
        assert (error, out) == (None, str(100 * 1024 * 1024))
    finally:
        ch.close()
    # The console shows the limit.
    rows = {row["user"]: row for row in s.get(server.url + "/notebook-admin/",
                                               headers={"Accept": "application/json"}).json()}
    assert rows["user"]["memory_limit"] == LIMIT


def test_no_limit_without_the_setting(demo_server):
    s = login(demo_server.url)
    r = s.get(demo_server.url + "/shell1", allow_redirects=False, headers=CLICK)
    s.get(r.headers["Location"])
    context = demo_server.manager.get_notebook_status("user")
    assert "memory_limit" not in context
    ch = channel(s, demo_server, start_kernel(s, demo_server.url, context["notebook_name"]))
    try:
        error, out = run_cell(ch, "import resource; resource.getrlimit(resource.RLIMIT_DATA)[0] == resource.RLIM_INFINITY")
        assert (error, out) == (None, "True")
    finally:
        ch.close()


def test_a_cgroup_that_cannot_be_written_falls_back_to_the_resource_limit(tmp_path):
    """limit_exec.py as Jupyter runs it: an unusable cgroup folder still limits the kernel."""
    code = "import os, resource; print(resource.getrlimit(resource.RLIMIT_DATA)[0], os.environ[%r])" % \
        limit_exec.MODE_ENV
    r = subprocess.run([sys.executable, "-I", "-S", limit_exec.__file__, str(LIMIT), "/proc/no-such-cgroup", "user",
                        "--", sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(LIMIT), "rlimit"]
    assert "cannot use the cgroup /proc/no-such-cgroup" in r.stderr
