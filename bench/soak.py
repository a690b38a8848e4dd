#!/usr/bin/env python
"""Soak row: a busy team against the site under uvicorn for a few minutes (issue 25).

    .venv/bin/python bench/soak.py --minutes 5 [--clients 8] [--users 4] [--shutdown-every 120]
                                   [--upload-mb 5] [--output bench/soak-results.json]

The bench app (bench/app.py) runs under the library's own ASGI wrapper in a uvicorn subprocess,
websockets through the site. ``--clients`` threads share ``--users`` notebooks and loop over
what a team does all day: launch (or reuse) the notebook and load its page, run cells with large
outputs over the kernel's websocket, upload files through the contents API and read them back
through ``files/`` (compared byte for byte), open a terminal and run a command in it. Every
``--shutdown-every`` seconds one user's notebook is shut down and its clients relaunch it.

Reported: requests, websockets, cells, uploads, terminals; errors outside the shutdown windows
(a window is the shutdown itself and the seconds until that user's notebook answers again) and
mismatches, which must both be 0; and the web process's file descriptors, TCP sockets (and how
many in CLOSE_WAIT), threads and memory before the load, at their highest during it, and one
minute after it (``--settle``), when descriptors and sockets must be back to the baseline.
"""
import argparse
import base64
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import psutil
import requests
import websocket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
PYTHON = sys.executable
V1 = "v1.kernel.websocket.jupyter.org"
#: Seconds after a user's notebook answers again during which its clients' errors still count as
#: part of the shutdown window (requests that were in flight when it stopped).
WINDOW_GRACE = 5.0
#: Extra descriptors/sockets "back to the baseline" tolerates: the keep-alive connections the
#: idle pools may still hold to running notebooks.
TOLERANCE = 8


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    raise RuntimeError("timed out")


class Server:
    """The bench app under uvicorn, in its own process (the web process that is measured)."""

    def __init__(self, workdir):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = os.path.join(workdir, "notebooks")
        os.makedirs(self.folder, exist_ok=True)
        self.log = open(os.path.join(workdir, "uvicorn.log"), "wb")
        code = ("import sys, uvicorn; sys.path.insert(0, %r); from bench.app import asgi_application; "
                "uvicorn.run(asgi_application(%r), host='127.0.0.1', port=%d, log_level='warning', "
                "access_log=False)" % (ROOT, self.folder, self.port))
        self.proc = subprocess.Popen([PYTHON, "-c", code], stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir)
        self.ps = psutil.Process(self.proc.pid)

        def answers():
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn did not start; see {self.log.name}")
            try:
                return requests.get(self.url + "/shell", timeout=2).status_code == 403
            except requests.RequestException:
                return False

        wait_until(answers, 60)

    def sample(self) -> dict:
        """The web process's descriptors, sockets, threads and memory right now."""
        conns = self.ps.net_connections(kind="tcp")
        return {"fds": self.ps.num_fds(), "sockets": len(conns),
                "close_wait": sum(c.status == psutil.CONN_CLOSE_WAIT for c in conns),
                "threads": self.ps.num_threads(), "rss_mb": round(self.ps.memory_info().rss / 2 ** 20, 1)}

    def stop(self):
        from pyramid_notebook.backends.local import forkclient
        from pyramid_notebook.core import statefolder
        from pyramid_notebook.core.process import terminate_daemon

        # The site first: its watcher thread would start the fork server again behind our back.
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        forkclient.stop_all(self.folder)
        for pid_file in statefolder.pid_files(self.folder):
            if os.path.exists(pid_file):
                terminate_daemon(pid_file)


