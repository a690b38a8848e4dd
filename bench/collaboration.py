"""The cost of real-time collaboration (issue 31): ``.venv/bin/python bench/collaboration.py``.

Three demo sites side by side in one run (uvicorn, websockets through the site, loopback), one per
``pyramid_notebook.collaboration``: ``off``; ``auto`` as a server nobody shares runs it (the server
extension loaded, the pages without it); ``always`` (what a shared server's pages load). Interleaved,
per sample and site, a fresh headless Chromium logs in and clicks Shell 2 (the server already runs):

* page bytes: HTTP bytes on the wire until the kernel is idle and the page's network is quiet for 2 s
  (cold cache), and the same responses uncompressed (the wire's bytes depend on what the site's
  compression cache holds yet; the uncompressed ones do not);
* click -> kernel idle, in seconds;
* kernel round trip: a cell run to its output shown, ``--runs`` times in the page (the outputs go
  through the shared model, and with collaboration on, out over the document websocket too);
* PSS of the notebook server's process, and of its tree (with its kernels), after the page loaded;
* and, apart, idle servers nobody opened a page in: ``--idle`` servers per mode from one fork server
  (the default settings), their server process's PSS and USS after 15 s.

Prints a table and the medians as JSON (``--output``); docs/performance.rst records them.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.browser import Site  # noqa: E402
from bench.chrome import IDLE, Chromium, log_in, wait_until  # noqa: E402
from bench.kernels import _tree_pss  # noqa: E402

MODES = ("off", "auto", "always")
RESOURCES = "return performance.getEntriesByType('resource').length"
#: Bytes of every response the page loaded, uncompressed: what the page is, whatever the compression cache holds.
DECODED = ("return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
           ".reduce((total, e) => total + (e.decodedBodySize || 0), 0)")


def _round_trip(chrome, runs):
    from tests.test_browser import run_in_last_cell

    times = []
    for i in range(runs):
        marker = f"rt{i}-{os.urandom(3).hex()}"
        start = time.perf_counter()
        run_in_last_cell(chrome.browser, f"'{marker}'", timeout=300)
        wait_until(lambda: marker in (chrome.js("return Array.from(document.querySelectorAll("
                                                "'.jp-OutputArea-output')).map(e => e.innerText).join(' ')") or ""),
                   120, interval=0.005, message="the output")
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _pss(pid):
    import psutil

    return psutil.Process(pid).memory_full_info().pss / 2**20


def sample(site, runs):
    chrome = Chromium()
    try:
        log_in(chrome, site)
        chrome.clear_cache()
        chrome.drain()
        start = time.perf_counter()
        chrome.browser.find_by_id("shell2").click()
        wait_until(lambda: chrome.js(IDLE), 300, message="the kernel to be idle")
        idle = time.perf_counter() - start
        # Lazily loaded chunks may come after the kernel is idle: wait until nothing new has loaded for 2 s.
        counts = []
        wait_until(lambda: counts.append(chrome.js(RESOURCES)) or (len(counts) > 20 and counts[-1] == counts[-21]),
                   120, interval=0.1, message="the page's network to settle")
        http, _ = chrome.bytes()
        decoded = chrome.js(DECODED)
        live = chrome.js("return document.getElementById('jupyter-config-data').textContent"
                         ".includes('\"pyramidNotebookCollaboration\": \"live\"')")
        rt = _round_trip(chrome, runs)
        pid = site.context()["pid"]
        return {"page_bytes": http, "page_bytes_uncompressed": decoded, "idle_s": idle, "round_trip_ms": rt,
                "server_pss_mb": _pss(pid),
                "server_and_kernels_pss_mb": _tree_pss(pid), "live": live}
    finally:
        chrome.quit()


def idle_servers(workdir, per_mode):
    """Median (PSS, USS) MiB of idle servers' processes per mode, all forked from one fork server."""
    import psutil

    from bench.common import wait_until as wait
    from pyramid_notebook.notebookmanager import NotebookManager
    from tests.helpers import random_port_base, stop_all_notebooks

    folder = tempfile.mkdtemp(prefix="idle-", dir=workdir)
    count = per_mode * len(MODES)
    manager = NotebookManager(folder, min_port=random_port_base(count + 2), port_range=count + 2, fork_server=True,
                              max_notebooks=count + 2)
    manager.start_fork_server()
    manager.fork_server.wait_until_ready(timeout=120)
    pids = {mode: [] for mode in MODES}
    try:
        for i in range(per_mode):
            for mode in MODES:
                name = f"{mode}{i}"
                manager.start_notebook_on_demand(name, {"context_hash": name, "greeting": "", "collaboration": mode,
                                                        "notebook_path": "/notebook/"})
                wait(lambda: "warm_session" in (manager.get_notebook_status(name) or {}), 120)
                pids[mode].append(manager.get_notebook_status(name)["pid"])
        time.sleep(15)
        infos = {mode: [psutil.Process(pid).memory_full_info() for pid in ps] for mode, ps in pids.items()}
        return {mode: (statistics.median(i.pss for i in found) / 2**20,
                       statistics.median(i.uss for i in found) / 2**20) for mode, found in infos.items()}
    finally:
        stop_all_notebooks(folder)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10, help="cell runs per sample for the round trip")
    parser.add_argument("--idle", type=int, default=3, help="idle servers per mode for the memory rows")
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "performance-collaboration.json"))
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="pyramid-notebook-bench-rtc-")
    idle = idle_servers(workdir, args.idle) if args.idle else {}
    for mode, (pss, uss) in idle.items():
        print(f"idle server, {mode}: PSS {pss:.1f} MiB, USS {uss:.1f} MiB", flush=True)
    sites = {}
    try:
        for mode in MODES:
            sites[mode] = Site(workdir, **{"pyramid_notebook.collaboration": mode})
        for mode, site in sites.items():  # launch once, not measured: every sample finds its server running
            sample(site, 1)
        rows = {mode: [] for mode in MODES}
        for _ in range(args.samples):
            for mode, site in sites.items():
                try:
                    rows[mode].append(sample(site, args.runs))
                except (AssertionError, TimeoutError) as e:  # a busy machine: say so, take the next sample
                    print(mode, "sample failed:", str(e)[:200], flush=True)
                    continue
                print(mode, json.dumps(rows[mode][-1]), flush=True)
    finally:
        for site in sites.values():
            site.stop()
    medians = {mode: {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "live"} | {"live": rs[0]["live"]}
               for mode, rs in rows.items() if rs}
    print(f"\n{'metric':<28}" + "".join(f"{m:>14}" for m in MODES) + f"{'always/off':>12}{'auto/off':>10}")
    for key in ("page_bytes", "page_bytes_uncompressed", "idle_s", "round_trip_ms", "server_pss_mb",
                "server_and_kernels_pss_mb"):
        values = [medians[m][key] for m in MODES]
        print(f"{key:<28}" + "".join(f"{v:>14.4g}" for v in values)
              + f"{values[2] / values[0]:>12.3f}{values[1] / values[0]:>10.3f}")
    with open(args.output, "w") as f:
        json.dump({"samples": args.samples, "runs": args.runs, "medians": medians, "rows": rows,
                   "idle_servers_pss_uss_mib": idle}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
