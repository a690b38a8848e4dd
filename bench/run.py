"""Benchmark pyramid_notebook against direct access, side by side in one run.

    bench/run [--quick] [--output bench/results.json] [--only cold,click,warm,forked,http,ws,idle,scale,accel,hub]
              [--servers waitress,uwsgi,uvicorn] [--sizes 10,25,50] [--samples 10]

Prints one table (metric, proxied, direct/baseline, ratio, target, pass) and writes it as JSON.
Every comparison is measured interleaved in the same run, on loopback; report medians (with
min/max) and ratios, because this machine is shared and absolute times drift.
"""
import argparse
import glob
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psutil
import requests
import websocket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
PYTHON = sys.executable
UWSGI = os.path.join(os.path.dirname(PYTHON), "uwsgi")
V1 = "v1.kernel.websocket.jupyter.org"

from pyramid_notebook.core.process import terminate_daemon  # noqa: E402


# --- helpers ---------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout=300.0, interval=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    raise RuntimeError("timed out")


def http_ok(url, headers=None):
    try:
        return requests.get(url, headers=headers, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def answers(url):
    try:
        requests.get(url, timeout=2, allow_redirects=False)
        return True
    except requests.RequestException:
        return False


def ms(seconds):
    return seconds * 1000.0


def stats(values):
    values = sorted(values)
    return {"median": statistics.median(values), "min": values[0], "max": values[-1],
            "p95": values[min(len(values) - 1, int(0.95 * len(values)))],
            "p99": values[min(len(values) - 1, int(0.99 * len(values)))], "n": len(values)}


class Results:
    """Rows of the final table."""

    def __init__(self):
        self.rows = []

    def add(self, metric, proxied, baseline=None, unit="ms", target=None, passed=None, ratio=None, note=""):
        if ratio is None and baseline and isinstance(proxied, dict) and isinstance(baseline, dict):
            ratio = proxied["median"] / baseline["median"] if baseline["median"] else None
        row = {"metric": metric, "unit": unit, "proxied": proxied, "baseline": baseline, "ratio": ratio,
               "target": target, "pass": passed, "note": note}
        self.rows.append(row)
        print(_format_row(row), flush=True)
        return row


def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, dict):
        return f"{value['median']:.2f} [{value['min']:.2f}-{value['max']:.2f}]"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _format_row(row):
    verdict = {True: "PASS", False: "FAIL", None: ""}[row["pass"]]
    return (f"{row['metric']:<44} {_fmt(row['proxied']):>26} {_fmt(row['baseline']):>26} "
            f"{_fmt(row['ratio']):>8} {row['target'] or '':>12} {verdict:>5}  {row['unit']} {row['note']}")


HEADER = (f"{'metric':<44} {'proxied / measured':>26} {'direct / baseline':>26} {'ratio':>8} {'target':>12} "
          f"{'':>5}  unit")


# --- servers ---------------------------------------------------------------

class Site:
    """The bench app (bench/app.py) under waitress or uWSGI, in its own process."""

    def __init__(self, kind, workdir):
        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = os.path.join(workdir, f"notebooks-{kind}")
        os.makedirs(self.folder, exist_ok=True)
        self.log = open(os.path.join(workdir, f"{kind}.log"), "wb")
        if kind in ("waitress", "accel"):
            accel = "/_pyramid_notebook/" if kind == "accel" else ""
            code = ("import sys, waitress; sys.path.insert(0, %r); from bench.app import make_app; "
                    "waitress.serve(make_app(%r, accel_redirect=%r), host='127.0.0.1', port=%d, threads=32, "
                    "_quiet=True)" % (ROOT, self.folder, accel, self.port))
            cmd = [PYTHON, "-c", code]
        elif kind == "uvicorn":
            # One uvicorn worker: HTTP through a2wsgi's thread pool, websockets on the event loop.
            code = ("import sys, uvicorn; sys.path.insert(0, %r); from bench.app import asgi_application; "
                    "uvicorn.run(asgi_application(%r), host='127.0.0.1', port=%d, log_level='warning', "
                    "access_log=False)" % (ROOT, self.folder, self.port))
            cmd = [PYTHON, "-c", code]
        else:
            wsgi = os.path.join(workdir, "bench_wsgi.py")
            with open(wsgi, "w") as f:
                f.write(f"import sys\nsys.path.insert(0, {ROOT!r})\nfrom bench.app import uwsgi_application\n"
                        "application = uwsgi_application()\n")
            # The worker model of the shipped uwsgi.ini.
            cmd = [UWSGI, "--http11-socket", f"127.0.0.1:{self.port}", "--master", "--processes", "2",
                   "--threads", "100", "--enable-threads", "--thunder-lock", "--lazy-apps", "--die-on-term",
                   "--need-app", "--socket-timeout", "5", "--disable-logging", "--wsgi-file", wsgi,
                   "--env", f"BENCH_NOTEBOOK_FOLDER={self.folder}"]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir)
        wait_until(lambda: self.proc.poll() is not None or answers(self.url + "/shell"), 60)
        if self.proc.poll() is not None:
            raise RuntimeError(f"{kind} did not start; see {self.log.name}")
        # A site that has been up for a few seconds: its fork server has imported Jupyter.
        from pyramid_notebook.notebookmanager import NotebookManager

        manager = NotebookManager(self.folder, fork_server=True)
        if kind == "waitress":
            manager.start_fork_server()
            manager.fork_server.wait_until_ready(timeout=120)

        self.has_floor = True

    def session(self, user):
        s = requests.Session()
        s.headers["X-Bench-User"] = user
        # What a browser sends for a click on the site: shutdowns and restarts need that intent.
        s.headers["Sec-Fetch-Site"] = "same-origin"
        return s

    def context(self, user):
        from pyramid_notebook.notebookmanager import NotebookManager

        return NotebookManager(self.folder).get_notebook_status(user)

    def stop(self):
        from pyramid_notebook.backends.local import forkclient as forkserver
        from pyramid_notebook.core import statefolder

        forkserver.stop_all(self.folder)
        for pid_file in statefolder.pid_files(self.folder):
            if os.path.exists(pid_file):
                terminate_daemon(pid_file)
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


