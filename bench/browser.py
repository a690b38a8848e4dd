"""Perceived speed in a real browser on an emulated network (issue 24): headless Chromium, DevTools
``Network.emulateNetworkConditions``.

    .venv/bin/python bench/browser.py [--rows click,first,ws] [--networks slow,fast] [--samples 1]
                                      [--first-after 8] [--output bench/browser-results.json]

Rows, each on ``slow`` (20 Mbit/s down, 5 up, 40 ms) and ``fast`` (100 Mbit/s, 10 ms):

* ``click``: on the demo site's home page, click on Shell 2 -> the notebook's kernel is idle ->
  ``a + b`` typed in the last cell and its result shown; and the bytes on the wire (the sum of
  DevTools' ``encodedDataLength``, headers included; websocket payloads counted apart). Cold cache
  (a fresh profile) and warm (the same profile, a second visit). Side by side: the site (uvicorn,
  websockets through the site), and the same notebook straight from its Jupyter server (its own
  URL and secret: what a Jupyter user gets, uncompressed).
* ``first``: a fresh site (its fork server not yet running), the first click N seconds after it
  started (``--first-after``), against a bare Jupyter server start to the same result in the
  same browser (start, page, kernel, ``1 + 1``).
* ``ws``: a 1 MB HTML table output over the kernel websocket, site under uvicorn with
  ``ws_per_message_deflate`` on and off, on the emulated link and on loopback.
* ``floor`` (issue 34, ``bench/browser_floor.py``): a cold click on a site up for ``--settle``
  seconds against the same profile's warm second visit, the first click ``--first-after`` seconds
  after a fresh site started, a warm visit straight to Jupyter, bytes; ``--floor-sides`` adds the
  first click without the warm-up, a lighter page (``disabled_extensions``) and the launch's progress
  page (``progress``).

Every comparison runs interleaved in one run; medians are printed with the ratio. The machine is
shared: absolute times drift, ratios less.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import requests  # noqa: E402

from bench.chrome import IDLE, NETWORKS, Chromium, click_to_result, log_in, run_cell, wait_until  # noqa: E402,F401

#: About 1 MB of HTML; its last cell has an id to wait for (``{marker}``).
BIG_TABLE = ("from IPython.display import HTML; HTML('<table>' + ''.join(f'<tr><td>{{i}}</td><td>row {{i}} of the "
             "table</td></tr>' for i in range(22000)) + '<tr><td id=\"{marker}\">end</td></tr></table>')")


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Site:
    """The demo site (egg:pyramid_notebook#demo) under uvicorn, websockets through the site."""

    def __init__(self, workdir, ws_deflate=True, **settings):
        self.workdir = tempfile.mkdtemp(dir=workdir)
        self.folder = os.path.join(self.workdir, "notebooks")
        os.makedirs(self.folder)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        values = {"pyramid_notebook.notebook_folder": self.folder, "pyramid_notebook.port_base": str(free_port()),
                  "pyramid_notebook.port_range": "20", "pyramid_notebook.fork_server": "true",
                  "pyramid_notebook.websocket_proxy": "pyramid_notebook.relays.asgi_app.serve_websocket",
                  "sqlalchemy.url": f"sqlite:///{self.workdir}/demo.sqlite"}
        values.update(settings)
        ini = os.path.join(self.workdir, "site.ini")
        with open(ini, "w") as f:
            f.write("[app:main]\nuse = egg:pyramid_notebook#demo\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
                    + f"[server:main]\nuse = egg:pyramid_notebook#uvicorn\nlisten = 127.0.0.1:{self.port}\n"
                    + f"ws_per_message_deflate = {'true' if ws_deflate else 'false'}\naccess_log = false\n")
        self.log = open(os.path.join(self.workdir, "site.log"), "wb")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "pserve"), ini],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=self.workdir)
        wait_until(lambda: self.proc.poll() is not None or _answers(self.url + "/login"), 120, message="the site")

    def context(self, user="user"):
        from pyramid_notebook.backends.local.manager import NotebookManager

        return NotebookManager(self.folder, fork_server=False).get_notebook_status(user)

    def stop(self):
        from pyramid_notebook.backends.local.forkclient import stop_all
        from pyramid_notebook.core import statefolder
        from pyramid_notebook.core.process import terminate_daemon

        self.proc.terminate()
        self.proc.wait(timeout=30)
        stop_all(self.folder)
        for pid_file in statefolder.pid_files(self.folder):
            if os.path.exists(pid_file):
                terminate_daemon(pid_file, timeout=10)
        self.log.close()


def _answers(url):
    try:
        requests.get(url, timeout=2)
        return True
    except requests.RequestException:
        return False


