"""An idle notebook server does (almost) nothing (issue 33: a hundred idle users on one machine).

jupyter-resource-usage refreshed its Prometheus gauges every second by walking every process on
the machine (reading each ``/proc/N/stat``): a hundred idle servers kept two cores busy with it.
"""
import time

import psutil
import requests

from tests.helpers import execute_over_websocket, wait_for


def _reads(pid) -> int:
    with open(f"/proc/{pid}/io") as f:
        return int(next(line for line in f if line.startswith("syscr:")).split()[1])


def _kernel_ids(context) -> list:
    r = requests.get(f"http://127.0.0.1:{context['http_port']}/notebook/api/kernels",
                     headers={"Authorization": "token " + context["token"]}, timeout=10)
    return [k["id"] for k in r.json()] if r.status_code == 200 else []


def test_an_idle_server_does_not_walk_the_machines_processes(manager):
    manager.start_notebook_on_demand("idle", {"context_hash": "idle"})
    context = wait_for(lambda: "warm_session" in (manager.get_notebook_status("idle") or {})
                       and manager.get_notebook_status("idle"), timeout=120, message="the server and its kernel")
    server = psutil.Process(context["pid"])
    kernel_id = wait_for(lambda: _kernel_ids(context), timeout=120, message="the warm kernel")[0]
    # Until a client talks to it the kernel stays "starting" in the API: a cell run means it is up.
    port = context["http_port"]
    _, result = execute_over_websocket(
        f"ws://127.0.0.1:{port}/notebook/api/kernels/{kernel_id}/channels", "1 + 1",
        origin=f"http://127.0.0.1:{port}", headers=["Authorization: token " + context["token"]])
    assert result == "2"
    processes = len(psutil.pids())
    assert processes > 20, "the walk's cost shows only with processes to walk"
    windows = []

    def a_quiet_window():
        before = _reads(server.pid)
        time.sleep(3)  # a measurement window (three of the gauges' one-second ticks), not a wait for anything
        windows.append(_reads(server.pid) - before)
        return windows[-1] < processes

    # Once after its start the server does a burst of reads (jupyter_lsp looks for language servers
    # on the PATH in a thread): a quiet window follows it. The gauges' walk read every process's
    # stat file each second, so no 3 s window was ever quieter than one walk.
    wait_for(a_quiet_window, timeout=60, interval=0,
             message=f"3 s with fewer than {processes} read calls")