# --- nginx accel mode (issue 11) ---
class AccelSite(Site):
    """The bench app under waitress in accel mode, behind the shipped nginx-accel.conf."""

    def __init__(self, workdir):
        super().__init__("accel", workdir)
        # The floor of this design: nginx's auth_request to a bare WSGI grant in the same waitress
        # (bench/app.py, /floor-grant/), then nginx's relay; no Pyramid, no checks.
        self.site_port = self.port
        self.port = free_port()
        prefix = os.path.join(workdir, "nginx-accel")
        for d in ("logs", "tmp"):
            os.makedirs(os.path.join(prefix, d), exist_ok=True)
        with open(os.path.join(ROOT, "nginx-accel.conf")) as f:
            conf = f.read().replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{self.port};")
        conf = conf.replace("server 127.0.0.1:9999;", f"server 127.0.0.1:{self.site_port};")
        # Measure the relay, not the access log's disk writes (direct access logs nothing either).
        conf = conf.replace("access_log logs/nginx-access.log;", "access_log off;")
        if os.geteuid() == 0:  # workers that can read the (0700) notebook folder, as the README says
            conf = "user root;\n" + conf
        floor = """
        location /floor/notebook/ {
            auth_request /_floor_grant;
            auth_request_set $pyramid_notebook_grant $upstream_http_x_accel_redirect;
            rewrite ^/floor(/notebook/.*)$ $1 break;
            proxy_pass http://$pyramid_notebook_upstream;
            proxy_set_header Host $pyramid_notebook_upstream;
            proxy_set_header Authorization "token $pyramid_notebook_token";
            proxy_set_header Connection $connection_upgrade;
        }
        location = /_floor_grant {
            internal;
            proxy_pass http://pyramid_site/floor-grant$request_uri;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Connection "";
            proxy_ignore_headers X-Accel-Redirect;
        }
"""
        conf = conf.replace("        # The site itself.\n", floor + "\n        # The site itself.\n", 1)
        with open(os.path.join(prefix, "nginx.conf"), "w") as f:
            f.write(conf)
        self.url = f"http://127.0.0.1:{self.port}"
        self.nginx = subprocess.Popen(["/usr/sbin/nginx", "-p", prefix, "-c", "nginx.conf", "-g", "daemon off;"],
                                      stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.nginx.poll() is not None or answers(self.url + "/shell"), 30)
        if self.nginx.poll() is not None:
            raise RuntimeError(f"nginx did not start; see {self.log.name}")

    def stop(self):
        self.nginx.send_signal(15)
        self.nginx.wait(timeout=30)
        super().stop()


def launch_and_load(site, user, variant="1"):
    """Seconds from the launch request to the notebook page served through the proxy."""
    s = site.session(user)
    start = time.perf_counter()
    r = s.get(f"{site.url}/shell?variant={variant}", allow_redirects=False)
    assert r.status_code == 302, r.text
    page = s.get(r.headers["Location"])
    assert page.status_code == 200
    return time.perf_counter() - start


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