def measure_click(results, workdir, networks, samples):
    """Shell 2 on the site vs the same notebook from its own Jupyter server; cold and warm."""
    site, jupyter = Site(workdir), None
    try:
        setup = Chromium()
        try:  # launch once (not measured) so that both sides find the notebook running
            log_in(setup, site)
            setup.browser.find_by_id("shell2").click()
            wait_until(lambda: setup.js(IDLE), 300, message="the first launch")
        finally:
            setup.quit()
        # The site's notebook server only answers the site (its allow_origin, its websocket URL):
        # "direct" is a plain Jupyter server on the same notebook file, its kernel already running
        # as the site's warm kernel is, what a Jupyter user gets.
        context = site.context()
        notebook = context["notebook_name"]
        jupyter = PlainJupyter(workdir, os.path.join(site.folder, "user", notebook))
        direct = jupyter.url + f"notebooks/{notebook}?token={jupyter.token}"
        for network in networks:
            for _ in range(samples):
                for side in ("site", "direct"):
                    chrome = Chromium()
                    try:
                        if side == "site":
                            log_in(chrome, site)
                            action = lambda: chrome.browser.find_by_id("shell2").click()  # noqa: E731
                        else:
                            action = lambda: chrome.driver.get(direct)  # noqa: E731
                        expression = "a + b" if side == "site" else "'foo' + 'bar'"
                        for cache in ("cold", "warm"):
                            if cache == "warm":  # a second visit: back to where the click starts
                                if side == "site":
                                    chrome.driver.get(site.url + "/")
                                else:
                                    chrome.driver.get("about:blank")
                            chrome.network(network)
                            idle, result, http, ws = click_to_result(chrome, action, expression)
                            results.append({"row": "click", "network": network, "side": side, "cache": cache,
                                            "idle_s": idle, "result_s": result, "http_bytes": http, "ws_bytes": ws})
                            print(json.dumps(results[-1]), flush=True)
                            chrome.network("loopback")
                    finally:
                        chrome.quit()
    finally:
        site.stop()
        if jupyter is not None:
            jupyter.stop()


class PlainJupyter:
    """``jupyter notebook`` serving a copy of ``notebook_file``, a kernel running for it."""

    def __init__(self, workdir, notebook_file):
        self.port, self.token = free_port(), "bench-" + os.urandom(8).hex()
        root = tempfile.mkdtemp(dir=workdir)
        name = os.path.basename(notebook_file)
        shutil.copy(notebook_file, os.path.join(root, name))
        env = dict(os.environ, JUPYTER_CONFIG_DIR=os.path.join(root, ".jupyter"),
                   JUPYTER_RUNTIME_DIR=os.path.join(root, ".runtime"))
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc = subprocess.Popen([sys.executable, "-m", "jupyter", "notebook", "--no-browser", "--ip=127.0.0.1",
                                      f"--port={self.port}", "--ServerApp.port_retries=0", "--allow-root",
                                      f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}"],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        auth = {"Authorization": f"token {self.token}"}
        wait_until(lambda: _answers(self.url + "api/status"), 120, message="jupyter notebook")
        r = requests.post(self.url + "api/sessions", headers=auth, json={"path": name, "name": name, "type": "notebook",
                                                                         "kernel": {"name": "python3"}})
        assert r.status_code == 201, r.text

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def bare_jupyter_first_result(workdir, chrome):
    """Seconds from ``jupyter notebook`` starting to ``1 + 1`` shown in the browser."""
    port = free_port()
    root = tempfile.mkdtemp(dir=workdir)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=os.path.join(root, ".jupyter"),
               JUPYTER_RUNTIME_DIR=os.path.join(root, ".runtime"))
    with open(os.path.join(root, "bench.ipynb"), "w") as f:
        json.dump({"cells": [{"cell_type": "code", "execution_count": None, "id": "a", "metadata": {}, "outputs": [],
                              "source": ""}], "nbformat": 4, "nbformat_minor": 5,
                   # A kernel named: else the page asks which one before anything runs.
                   "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}},
                  f)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "jupyter", "notebook", "--no-browser", "--ip=127.0.0.1",
                             f"--port={port}", "--ServerApp.port_retries=0", "--IdentityProvider.token=bench",
                             "--allow-root", f"--ServerApp.root_dir={root}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/notebooks/bench.ipynb?token=bench"
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/api/status"), 120, interval=0.01,
                   message="jupyter notebook")
        chrome.driver.get(url)
        wait_until(lambda: chrome.js(IDLE), 300, message="the kernel to be idle")
        run_cell(chrome, "1 + 41", "42")
        return time.perf_counter() - start
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # Jupyter still shutting its kernel down: not what is measured
            proc.kill()
            proc.wait(timeout=30)