class Stats:
    """Counters and errors, shared by the client threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {k: 0 for k in ("requests", "websockets", "cells", "uploads", "terminals", "launches",
                                      "shutdowns")}
        self.errors_in_window = 0
        self.errors_outside = []
        self.mismatches = 0
        #: user -> (start of its current shutdown window, or None; end of its last window)
        self.windows = {}

    def add(self, key, n=1):
        with self.lock:
            self.counts[key] += n

    def error(self, user, what, exc):
        now = time.monotonic()
        with self.lock:
            start, end = self.windows.get(user, (None, 0.0))
            if start is not None or now < end + WINDOW_GRACE:
                self.errors_in_window += 1
            else:
                self.errors_outside.append(f"{user}: {what}: {type(exc).__name__}: {str(exc)[:200]}")

    def open_window(self, user):
        with self.lock:
            self.windows[user] = (time.monotonic(), self.windows.get(user, (None, 0.0))[1])

    def close_window(self, user):
        with self.lock:
            self.windows[user] = (None, time.monotonic())


class Client:
    """One member of the team: a user's browser doing one thing after another."""

    def __init__(self, server, user, stats, upload_bytes, rng):
        self.server, self.user, self.stats, self.upload_bytes, self.rng = server, user, stats, upload_bytes, rng
        self.base = server.url + "/notebook/"
        self.s = requests.Session()
        self.s.headers["X-Bench-User"] = user
        self.s.headers["Sec-Fetch-Site"] = "same-origin"  # a click on the site
        self.s.hooks["response"].append(lambda r, *a, **k: stats.add("requests"))
        self.notebook = None

    def get(self, url, **kw):
        r = self.s.get(url, timeout=120, **kw)
        if r.status_code >= 400:
            raise RuntimeError(f"GET {url} -> {r.status_code}")
        return r

    def xsrf_headers(self):
        xsrf = self.s.cookies.get("_xsrf", path="/notebook/") or self.s.cookies.get("_xsrf")
        return {"Origin": self.server.url, **({"X-XSRFToken": xsrf} if xsrf else {})}

    def launch(self):
        r = self.s.get(self.server.url + "/shell", allow_redirects=False, timeout=300)
        if r.status_code != 302:
            raise RuntimeError(f"launch -> {r.status_code}")
        self.stats.add("launches")
        self.get(r.headers["Location"])
        self.notebook = r.headers["Location"].rsplit("/", 1)[1]

    def kernel(self):
        for session in self.get(self.base + "api/sessions").json():
            if session["path"] == self.notebook:
                return session["kernel"]["id"]
        r = self.s.post(self.base + "api/sessions", json={"path": self.notebook, "name": self.notebook,
                                                         "type": "notebook", "kernel": {"name": "python3"}},
                        headers=self.xsrf_headers(), timeout=120)
        if r.status_code != 201:
            raise RuntimeError(f"new session -> {r.status_code}")
        return r.json()["kernel"]["id"]

    def cells(self):
        from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1, serialize_msg_to_ws_v1

        cookie = "; ".join(f"{c.name}={c.value}" for c in self.s.cookies)
        url = self.base.replace("http://", "ws://") + f"api/kernels/{self.kernel()}/channels"
        ws = websocket.create_connection(url, header=[f"X-Bench-User: {self.user}", f"Cookie: {cookie}"],
                                         origin=self.server.url, subprotocols=[V1], timeout=120)
        self.stats.add("websockets")
        try:
            for _ in range(self.rng.randint(1, 3)):
                size = self.rng.choice((1_000, 100_000, 1_000_000))
                msg_id = uuid.uuid4().hex
                header = {"msg_id": msg_id, "msg_type": "execute_request", "username": "soak", "session": "soak",
                          "date": "", "version": "5.3"}
                content = {"code": f"print('x' * {size})", "silent": False, "store_history": False,
                           "user_expressions": {}, "allow_stdin": False}
                parts = [json.dumps(p).encode() for p in (header, {}, {}, content)]
                ws.send_binary(serialize_msg_to_ws_v1(parts, "shell"))
                out = 0
                while True:
                    _, data = ws.recv_data()
                    _, parts = deserialize_msg_from_ws_v1(data)
                    reply_header, parent = json.loads(parts[0]), json.loads(parts[1])
                    if parent.get("msg_id") != msg_id:
                        continue
                    if reply_header["msg_type"] == "stream":
                        out += len(json.loads(parts[3])["text"])
                    if reply_header["msg_type"] == "status" and json.loads(parts[3])["execution_state"] == "idle":
                        break
                if out != size + 1:
                    with self.stats.lock:
                        self.stats.mismatches += 1
                self.stats.add("cells")
        finally:
            ws.close()

    def upload(self):
        data = os.urandom(self.upload_bytes)
        name = f"soak-{uuid.uuid4().hex[:8]}.bin"
        r = self.s.put(self.base + "api/contents/" + name, headers=self.xsrf_headers(), timeout=300,
                       json={"type": "file", "format": "base64", "content": base64.b64encode(data).decode()})
        if r.status_code not in (200, 201):
            raise RuntimeError(f"upload -> {r.status_code}")
        # The notebook page's own link: Jupyter's files/ wants a Referer from the notebook's pages.
        back = self.get(self.base + "files/" + name, headers={"Referer": self.base + "tree"}).content
        if back != data:
            with self.stats.lock:
                self.stats.mismatches += 1
        self.s.delete(self.base + "api/contents/" + name, headers=self.xsrf_headers(), timeout=120)
        self.stats.add("uploads")

    def terminal(self):
        r = self.s.post(self.base + "api/terminals", headers=self.xsrf_headers(), timeout=120)
        if r.status_code != 200:
            raise RuntimeError(f"new terminal -> {r.status_code}")
        name = r.json()["name"]
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.s.cookies)
        url = self.base.replace("http://", "ws://") + f"terminals/websocket/{name}"
        ws = websocket.create_connection(url, header=[f"X-Bench-User: {self.user}", f"Cookie: {cookie}"],
                                         origin=self.server.url, timeout=60)
        self.stats.add("websockets")
        try:
            marker = uuid.uuid4().hex
            ws.send(json.dumps(["stdin", f"echo {marker[:8]}''{marker[8:]}\r"]))
            seen = ""
            while marker not in seen:
                message = json.loads(ws.recv())
                if message[0] == "stdout":
                    seen += message[1]
        finally:
            ws.close()
            self.s.delete(self.base + f"api/terminals/{name}", headers=self.xsrf_headers(), timeout=120)
        self.stats.add("terminals")

    def run(self, until):
        actions = [("cells", self.cells), ("upload", self.upload), ("terminal", self.terminal),
                   ("status", lambda: self.get(self.base + "api/status"))]
        while time.monotonic() < until:
            what = "launch"
            try:
                if self.notebook is None:
                    self.launch()
                what, action = self.rng.choice(actions)
                action()
            except Exception as e:  # noqa: BLE001 - every failure is counted, none ends the run
                self.stats.error(self.user, what, e)
                self.notebook = None  # relaunch (or reuse) next round
                time.sleep(0.5)