# --- measurements ----------------------------------------------------------

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


def _load(urls_and_headers, concurrency, n):
    """Run n GETs spread over `concurrency` threads, each with its own keep-alive session."""
    per_thread = max(1, n // concurrency)
    times, nbytes = [], [0]
    lock = threading.Lock()

    def worker():
        s = requests.Session()
        local, local_bytes = [], 0
        for i in range(per_thread):
            url, headers = urls_and_headers
            start = time.perf_counter()
            r = s.get(url, headers=headers)
            body = r.content
            local.append(time.perf_counter() - start)
            local_bytes += len(body)
            assert r.status_code == 200, r.status_code
        with lock:
            times.extend(local)
            nbytes[0] += local_bytes

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(worker) for _ in range(concurrency)]:
            f.result()
    return times, nbytes[0], time.perf_counter() - start


def _throughput(site, concurrency, n, proxied_url, direct_url, headers, rounds=2, user="http"):
    """Median MiB/s of proxied and direct GETs of one large URL, in interleaved rounds."""
    p_rate, d_rate = [], []
    # Jupyter refuses files/ downloads without a same-site Referer, as a browser would send.
    headers = dict(headers, Referer=direct_url.split("/notebook/")[0] + "/notebook/tree")
    for _ in range(rounds):
        _, b, t = _load((proxied_url, {"X-Bench-User": user, "Referer": site.url + "/notebook/tree"}), concurrency, n)
        p_rate.append(b / t / 2**20)
        _, b, t = _load((direct_url, headers), concurrency, n)
        d_rate.append(b / t / 2**20)
    return statistics.median(p_rate), statistics.median(d_rate)


