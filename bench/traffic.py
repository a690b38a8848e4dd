"""Traffic rows: HTTP (api/status, bundles, files) and kernel websockets through the site beside
straight to the notebook, and many idle websockets held by one uvicorn worker."""
import glob
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import websocket

from bench.common import ECHO_TARGET, Channel, fmt, load, ms, stats, throughput, wait_until
from bench.sites import launch_and_load


def measure_http(results, site, n):
    launch_and_load(site, "http")
    # The notebook publishes its static routes right after it starts; the page load above raced it.
    wait_until(lambda: "static_files" in site.context("http"), 30)
    ctx = site.context("http")
    direct_base = f"http://127.0.0.1:{ctx['http_port']}"
    auth = {"Authorization": "token " + ctx["token"]}
    user = {"X-Bench-User": "http"}
    import notebook

    from pyramid_notebook.backends.local.manager import NotebookManager

    bundle = max(glob.glob(os.path.join(os.path.dirname(notebook.__file__), "static", "*.js")), key=os.path.getsize)
    bundle_path = "/notebook/static/notebook/" + os.path.basename(bundle)
    # A file as big as the bundle, but one only Jupyter can serve (the files/ handler): the proxy proper.
    with open(os.path.join(NotebookManager(site.folder).get_work_folder("http"), "bench-blob.bin"), "wb") as f:
        f.write(os.urandom(os.path.getsize(bundle)))
    blob_path = "/notebook/files/bench-blob.bin"
    with open(os.path.join(NotebookManager(site.folder).get_work_folder("http"), "bench-blob.bin.gz"), "wb") as f:
        f.write(os.urandom(os.path.getsize(bundle)))
    gz_path = blob_path + ".gz"
    for concurrency in (1, 16):
        # Interleave rounds of proxied, floor and direct so drift hits all alike.
        p_times, f_times, d_times = [], [], []
        for _ in range(4):
            p_times += load((site.url + "/notebook/api/status", user), concurrency, n // 4)[0]
            if site.has_floor:
                f_times += load((site.url + "/floor/notebook/api/status", user), concurrency, n // 4)[0]
            d_times += load((direct_base + "/notebook/api/status", auth), concurrency, n // 4)[0]
        p, d = (stats([ms(x) for x in t]) for t in (p_times, d_times))
        added = p["median"] - d["median"]
        results.add(f"{site.kind}: api/status c={concurrency} added p50", added, None, target="<= 1 ms",
                    passed=added <= 1.0, note=f"proxied {fmt(p)} / direct {fmt(d)} ms")
        if site.has_floor:
            fl = stats([ms(x) for x in f_times])
            results.add(f"{site.kind}: api/status c={concurrency} floor added p50", fl["median"] - d["median"],
                        None, note=(f"nginx auth_request to a bare WSGI grant in the same waitress, then nginx's relay: "
                                    f"{fmt(fl)} ms" if site.kind == "accel" else
                                    f"bare http.client passthrough in the same server, no framework: {fmt(fl)} ms"))
        big_n = max(concurrency, n // 20)
        p_rate, d_rate = throughput(site, concurrency, big_n, site.url + bundle_path, direct_base + bundle_path,
                                     auth)
        bundle_target = 0.95 if site.kind == "accel" else 0.8
        results.add(f"{site.kind}: {os.path.getsize(bundle) // 1024} KiB bundle c={concurrency} throughput",
                    p_rate, d_rate, unit="MiB/s", ratio=p_rate / d_rate, target=f">= {bundle_target}",
                    passed=p_rate / d_rate >= bundle_target,
                    note="static: sent from disk by nginx once the site said yes" if site.kind == "accel"
                    else "static: sent from disk by the site")
        p_rate, d_rate = throughput(site, concurrency, big_n, site.url + blob_path, direct_base + blob_path, auth)
        accel = site.kind == "accel"
        results.add(f"{site.kind}: same-size file c={concurrency} throughput", p_rate, d_rate, unit="MiB/s",
                    ratio=p_rate / d_rate, note="files/: sent from disk with Jupyter's files/ rules",
                    target=">= 0.95" if accel else None, passed=p_rate / d_rate >= 0.95 if accel else None)
        # The relay proper: a compressed file, which only Jupyter sends.
        p_rate, d_rate = throughput(site, concurrency, big_n, site.url + gz_path, direct_base + gz_path, auth)
        results.add(f"{site.kind}: same-size .gz file c={concurrency} throughput", p_rate, d_rate, unit="MiB/s",
                    ratio=p_rate / d_rate, note="files/ relayed: Jupyter sends compressed files itself")
    site.session("http").get(site.url + "/notebook/shutdown", allow_redirects=False)


def measure_ws(results, site, n):
    launch_and_load(site, "ws")
    s = site.session("ws")
    s.get(site.url + "/notebook/tree")
    xsrf = s.cookies.get("_xsrf", path="/notebook/")
    r = s.post(site.url + "/notebook/api/kernels", json={"name": "python3"},
               headers={"X-XSRFToken": xsrf, "Origin": site.url})
    kernel = r.json()["id"]
    ctx = site.context("ws")
    path = f"/notebook/api/kernels/{kernel}/channels"
    proxied = Channel(site.url.replace("http", "ws") + path, ["X-Bench-User: ws"], origin=site.url)
    direct = Channel(f"ws://127.0.0.1:{ctx['http_port']}{path}", [f"Authorization: token {ctx['token']}"])
    setup = direct.send("execute_request", {"code": ECHO_TARGET, "silent": False})
    direct.wait(setup, "execute_reply")
    for i, ch in enumerate((proxied, direct)):
        ch.send("comm_open", {"comm_id": f"echo{i}", "target_name": "echo", "data": {}})

    def echo(i, ch, data):
        parts = ch.wait(ch.send("comm_msg", {"comm_id": f"echo{i}", "data": {}}, [data]), "comm_msg")
        assert bytes(parts[4]) == data

    small = b"x" * 64
    for i, ch in enumerate((proxied, direct)):  # warm up
        echo(i, ch, small)
    p_rtt, d_rtt = [], []
    for _ in range(n):
        for i, (ch, out) in enumerate(((proxied, p_rtt), (direct, d_rtt))):
            start = time.perf_counter()
            echo(i, ch, small)
            out.append(ms(time.perf_counter() - start))
    p, d = stats(p_rtt), stats(d_rtt)
    added = p["median"] - d["median"]
    results.add(f"{site.kind}: websocket round trip added p50", added, None, target="<= 0.5 ms", passed=added <= 0.5,
                note=f"proxied {fmt(p)} / direct {fmt(d)} ms (64-byte comm echo); p99 added "
                     f"{p['p99'] - d['p99']:.2f}")
    payload = os.urandom(2**20)
    rates = {"p": [], "d": []}
    for _ in range(max(3, n // 10)):
        for i, (ch, key) in enumerate(((proxied, "p"), (direct, "d"))):
            start = time.perf_counter()
            echo(i, ch, payload)
            rates[key].append(2 / (time.perf_counter() - start))
    ratio = statistics.median(rates["p"]) / statistics.median(rates["d"])
    floor = 0.9 if site.kind in ("uvicorn", "accel") else 0.5
    results.add(f"{site.kind}: 1 MiB binary echo throughput", stats(rates["p"]), stats(rates["d"]), unit="MiB/s",
                ratio=ratio, target=f">= {floor}", passed=ratio >= floor)
    proxied.ws.close()
    direct.ws.close()
    s.get(site.url + "/notebook/shutdown", allow_redirects=False)


def measure_idle(results, site, idle, n):
    """Many idle notebook websockets held by one uvicorn worker: memory, and an active kernel's p99 beside them."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * idle + 1024)), hard))
    launch_and_load(site, "idle")
    s = site.session("idle")
    s.get(site.url + "/notebook/tree")
    r = s.post(site.url + "/notebook/api/kernels", json={"name": "python3"},
               headers={"X-XSRFToken": s.cookies.get("_xsrf", path="/notebook/"), "Origin": site.url})
    ws_base = site.url.replace("http", "ws")
    active = Channel(f"{ws_base}/notebook/api/kernels/{r.json()['id']}/channels", ["X-Bench-User: idle"],
                     origin=site.url)
    active.wait(active.send("execute_request", {"code": ECHO_TARGET, "silent": False}), "execute_reply")
    active.send("comm_open", {"comm_id": "echo", "target_name": "echo", "data": {}})

    def round_trips(count):
        times = []
        for _ in range(count):
            start = time.perf_counter()
            active.wait(active.send("comm_msg", {"comm_id": "echo", "data": {}}, [b"x" * 64]), "comm_msg")
            times.append(ms(time.perf_counter() - start))
        return stats(times)

    round_trips(10)
    quiet = round_trips(n)
    server = psutil.Process(site.proc.pid)
    rss_before = server.memory_info().rss / 2**20

    def open_idle(_):
        # The notebook page's event stream: a real notebook websocket that stays quiet.
        return websocket.create_connection(f"{ws_base}/notebook/api/events/subscribe", header=["X-Bench-User: idle"],
                                           origin=site.url, timeout=60)

    with ThreadPoolExecutor(16) as pool:
        sockets = list(pool.map(open_idle, range(idle)))
    busy = round_trips(n)
    rss_after = server.memory_info().rss / 2**20
    per_socket = (rss_after - rss_before) * 1024 / idle
    results.add(f"{site.kind}: {idle} idle websockets, memory per socket", per_socket, None, unit="KiB",
                note=f"one uvicorn process, RSS {rss_before:.0f} -> {rss_after:.0f} MiB (browser and notebook legs)")
    ratio = busy["p99"] / quiet["p99"]
    results.add(f"{site.kind}: kernel round trip p99 beside {idle} idle websockets", busy["p99"], quiet["p99"],
                ratio=ratio, target="<= 2", passed=ratio <= 2.0,
                note=f"p50 {busy['median']:.2f} vs {quiet['median']:.2f} ms with none open")
    for ws in sockets:
        ws.close()
    active.ws.close()
    s.get(site.url + "/notebook/shutdown", allow_redirects=False)
