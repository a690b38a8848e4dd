"""Launch rows: cold and warm launches, restarts, click to first result, many users at once;
each beside its baseline (a bare Jupyter start) measured interleaved in the same run."""
import os
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from bench.common import (PYTHON, Channel, first_result, free_port, http_ok, memory_mb, ms, session_like_the_page,
                          stats, wait_until)
from bench.sites import fork_server_pid, launch_and_load


def bare_jupyter_start(workdir):
    """Seconds from spawning a bare `jupyter notebook` to its answering on its port."""
    port = free_port()
    root = tempfile.mkdtemp(dir=workdir)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=os.path.join(root, ".jupyter"),
               JUPYTER_RUNTIME_DIR=os.path.join(root, ".runtime"))
    start = time.perf_counter()
    proc = subprocess.Popen([PYTHON, "-m", "jupyter", "notebook", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                             "--ServerApp.port_retries=0", "--IdentityProvider.token=bench", "--allow-root",
                             f"--ServerApp.root_dir={root}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/api/status", {"Authorization": "token bench"}))
        return time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=30)



def measure_cold(results, site, workdir, n):
    proxied, bare = [], []
    for i in range(n):
        bare.append(bare_jupyter_start(workdir))
        proxied.append(launch_and_load(site, "cold"))
        site.session("cold").get(site.url + "/notebook/shutdown", allow_redirects=False)
    p, b = stats([ms(x) for x in proxied]), stats([ms(x) for x in bare])
    ratio = p["median"] / b["median"]
    results.add("cold launch -> notebook page (waitress)", p, b, target="<= 0.25", passed=ratio <= 0.25,
                ratio=ratio, note="baseline: bare jupyter notebook start -> answering")
    launch_and_load(site, "restart", "1")
    restarts = []
    for i in range(max(1, n // 2)):
        restarts.append(launch_and_load(site, "restart", "2" if i % 2 == 0 else "1"))
    results.add("restart on context change -> page", stats([ms(x) for x in restarts]))
    site.session("restart").get(site.url + "/notebook/shutdown", allow_redirects=False)


def measure_warm(results, site, n):
    s = site.session("warm")
    launch_and_load(site, "warm")
    times = []
    for _ in range(n):
        start = time.perf_counter()
        r = s.get(site.url + "/shell", allow_redirects=False)
        times.append(time.perf_counter() - start)
        assert r.status_code == 302
    st = stats([ms(x) for x in times])
    results.add("warm launch (same context) p50", st, target="<= 5 ms", passed=st["median"] <= 5.0,
                note=f"p99 {st['p99']:.2f} ms")


def measure_scale(results, site, sizes):
    for size in sizes:
        for mode, workers in (("sequential", 1), ("10 at a time", 10)):
            users = [f"scale{size}-{i}" for i in range(size)]
            start = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                times = list(pool.map(lambda u: ms(launch_and_load(site, u)), users))
            total = time.perf_counter() - start
            st = stats(times)
            reachable = sum(http_ok(site.url + "/notebook/api/status", {"X-Bench-User": u}) for u in users)
            note = f"total {total:.1f} s, p95 {st['p95']:.0f} ms, reachable {reachable}/{size}"
            if mode == "sequential":
                # One kernel each (the warm kernel, or one started here when there is none), then the
                # memory of server + kernel.
                def start_kernel(u):
                    if site.context(u).get("warm_session"):
                        return
                    s = site.session(u)
                    s.get(site.url + "/notebook/tree")
                    s.post(site.url + "/notebook/api/kernels", json={"name": "python3"},
                           headers={"X-XSRFToken": s.cookies.get("_xsrf", path="/notebook/"), "Origin": site.url})
                with ThreadPoolExecutor(4) as pool:
                    list(pool.map(start_kernel, users))
                time.sleep(2)  # let kernels finish importing before reading RSS (a measurement, not a sync)
                mem = statistics.median(memory_mb(site.context(u)["pid"]) for u in users)
                pss = statistics.median(memory_mb(site.context(u)["pid"], "pss") for u in users)
                note += f", per user (server+kernel) RSS {mem:.0f} MB, PSS {pss:.0f} MB"
                fs = fork_server_pid(site)
                if fs:
                    note += f"; fork server RSS {memory_mb(fs):.0f} MB, PSS {memory_mb(fs, 'pss'):.0f} MB"
            target, passed = f"{size} reachable", reachable == size
            if size == 10 and mode == "10 at a time":
                target, passed = "p95 <= 5 s", passed and st["p95"] <= 5000
            elif size == 50 and mode == "sequential":
                target, passed = "p50 <= 0.6 s", passed and st["median"] <= 600
            results.add(f"scale {size} users, {mode}: per-user launch", st, None, target=target,
                        passed=passed, note=note)
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda u: site.session(u).get(site.url + "/notebook/shutdown",
                                                            allow_redirects=False), users))


def click_to_first_result(site, user):
    """Seconds from the click (launch request) to ``a + b``'s result: launch, page, session, websocket."""
    s = site.session(user)
    start = time.perf_counter()
    r = s.get(f"{site.url}/shell", allow_redirects=False)
    assert r.status_code == 302, r.text
    page = s.get(r.headers["Location"])
    assert page.status_code == 200
    name = r.headers["Location"].rsplit("/", 1)[1]
    kernel = session_like_the_page(s, site.url + "/notebook/", name, {"Origin": site.url})
    ctx = site.context(user)
    # pserve mode: the page opens its websocket straight to the notebook's port.
    channel = Channel(f"ws://127.0.0.1:{ctx['http_port']}/notebook/api/kernels/{kernel}/channels",
                      [f"Authorization: token {ctx['token']}"])
    try:
        assert first_result(channel, "a + b") == "'foobar'"
    finally:
        channel.ws.close()
    return time.perf_counter() - start


def bare_server_first_result(workdir):
    """Seconds for a bare `jupyter server`: start, answer, session, websocket, one cell."""
    port = free_port()
    root = tempfile.mkdtemp(dir=workdir)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=os.path.join(root, ".jupyter"),
               JUPYTER_RUNTIME_DIR=os.path.join(root, ".runtime"))
    base = f"http://127.0.0.1:{port}/"
    auth = {"Authorization": "token bench"}
    start = time.perf_counter()
    proc = subprocess.Popen([PYTHON, "-m", "jupyter", "server", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                             "--ServerApp.port_retries=0", "--IdentityProvider.token=bench", "--allow-root",
                             f"--ServerApp.root_dir={root}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: http_ok(base + "api/status", auth))
        s = requests.Session()
        kernel = session_like_the_page(s, base, "bench.ipynb", auth)
        channel = Channel(f"ws://127.0.0.1:{port}/api/kernels/{kernel}/channels", ["Authorization: token bench"])
        try:
            assert first_result(channel, "1 + 1") == "2"
        finally:
            channel.ws.close()
        return time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measure_click(results, site, workdir, n):
    proxied, bare = [], []
    for i in range(n):
        bare.append(bare_server_first_result(workdir))
        proxied.append(click_to_first_result(site, "click"))
        site.session("click").get(site.url + "/notebook/shutdown", allow_redirects=False)
    p, b = stats([ms(x) for x in proxied]), stats([ms(x) for x in bare])
    ratio = p["median"] / b["median"]
    results.add("click -> first cell result (waitress)", p, b, target="<= 0.3", passed=ratio <= 0.3, ratio=ratio,
                note="launch, page, session, websocket, a + b; baseline: bare jupyter server start + session + cell")