def measure_http(results, site, n):
    launch_and_load(site, "http")
    # The notebook publishes its static routes right after it starts; the page load above raced it.
    wait_until(lambda: "static_files" in site.context("http"), 30)
    ctx = site.context("http")
    direct_base = f"http://127.0.0.1:{ctx['http_port']}"
    auth = {"Authorization": "token " + ctx["token"]}
    user = {"X-Bench-User": "http"}
    import notebook

    from pyramid_notebook.notebookmanager import NotebookManager

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
            p_times += _load((site.url + "/notebook/api/status", user), concurrency, n // 4)[0]
            if site.has_floor:
                f_times += _load((site.url + "/floor/notebook/api/status", user), concurrency, n // 4)[0]
            d_times += _load((direct_base + "/notebook/api/status", auth), concurrency, n // 4)[0]
        p, d = (stats([ms(x) for x in t]) for t in (p_times, d_times))
        added = p["median"] - d["median"]
        results.add(f"{site.kind}: api/status c={concurrency} added p50", added, None, target="<= 1 ms",
                    passed=added <= 1.0, note=f"proxied {_fmt(p)} / direct {_fmt(d)} ms")
        if site.has_floor:
            fl = stats([ms(x) for x in f_times])
            results.add(f"{site.kind}: api/status c={concurrency} floor added p50", fl["median"] - d["median"],
                        None, note=(f"nginx auth_request to a bare WSGI grant in the same waitress, then nginx's relay: "
                                    f"{_fmt(fl)} ms" if site.kind == "accel" else
                                    f"bare http.client passthrough in the same server, no framework: {_fmt(fl)} ms"))
        big_n = max(concurrency, n // 20)
        p_rate, d_rate = _throughput(site, concurrency, big_n, site.url + bundle_path, direct_base + bundle_path,
                                     auth)
        bundle_target = 0.95 if site.kind == "accel" else 0.8
        results.add(f"{site.kind}: {os.path.getsize(bundle) // 1024} KiB bundle c={concurrency} throughput",
                    p_rate, d_rate, unit="MiB/s", ratio=p_rate / d_rate, target=f">= {bundle_target}",
                    passed=p_rate / d_rate >= bundle_target,
                    note="static: sent from disk by nginx once the site said yes" if site.kind == "accel"
                    else "static: sent from disk by the site")
        p_rate, d_rate = _throughput(site, concurrency, big_n, site.url + blob_path, direct_base + blob_path, auth)
        accel = site.kind == "accel"
        results.add(f"{site.kind}: same-size file c={concurrency} throughput", p_rate, d_rate, unit="MiB/s",
                    ratio=p_rate / d_rate, note="files/: sent from disk with Jupyter's files/ rules",
                    target=">= 0.95" if accel else None, passed=p_rate / d_rate >= 0.95 if accel else None)
        # The relay proper: a compressed file, which only Jupyter sends.
        p_rate, d_rate = _throughput(site, concurrency, big_n, site.url + gz_path, direct_base + gz_path, auth)
        results.add(f"{site.kind}: same-size .gz file c={concurrency} throughput", p_rate, d_rate, unit="MiB/s",
                    ratio=p_rate / d_rate, note="files/ relayed: Jupyter sends compressed files itself")
    site.session("http").get(site.url + "/notebook/shutdown", allow_redirects=False)


ECHO_TARGET = (
    "from comm import get_comm_manager\n"
    "def _t(comm, m):\n"
    "    @comm.on_msg\n"
    "    def _e(msg):\n"
    "        comm.send(data={}, buffers=msg['buffers'])\n"
    "get_comm_manager().register_target('echo', _t)\n"
)


class Channel:
    """A kernel channels websocket, v1 protocol."""

    def __init__(self, url, headers, origin=None):
        # Same socket options for both paths: no Nagle delay on either.
        self.ws = websocket.create_connection(url, header=headers, origin=origin, subprotocols=[V1], timeout=60,
                                              sockopt=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),))

    def send(self, msg_type, content, buffers=()):
        from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1

        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": msg_type, "username": "b", "session": "b", "date": "",
                  "version": "5.3"}
        parts = [json.dumps(x).encode() for x in (header, {}, {}, content)] + list(buffers)
        self.ws.send_binary(serialize_msg_to_ws_v1(parts, "shell"))
        return msg_id

    def wait(self, msg_id, msg_type):
        from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1

        while True:
            _, data = self.ws.recv_data()
            _, parts = deserialize_msg_from_ws_v1(data)
            if json.loads(parts[1]).get("msg_id") == msg_id and json.loads(parts[0])["msg_type"] == msg_type:
                return parts


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
                note=f"proxied {_fmt(p)} / direct {_fmt(d)} ms (64-byte comm echo); p99 added "
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


def _memory_mb(pid, kind="rss"):
    """Resident (``rss``) or proportional (``pss``: shared pages split among their sharers) MiB."""
    try:
        proc = psutil.Process(pid)
        procs = [proc] + proc.children(recursive=True)
        if kind == "pss":
            return sum(p.memory_full_info().pss for p in procs) / 2**20
        return sum(p.memory_info().rss for p in procs) / 2**20
    except psutil.NoSuchProcess:
        return 0.0


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
                mem = statistics.median(_memory_mb(site.context(u)["pid"]) for u in users)
                pss = statistics.median(_memory_mb(site.context(u)["pid"], "pss") for u in users)
                note += f", per user (server+kernel) RSS {mem:.0f} MB, PSS {pss:.0f} MB"
                fs = _fork_server_pid(site)
                if fs:
                    note += f"; fork server RSS {_memory_mb(fs):.0f} MB, PSS {_memory_mb(fs, 'pss'):.0f} MB"
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


def _fork_server_pid(site):
    from pyramid_notebook.notebookmanager import NotebookManager

    manager = NotebookManager(site.folder, fork_server=True)
    answer = manager.fork_server.ping()
    return answer and answer["pid"]


def _first_result(channel, code):
    """Run ``code`` on a kernel channel; return its text/plain result."""
    from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1

    msg_id = channel.send("execute_request", {"code": code, "silent": False, "store_history": False})
    while True:
        _, data = channel.ws.recv_data()
        _, parts = deserialize_msg_from_ws_v1(data)
        header, parent = json.loads(parts[0]), json.loads(parts[1])
        if parent.get("msg_id") == msg_id and header["msg_type"] == "execute_result":
            return json.loads(parts[3])["data"]["text/plain"]
        if parent.get("msg_id") == msg_id and header["msg_type"] == "error":
            raise RuntimeError(json.loads(parts[3])["evalue"])


def _session_like_the_page(s, base, path, headers=None):
    """What Notebook 7's page does: attach to the notebook's running session, else start one."""
    sessions = s.get(base + "api/sessions", headers=headers).json()
    for session in sessions:
        if session["path"] == path:
            return session["kernel"]["id"]
    xsrf = s.cookies.get("_xsrf", path="/notebook/") or s.cookies.get("_xsrf")
    r = s.post(base + "api/sessions", json={"path": path, "name": path, "type": "notebook",
                                            "kernel": {"name": "python3"}},
               headers=dict(headers or {}, **({"X-XSRFToken": xsrf} if xsrf else {})))
    assert r.status_code == 201, r.text
    return r.json()["kernel"]["id"]


def click_to_first_result(site, user):
    """Seconds from the click (launch request) to ``a + b``'s result: launch, page, session, websocket."""
    s = site.session(user)
    start = time.perf_counter()
    r = s.get(f"{site.url}/shell", allow_redirects=False)
    assert r.status_code == 302, r.text
    page = s.get(r.headers["Location"])
    assert page.status_code == 200
    name = r.headers["Location"].rsplit("/", 1)[1]
    kernel = _session_like_the_page(s, site.url + "/notebook/", name, {"Origin": site.url})
    ctx = site.context(user)
    # pserve mode: the page opens its websocket straight to the notebook's port.
    channel = Channel(f"ws://127.0.0.1:{ctx['http_port']}/notebook/api/kernels/{kernel}/channels",
                      [f"Authorization: token {ctx['token']}"])
    try:
        assert _first_result(channel, "a + b") == "'foobar'"
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
        kernel = _session_like_the_page(s, base, "bench.ipynb", auth)
        channel = Channel(f"ws://127.0.0.1:{port}/api/kernels/{kernel}/channels", ["Authorization: token bench"])
        try:
            assert _first_result(channel, "1 + 1") == "2"
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


# --- main --------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="each measurement briefly (CI keeps it working)")
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "results.json"))
    parser.add_argument("--only", default="cold,click,warm,forked,http,ws,idle,scale,accel,hub",
                        help="accel: nginx accel mode's HTTP and websocket rows (needs nginx); "
                             "hub: the JupyterHub backend's rows")
    parser.add_argument("--servers", default="waitress,uwsgi,uvicorn",
                        help="web servers for the http and ws rows (cold, warm and scale use waitress)")
    parser.add_argument("--sizes", default="10,25,50", help="user counts of the scale rows")
    parser.add_argument("--samples", type=int, default=10, help="launches measured by the cold and click rows")
    args = parser.parse_args()
    only = set(args.only.split(","))
    servers = set(args.servers.split(","))
    q = args.quick
    workdir = tempfile.mkdtemp(prefix="pyramid-notebook-bench-")
    results = Results()
    print(f"Machine: {platform.platform()}, {os.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB; quick={q}\n")
    print(HEADER)
    if only == {"hub"}:  # the JupyterHub backend's rows alone
        from bench.hub import measure_hub

        measure_hub(results, stats, ms, _fmt, _load, _throughput, free_port, wait_until, q)
        only = set()
    waitress_site = Site("waitress", workdir) if only - {"accel"} else None
    accel_site = AccelSite(workdir) if "accel" in only and os.path.exists("/usr/sbin/nginx") else None
    uwsgi_site = Site("uwsgi", workdir) if ({"http", "ws"} & only) and "uwsgi" in servers and os.path.exists(UWSGI) \
        else None
    uvicorn_site = Site("uvicorn", workdir) if ({"http", "ws", "idle"} & only) and "uvicorn" in servers else None
    try:
        if "cold" in only:
            measure_cold(results, waitress_site, workdir, 2 if q else args.samples)
        if "click" in only:
            measure_click(results, waitress_site, workdir, 2 if q else args.samples)
        if "warm" in only:
            measure_warm(results, waitress_site, 30 if q else 300)
        if "forked" in only:
            from bench.forked import measure_forked

            measure_forked(results, stats, ms, _fmt, Channel, _first_result, wait_until, workdir, 50 if q else 400)
        if "http" in only:
            if "waitress" in servers:
                measure_http(results, waitress_site, 80 if q else 800)
            for site in (uwsgi_site, uvicorn_site):
                if site:
                    measure_http(results, site, 80 if q else 800)
        if "ws" in only:
            for site in (uwsgi_site, uvicorn_site):
                if site:
                    measure_ws(results, site, 30 if q else 300)
        if "idle" in only and uvicorn_site:
            measure_idle(results, uvicorn_site, 100 if q else 1000, 50 if q else 300)
        if "scale" in only:
            measure_scale(results, waitress_site, [3] if q else [int(x) for x in args.sizes.split(",")])
        if accel_site:
            measure_http(results, accel_site, 80 if q else 800)
            measure_ws(results, accel_site, 30 if q else 300)
        if "hub" in only and os.path.exists(os.path.join(os.path.dirname(PYTHON), "jupyterhub")) and \
                os.path.exists(os.path.join(ROOT, ".venv", "node", "node_modules", ".bin", "configurable-http-proxy")):
            from bench.hub import measure_hub

            measure_hub(results, stats, ms, _fmt, _load, _throughput, free_port, wait_until, q)
    finally:
        for site in (accel_site, waitress_site, uwsgi_site, uvicorn_site):
            if site:
                site.stop()
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "memory_gib": round(psutil.virtual_memory().total / 2**30)},
              "quick": q, "time": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": results.rows}
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nWrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