def measure_first(results, workdir, networks, samples, after):
    """The first click ``after`` seconds after a fresh site started, vs a bare Jupyter start."""
    for network in networks:
        for _ in range(samples):
            chrome = Chromium()
            try:
                chrome.network(network)
                bare = bare_jupyter_first_result(workdir, chrome)
            finally:
                chrome.quit()
            site = Site(workdir)
            chrome = Chromium()
            try:
                log_in(chrome, site)
                wait_until(lambda: time.perf_counter() - site.started >= after, after + 60, interval=0.1)
                chrome.network(network)
                _, first, http, _ = click_to_result(chrome, lambda: chrome.browser.find_by_id("shell2").click())
                forked = _forked(site.context()["pid"])
            finally:
                chrome.quit()
                site.stop()
            results.append({"row": "first", "network": network, "after_s": after, "site_s": first, "bare_s": bare,
                            "ratio": first / bare, "forked": forked, "http_bytes": http})
            print(json.dumps(results[-1]), flush=True)


def _forked(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return b"\0" not in f.read().rstrip(b"\0")


def measure_ws(results, workdir, networks, samples):
    """A 1 MB HTML table over the kernel websocket, permessage-deflate on and off (uvicorn)."""
    for deflate in (True, False):
        site = Site(workdir, ws_deflate=deflate)
        chrome = Chromium()
        try:
            log_in(chrome, site)
            chrome.browser.find_by_id("shell2").click()
            wait_until(lambda: chrome.js(IDLE), 300, message="the kernel to be idle")
            for network in networks:
                for i in range(samples):
                    chrome.network(network)
                    chrome.drain()
                    start = time.perf_counter()
                    marker = f"end-{os.urandom(4).hex()}"
                    from tests.test_browser import run_in_last_cell

                    run_in_last_cell(chrome.browser, BIG_TABLE.format(marker=marker), timeout=180)
                    wait_until(lambda: chrome.js(f"return !!document.getElementById('{marker}')"), 300,
                               message="the table")
                    seconds = time.perf_counter() - start
                    http, ws = chrome.bytes()
                    results.append({"row": "ws", "deflate": deflate, "network": network, "result_s": seconds,
                                    "ws_payload_bytes": ws})
                    print(json.dumps(results[-1]), flush=True)
                    chrome.network("loopback")
        finally:
            chrome.quit()
            site.stop()


def summary(results):
    """Medians per row, network, side/cache, as text lines."""
    lines = []
    groups = {}
    for r in results:
        key = tuple((k, r[k]) for k in ("row", "network", "side", "cache", "deflate") if k in r)
        groups.setdefault(key, []).append(r)
    for key, rows in sorted(groups.items(), key=lambda kv: str(kv[0])):
        fields = {k: statistics.median(r[k] for r in rows) for k in rows[0] if isinstance(rows[0][k], (int, float))
                  and not isinstance(rows[0][k], bool)}
        lines.append(" ".join(f"{k}={v}" for k, v in key) + ": " +
                     ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()))
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="click,first,ws")
    parser.add_argument("--networks", default="slow,fast")
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--first-after", type=float, default=8.0)
    parser.add_argument("--settle", type=float, default=120.0, help="floor: seconds the long-running site runs first")
    parser.add_argument("--floor-sides", default="", help="floor: extra sides, warmup-off,light,progress")
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "browser-results.json"))
    args = parser.parse_args()
    rows, networks = args.rows.split(","), args.networks.split(",")
    results = []
    workdir = tempfile.mkdtemp(prefix="bench-browser-")
    try:
        if "click" in rows:
            measure_click(results, workdir, networks, args.samples)
        if "first" in rows:
            measure_first(results, workdir, networks, args.samples, args.first_after)
        if "ws" in rows:
            measure_ws(results, workdir, networks + ["loopback"], args.samples)
        if "floor" in rows:
            from bench.browser_floor import measure_floor

            measure_floor(results, workdir, networks, args.samples, args.first_after, args.settle,
                          [side for side in args.floor_sides.split(",") if side])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        with open(args.output, "w") as f:
            json.dump({"load": os.getloadavg(), "results": results}, f, indent=1)
    print("\n".join(summary(results)))
    if "floor" in rows:
        from bench.browser_floor import floor_summary

        print("\n".join(floor_summary(results)))
    print(textwrap.dedent(f"""
        load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a shared machine: ratios
        between interleaved sides are the figures to read)"""))


if __name__ == "__main__":
    main()
