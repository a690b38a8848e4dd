"""Kernels forked from the kernel zygote against plain ones: ``bench/run --only kernels``.

* kernel start: three users' servers in one notebook folder (from the fork server, as the default
  settings run): ``kernel_fork`` on (the default: the site's zygote preloads IPython, ipykernel, what
  the startup imports and what building the site's app imports), on with ``kernel_preload`` naming
  19 of the demo site's modules as well, and off; all with the demo site's startup (what
  ``pshell demo.ini`` gives: Pyramid's bootstrap of the site, SQLAlchemy). Each sample starts a
  kernel on each (``POST api/kernels``, interleaved) and times it to ``1 + 1``'s result, which the
  kernel answers only once its startup ran; then shuts it down. Target: forked <= 0.25 of plain.
* memory: ``users`` idle users of each configuration in turn, with the default settings otherwise
  (fork server, warm kernel, no spare kernel, the site's startup), each server with its kernels (and
  zygote) — everything counted: the fork server's PSS is split among the users too. Target: 40 MB
  per user at 100 users.
"""
import os
import time

import requests

from bench.common import Channel, first_result, fmt, ms, stats, wait_until

#: The site's own package, as a site names it in ``pyramid_notebook.kernel_preload``.
PRELOAD = ["pyramid_notebook.demo.views", "pyramid_notebook.demo.embed", "pyramid_notebook.web.routes",
           "pyramid_notebook.web.views", "pyramid_notebook.web.admin", "pyramid_notebook.web.metrics",
           "pyramid_notebook.web.recipes", "pyramid_notebook.web.shares", "pyramid_notebook.web.warmup",
           "pyramid_notebook.relays.choice", "pyramid_notebook.relays.http", "pyramid_notebook.relays.accel",
           "pyramid_notebook.relays.site", "pyramid_notebook.backends.local.manager", "plaster_pastedeploy",
           "sqlalchemy.orm", "sqlalchemy.dialects.sqlite", "urllib3", "prometheus_client"]


def _tree_pss(pid) -> float:
    import psutil

    procs = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
    total = 0
    for p in procs:
        try:
            total += p.memory_full_info().pss
        except psutil.Error:
            continue
    return total / 2**20


def _context(ini):
    from pyramid_notebook.core.startup import make_startup

    nb = {"context_hash": "bench-kernels", "greeting": "", "notebook_path": "/notebook/"}
    make_startup(nb, ini)
    return nb


def _start_to_result(ctx) -> tuple:
    """Seconds from ``POST api/kernels`` to ``1 + 1``'s result; (seconds, kernel id)."""
    s = requests.Session()
    s.headers["Authorization"] = "token " + ctx["token"]
    s.get(f"http://127.0.0.1:{ctx['http_port']}/notebook/tree", timeout=60)  # Jupyter's XSRF cookie, as the page has
    s.headers["X-XSRFToken"] = s.cookies.get("_xsrf", path="/notebook/") or s.cookies.get("_xsrf") or ""
    base = f"http://127.0.0.1:{ctx['http_port']}/notebook/api/kernels"
    start = time.perf_counter()
    r = s.post(base, json={"name": "python3"}, timeout=60)
    r.raise_for_status()
    kernel = r.json()["id"]
    channel = Channel(f"ws://127.0.0.1:{ctx['http_port']}/notebook/api/kernels/{kernel}/channels",
                      [f"Authorization: token {ctx['token']}"])
    try:
        assert first_result(channel, "type(registry).__name__, 1 + 1") == "('Registry', 2)"
        elapsed = time.perf_counter() - start
    finally:
        channel.ws.close()
    s.delete(f"{base}/{kernel}", timeout=60)
    return elapsed, kernel


def _start(manager, name, context):
    manager.start_notebook_on_demand(name, dict(context))
    wait_until(lambda: "warm_session" in (manager.get_notebook_status(name) or {}), 120)
    return manager.get_notebook_status(name)


#: The configurations compared: (label, kernel_fork, kernel_preload).
CONFIGS = (("zygote", True, []), ("zygote + site preload", True, PRELOAD), ("plain", False, []))


def measure_kernels(results, workdir, n, users):
    import pathlib

    from pyramid_notebook.notebookmanager import NotebookManager
    from tests.conftest import write_demo_ini
    from tests.helpers import random_port_base, stop_all_notebooks

    folder = os.path.join(workdir, "notebooks-kernels")
    os.makedirs(folder, exist_ok=True)
    ini = write_demo_ini(pathlib.Path(workdir), folder)
    context = _context(ini)
    size = 3 * users + 10  # each configuration's users get their own ports: no wait for the last ones to stop
    base = random_port_base(size)
    managers = {label: NotebookManager(folder, min_port=base, port_range=size, fork_server=True, kernel_fork=fork,
                                       kernel_preload=preload, max_notebooks=size)
                for label, fork, preload in CONFIGS}
    managers["plain"].start_fork_server()
    managers["plain"].fork_server.wait_until_ready(timeout=120)
    try:
        contexts = {label: _start(manager, f"k-{i}", context) for i, (label, manager) in enumerate(managers.items())}
        for ctx in contexts.values():
            _start_to_result(ctx)  # a zygote's first fork waits for its imports: not measured
        times = {label: [] for label in contexts}
        for _ in range(n):
            for label, ctx in contexts.items():
                times[label].append(ms(_start_to_result(ctx)[0]))
        plain = stats(times["plain"])
        for label in ("zygote", "zygote + site preload"):
            forked = stats(times[label])
            ratio = forked["median"] / plain["median"]
            results.add(f"new kernel -> 1 + 1, site's startup: {label} vs plain", forked, plain,
                        target="<= 0.25", passed=ratio <= 0.25, ratio=ratio,
                        note=f"pshell demo.ini startup; {fmt(forked)} vs {fmt(plain)} ms" +
                             ("; kernel_preload: 19 modules of the demo site" if "preload" in label else ""))
        stop_all_notebooks(folder)
        if users:
            _measure_memory(results, managers, context, users, folder)
    finally:
        stop_all_notebooks(folder)


def _measure_memory(results, managers, context, users, folder):
    from pyramid_notebook.core.process import read_pid_file
    from tests.helpers import stop_all_notebooks

    per_user = {}
    for n, (label, manager) in enumerate(managers.items()):
        pids = [_start(manager, f"u{n}-{i}", context)["pid"] for i in range(users)]
        time.sleep(20)  # idle: the warm kernels' startup done
        fork_server = read_pid_file(manager.fork_server.pid_file)
        total = sum(_tree_pss(pid) for pid in pids) + (_tree_pss(fork_server) if fork_server else 0)
        per_user[label] = total / users
        stop_all_notebooks(folder)
    for label in ("zygote", "zygote + site preload"):
        results.add(f"PSS per idle user, {users} users: {label} vs plain", per_user[label], per_user["plain"],
                    unit="MB", ratio=per_user[label] / per_user["plain"], target="<= 40 MB at 100",
                    passed=per_user[label] <= 40,
                    note="server + warm kernel (+ zygote), fork server's share included")
