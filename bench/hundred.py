"""A hundred idle users on one machine (issue 33): ``bench/run --only hundred [--hundred 100]``.

The default settings (fork server, kernels forked from the site's zygote, a warm kernel, no spare)
with the demo site's startup (what ``pshell demo.ini`` gives). ``users`` notebook servers are
started one after another and left idle until their kernels are up; then:

* memory: PSS of everything counted — every server with its descendants, the fork server with its
  children (the site's zygote and the kernels it forked) — divided by the users. Target: 40 MB.
* CPU: what they all use while idle, over a few seconds.
* reachable: each server answers ``api/status`` with its token.
* click -> first result while they all run: ``samples`` users in turn start a new kernel
  (``POST api/kernels``) and time it to ``1 + 1`` with the site's startup done, as the first cell
  of a notebook opened now. Target: p50 <= 0.6 s.
"""
import os
import time

import requests

from bench.common import fmt, ms, stats, wait_until
from bench.kernels import _context, _start, _start_to_result, _tree_pss


#: ``spare_kernel`` of the users' contexts (``HUNDRED_SPARE=always`` in the environment: one more kernel each).
SPARE = os.environ.get("HUNDRED_SPARE", "false")


def measure_hundred(results, workdir, users=100, samples=10):
    import pathlib
    import random

    from pyramid_notebook.core.process import read_pid_file
    from pyramid_notebook.notebookmanager import NotebookManager
    from tests.conftest import write_demo_ini
    from tests.helpers import random_port_base, stop_all_notebooks

    folder = os.path.join(workdir, "notebooks-hundred")
    os.makedirs(folder, exist_ok=True)
    ini = write_demo_ini(pathlib.Path(workdir), folder)
    context = dict(_context(ini), spare_kernel=SPARE == "always" and "always")
    size = users + 10
    manager = NotebookManager(folder, min_port=random_port_base(size), port_range=size, fork_server=True,
                              max_notebooks=size)
    manager.start_fork_server()
    manager.fork_server.wait_until_ready(timeout=120)
    try:
        started = time.monotonic()
        contexts = [_start(manager, f"h{i}", context) for i in range(users)]
        took = time.monotonic() - started
        # Idle: every server's warm kernel started (and a spare, with SPARE = "always").
        wait_until(lambda: all(_kernels(c) >= (2 if SPARE == "always" else 1) for c in contexts), 900, 1.0)
        time.sleep(10)  # a settling pause, not a wait for a condition: what the kernels allocate after idle
        fork_server = read_pid_file(manager.fork_server.pid_file)
        servers = [c["pid"] for c in contexts]
        total = sum(_tree_pss(pid) for pid in servers) + (_tree_pss(fork_server) if fork_server else 0)
        per_user = total / users
        label = "spare_kernel = always" if SPARE == "always" else "default settings"
        results.add(f"PSS per idle user, {users} users, {label}", per_user, None, unit="MB",
                    target="<= 40 MB", passed=per_user <= 40,
                    note=f"servers, their kernels, the site's zygote, the fork server; {total / 1024:.1f} GB "
                         f"in all; {users} started in {took:.0f} s")
        idle_cpu = _idle_cpu(servers + ([fork_server] if fork_server else []))
        results.add(f"CPU of {users} idle users", idle_cpu, None, unit="% of a core",
                    note="servers, kernels, the site's zygote and the fork server, over 5 s")
        reachable = sum(_answers(c) for c in contexts)
        results.add(f"reachable of {users} idle users", reachable, users, unit="users", target=f"= {users}",
                    passed=reachable == users, ratio=reachable / users, note="api/status with the server's token")
        times = [ms(_start_to_result(random.choice(contexts))[0]) for _ in range(samples)]
        clicked = stats(times)
        results.add(f"new kernel -> 1 + 1 while {users} run", clicked, None, target="p50 <= 600 ms",
                    passed=clicked["median"] <= 600, note=f"{fmt(clicked)} ms, site's startup included")
    finally:
        stop_all_notebooks(folder)
        manager.fork_server.stop()


def _idle_cpu(roots, window=5.0) -> float:
    """CPU used by ``roots`` and their descendants over ``window`` seconds, in % of one core."""
    import psutil

    procs = []
    for pid in roots:
        try:
            procs += [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            continue
    before = {}
    for p in procs:
        try:
            before[p.pid] = sum(p.cpu_times()[:2])
        except psutil.Error:
            continue
    time.sleep(window)  # the measurement window, not a wait for anything
    used = 0.0
    for p in procs:
        try:
            used += sum(p.cpu_times()[:2]) - before.get(p.pid, 0.0) if p.pid in before else 0.0
        except psutil.Error:
            continue
    return 100 * used / window


def _kernels(ctx) -> int:
    """How many kernels the server has started (a spare one reports "starting" until a client connects)."""
    try:
        r = requests.get(f"http://127.0.0.1:{ctx['http_port']}/notebook/api/kernels",
                         headers={"Authorization": "token " + ctx["token"]}, timeout=10)
        return len(r.json()) if r.status_code == 200 else 0
    except (requests.RequestException, ValueError):
        return 0


def _answers(ctx) -> bool:
    try:
        r = requests.get(f"http://127.0.0.1:{ctx['http_port']}/notebook/api/status",
                         headers={"Authorization": "token " + ctx["token"]}, timeout=10)
        return r.status_code == 200
    except requests.RequestException:
        return False