def shutter(server, users, stats, every, until, rng):
    """Every ``every`` seconds, shut one user's notebook down; the window ends when it answers again."""
    s = requests.Session()
    s.headers["Sec-Fetch-Site"] = "same-origin"
    while time.monotonic() + every < until:
        time.sleep(every)
        user = rng.choice(users)
        stats.open_window(user)
        try:
            s.get(server.url + "/notebook/shutdown", headers={"X-Bench-User": user}, allow_redirects=False,
                  timeout=120)
            stats.add("shutdowns")
            r = s.get(server.url + "/shell", headers={"X-Bench-User": user}, allow_redirects=False, timeout=300)
            ok = r.status_code == 302 and s.get(server.url + "/notebook/api/status",
                                                headers={"X-Bench-User": user}, timeout=60).status_code == 200
            if not ok:
                stats.errors_outside.append(f"{user}: relaunch after shutdown failed ({r.status_code})")
        finally:
            stats.close_window(user)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--shutdown-every", type=float, default=120.0)
    parser.add_argument("--upload-mb", type=float, default=5.0)
    parser.add_argument("--settle", type=float, default=60.0, help="seconds after the load before the last sample")
    parser.add_argument("--output", default="")
    args = parser.parse_args(argv)

    # SIGTERM (timeout, CI) ends the run through the finally clause: the notebooks are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))
    workdir = tempfile.mkdtemp(prefix="pyramid-notebook-soak-")
    server = Server(workdir)
    print(f"soak: site at {server.url} (pid {server.proc.pid}), work folder {workdir}", flush=True)
    try:
        users = [f"soak{i}" for i in range(args.users)]
        stats = Stats()
        # Baseline: the site up, every user's notebook running once (as after a first launch).
        for user in users:
            r = requests.get(server.url + "/shell", headers={"X-Bench-User": user, "Sec-Fetch-Site": "same-origin"},
                             allow_redirects=False, timeout=300)
            assert r.status_code == 302, r.text
        print("soak: notebooks running; load starts", flush=True)
        baseline = server.sample()
        peak = dict(baseline)
        until = time.monotonic() + args.minutes * 60
        rng = random.Random(25)
        clients = [Client(server, users[i % len(users)], stats, int(args.upload_mb * 2 ** 20),
                          random.Random(rng.random())) for i in range(args.clients)]
        threads = [threading.Thread(target=c.run, args=(until,), daemon=True) for c in clients]
        threads.append(threading.Thread(target=shutter, args=(server, users, stats, args.shutdown_every, until,
                                                              random.Random(rng.random())), daemon=True))
        for t in threads:
            t.start()
        last_report = time.monotonic()
        # A client stuck in one call beyond every timeout is reported, not waited for forever.
        while any(t.is_alive() for t in threads) and time.monotonic() < until + 600:
            now = server.sample()
            peak = {k: max(peak[k], now[k]) for k in peak}
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                print(f"  ... {stats.counts} errors outside windows {len(stats.errors_outside)} web {now}",
                      flush=True)
            time.sleep(2)
        stuck = sum(t.is_alive() for t in threads)
        if stuck:
            stats.errors_outside.append(f"{stuck} client(s) still busy 10 minutes after the end")
        end = server.sample()
        time.sleep(args.settle)
        settled = server.sample()
        back = {k: settled[k] <= baseline[k] + TOLERANCE for k in ("fds", "sockets")}
        back["close_wait"] = settled["close_wait"] == 0
        report = {
            "minutes": args.minutes, "clients": args.clients, "users": args.users,
            "shutdown_every": args.shutdown_every, "upload_mb": args.upload_mb, "counts": stats.counts,
            "errors_outside_shutdown_windows": len(stats.errors_outside), "errors_in_windows": stats.errors_in_window,
            "mismatches": stats.mismatches, "web_process": {"baseline": baseline, "peak": peak, "load_end": end,
                                                            f"after_{args.settle:g}s": settled},
            "back_to_baseline": back, "first_errors": stats.errors_outside[:10],
            "pass": not stats.errors_outside and not stats.mismatches and all(back.values()),
        }
    finally:
        server.stop()
    print_report(report)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)
    return 0 if report["pass"] else 1


def print_report(report):
    c = report["counts"]
    print(f"soak: {report['clients']} clients, {report['users']} notebooks, {report['minutes']:g} min, "
          f"a shutdown every {report['shutdown_every']:g} s")
    print("  " + ", ".join(f"{v} {k}" for k, v in c.items()))
    print(f"  errors outside shutdown windows: {report['errors_outside_shutdown_windows']} (target 0); "
          f"in windows: {report['errors_in_windows']}; mismatches: {report['mismatches']} (target 0)")
    print(f"  {'web process':<12} {'fds':>5} {'sockets':>8} {'CLOSE_WAIT':>11} {'threads':>8} {'RSS MiB':>8}")
    for label, s in report["web_process"].items():
        print(f"  {label:<12} {s['fds']:>5} {s['sockets']:>8} {s['close_wait']:>11} {s['threads']:>8} "
              f"{s['rss_mb']:>8}")
    print(f"  back to baseline: {report['back_to_baseline']}; pass: {report['pass']}")
    for line in report["first_errors"]:
        print("  error: " + line)


if __name__ == "__main__":
    sys.exit(main())
