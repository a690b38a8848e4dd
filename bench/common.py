"""What every benchmark module shares: timing and statistics, the results table, HTTP load,
the kernel channel, memory readings."""
import json
import os
import socket
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psutil
import requests
import websocket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable
UWSGI = os.path.join(os.path.dirname(PYTHON), "uwsgi")
V1 = "v1.kernel.websocket.jupyter.org"


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
        print(format_row(row), flush=True)
        return row


def fmt(value):
    if value is None:
        return "-"
    if isinstance(value, dict):
        return f"{value['median']:.2f} [{value['min']:.2f}-{value['max']:.2f}]"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def format_row(row):
    verdict = {True: "PASS", False: "FAIL", None: ""}[row["pass"]]
    return (f"{row['metric']:<44} {fmt(row['proxied']):>26} {fmt(row['baseline']):>26} "
            f"{fmt(row['ratio']):>8} {row['target'] or '':>12} {verdict:>5}  {row['unit']} {row['note']}")


HEADER = (f"{'metric':<44} {'proxied / measured':>26} {'direct / baseline':>26} {'ratio':>8} {'target':>12} "
          f"{'':>5}  unit")



def load(urls_and_headers, concurrency, n):
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


#: The bytes as they are, never a compressed copy (see :func:`throughput`).
IDENTITY = {"Accept-Encoding": "identity"}


def throughput(site, concurrency, n, proxied_url, direct_url, headers, rounds=2, user="http"):
    """Median MiB/s of proxied and direct GETs of one large URL, in interleaved rounds."""
    p_rate, d_rate = [], []
    # Jupyter refuses files/ downloads without a same-site Referer, as a browser would send.
    # identity: the relay's own throughput, both sides the same bytes (as before compression came in,
    # so the rows stay comparable). Compressed, the client's decompression would count against the
    # site on loopback, where compressing never pays; the browser rows (bench/browser.py) measure it
    # where it does.
    headers = dict(headers, Referer=direct_url.split("/notebook/")[0] + "/notebook/tree", **IDENTITY)
    for _ in range(rounds):
        _, b, t = load((proxied_url, {"X-Bench-User": user, "Referer": site.url + "/notebook/tree", **IDENTITY}),
                       concurrency, n)
        p_rate.append(b / t / 2**20)
        _, b, t = load((direct_url, headers), concurrency, n)
        d_rate.append(b / t / 2**20)
    return statistics.median(p_rate), statistics.median(d_rate)


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



def first_result(channel, code):
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


def session_like_the_page(s, base, path, headers=None):
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



def memory_mb(pid, kind="rss"):
    """Resident (``rss``) or proportional (``pss``: shared pages split among their sharers) MiB."""
    try:
        proc = psutil.Process(pid)
        procs = [proc] + proc.children(recursive=True)
        if kind == "pss":
            return sum(p.memory_full_info().pss for p in procs) / 2**20
        return sum(p.memory_info().rss for p in procs) / 2**20
    except psutil.NoSuchProcess:
        return 0.0

