"""An idle notebook server does (almost) nothing (issue 33: a hundred idle users on one machine).

jupyter-resource-usage refreshed its Prometheus gauges every second by walking every process on
the machine (reading each ``/proc/N/stat``): a hundred idle servers kept two cores busy with it.
"""
import time

import psutil
import requests

from tests.helpers import wait_for


def _reads(pid) -> int:
    with open(f"/proc/{pid}/io") as f:
        return int(next(line for line in f if line.startswith("syscr:")).split()[1])


def _idle_kernels(context) -> int:
    r = requests.get(f"http://127.0.0.1:{context['http_port']}/notebook/api/kernels",
                     headers={"Authorization": "token " + context["token"]}, timeout=10)
    return sum(k.get("execution_state") == "idle" for k in r.json()) if r.status_code == 200 else 0


def test_an_idle_server_does_not_walk_the_machines_processes(manager):
    manager.start_notebook_on_demand("idle", {"context_hash": "idle"})
    context = wait_for(lambda: "warm_session" in (manager.get_notebook_status("idle") or {})
                       and manager.get_notebook_status("idle"), timeout=120, message="the server and its kernel")
    server = psutil.Process(context["pid"])
    wait_for(lambda: _idle_kernels(context) >= 1, timeout=120, message="the warm kernel idle")
    processes = len(psutil.pids())
    assert processes > 20, "the walk's cost shows only with processes to walk"
    before = _reads(server.pid)
    time.sleep(3)  # a measurement window (three of the gauges' one-second ticks), not a wait for anything
    reads = _reads(server.pid) - before
    # Walking the processes once reads each one's stat file: three walks would be > 3 * processes.
    assert reads < processes, f"{reads} read calls in 3 s with {processes} processes on the machine"
