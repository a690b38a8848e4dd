"""The "hub" row of the perceived-speed benchmark: the site vs JupyterHub's own proxy, in Chromium.

bench/browser.py has the local rows; this one is the JupyterHub backend, in headless Chromium with
DevTools ``Network.emulateNetworkConditions``.

    .venv/bin/python bench/browser_hub.py [--networks slow,fast] [--samples 1] [--output FILE]

One real JupyterHub (hub/jupyterhub_config.py through tests/hubhelpers.py's Hub, configurable-http-
proxy, local single-user servers) and one web node (``pserve hub.ini``: uvicorn, the kernels'
websockets through the site). The user's server is launched once through the site (not measured),
so both sides find it running with the same notebook and the same kernel, ``a`` and ``b`` defined.
Rows, on ``slow`` (20 Mbit/s down, 5 up, 40 ms) and ``fast`` (100 Mbit/s, 10 ms), cold cache (a
fresh browser profile) and warm (the same profile, a second visit):

* side ``site``: logged in to the site, click on Shell 2 on the home page -> the notebook's kernel
  is idle -> ``a + b`` typed in the last cell and ``'foobar'`` shown;
* side ``hub-proxy``: what a JupyterHub user gets, the same notebook straight through the hub's
  proxy: logged in to the hub, open ``<hub>/user/user/notebooks/<notebook>`` -> the same kernel
  idle -> the same result. Cold, that navigation includes JupyterHub's OAuth redirects (authorize,
  oauth_callback), as on a hub user's first visit in a fresh browser; warm, the server's cookie
  is already there.

How the browser gets into the hub: the shipped config has ``authenticator_class = "null"`` (nobody
logs in to the hub; the site is a service) and JupyterHub 6 ignores ``?token=`` on page requests
(``JUPYTERHUB_ALLOW_TOKEN_IN_URL`` defaults to false since 5.0). So the hub runs the shipped config
with one change, the authenticator: JupyterHub's own ``shared-password`` authenticator with a
random password, and the browser logs in on the hub's login page as a hub user would. The
spawner, the servers and the proxy are the shipped ones; the site uses the service token as ever.

Bytes: the sum of DevTools ``Network.loadingFinished`` ``encodedDataLength`` (headers included),
websocket payloads apart. Sides run interleaved; the medians are printed with the ratio
site/hub-proxy. The machine is shared: absolute times drift, ratios less.
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time
from urllib.parse import quote, urlsplit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.chrome import IDLE, NETWORKS, Chromium, click_to_result, log_in, wait_until  # noqa: E402
from tests import hubhelpers  # noqa: E402

SIDES = ("site", "hub-proxy")
#: The hub's login for the hub-proxy side only; loopback, a fresh random password per run.
HUB_PASSWORD = os.urandom(16).hex()
HUB_LOGIN = f'''
# bench/browser_hub.py: let a browser log in to the hub itself (the shipped "null" lets nobody in).
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {HUB_PASSWORD!r}
c.Authenticator.allow_all = True
'''


def start_hub(workdir):
    """tests/hubhelpers.py's Hub, its config overlay (shipped config + a failing test spawner for one
    user we never use) extended by :data:`HUB_LOGIN`. Hub() writes the module's OVERLAY when it
    starts, so it is swapped for the start and put back."""
    shipped = hubhelpers.OVERLAY
    hubhelpers.OVERLAY = shipped + HUB_LOGIN
    try:
        return hubhelpers.Hub(workdir, max_notebooks=2)
    finally:
        hubhelpers.OVERLAY = shipped


def hub_log_in(chrome, hub, user="user"):
    """The hub's login page, then to the hub's home page: the default ``next`` (/hub/spawn) would
    follow to the running server and fill the cache with its assets before the cold visit."""
    home = urlsplit(hub.url).path + "hub/home"
    chrome.driver.get(hub.url + "hub/login?next=" + quote(home, safe=""))
    chrome.browser.find_by_id("username_input").fill(user)
    chrome.browser.find_by_id("password_input").fill(HUB_PASSWORD)
    chrome.browser.find_by_id("login_submit").click()
    wait_until(lambda: urlsplit(chrome.driver.current_url).path == home, 60, interval=0.1,
               message="the hub's home page after its login")


def launch_once(site):
    """Launch the user's server through the site (not measured); the notebook page's path."""
    chrome = Chromium()
    try:
        log_in(chrome, site)
        chrome.browser.find_by_id("shell2").click()
        wait_until(lambda: chrome.js(IDLE), 300, message="the first launch")
        path = urlsplit(chrome.driver.current_url).path
        assert "/notebooks/" in path, chrome.driver.current_url
        return path
    finally:
        chrome.quit()


def measure(results, workdir, networks, samples):
    """Interleaved site / hub-proxy samples per network, each cold then warm in one profile."""
    hub = node = None
    try:
        hub = start_hub(workdir)
        node = hubhelpers.WebNode(workdir, hub, "web")
        path = launch_once(node)  # /notebook/user/user/notebooks/default-....ipynb
        # The hub's base_url is the site's notebook_proxy path: the same path through the hub's proxy.
        hub_page = f"http://127.0.0.1:{hub.port}{path}"
        print(json.dumps({"site": node.url, "hub_page": hub_page}), flush=True)
        for network in networks:
            for _ in range(samples):
                for side in SIDES:
                    chrome = Chromium()
                    try:
                        if side == "site":
                            log_in(chrome, node)
                            action = lambda: chrome.browser.find_by_id("shell2").click()  # noqa: E731
                        else:
                            hub_log_in(chrome, hub)
                            action = lambda: chrome.driver.get(hub_page)  # noqa: E731
                        for cache in ("cold", "warm"):
                            if cache == "warm":  # a second visit: back to where the click starts
                                chrome.driver.get(node.url + "/" if side == "site" else "about:blank")
                            chrome.network(network)
                            idle, result, http, ws = click_to_result(chrome, action, "a + b")
                            chrome.network("loopback")
                            row = {"row": "hub", "network": network, "side": side, "cache": cache,
                                   "idle_s": idle, "result_s": result, "http_bytes": http, "ws_bytes": ws}
                            if side == "hub-proxy":  # it really went straight to the hub's proxy
                                assert chrome.driver.current_url.startswith(hub_page), chrome.driver.current_url
                            results.append(row)
                            print(json.dumps(row), flush=True)
                    finally:
                        chrome.quit()
    finally:
        # By pid: the web node, then the hub (it stops the proxy, the culler and every server it
        # spawned; tests/helpers.stop_process kills any child that outlives it).
        if node is not None:
            node.stop()
        if hub is not None:
            hub.stop()


FIELDS = ("idle_s", "result_s", "http_bytes", "ws_bytes")


def medians(results):
    """{(network, cache): {side: {field: median}, "ratio": {field: site / hub-proxy}}}."""
    table = {}
    for r in results:
        table.setdefault((r["network"], r["cache"]), {}).setdefault(r["side"], []).append(r)
    out = {}
    for key, sides in table.items():
        row = {side: {f: statistics.median(r[f] for r in rows) for f in FIELDS} for side, rows in sides.items()}
        if all(side in row for side in SIDES):
            row["ratio"] = {f: row["site"][f] / row["hub-proxy"][f] if row["hub-proxy"][f] else None
                            for f in FIELDS}
        out[key] = row
    return out


def summary(table):
    lines = [f"{'network':8} {'cache':5} {'side':9} {'idle s':>7} {'result s':>9} {'HTTP bytes':>11} {'ws bytes':>9}"]
    for (network, cache), row in sorted(table.items()):
        for side in SIDES + ("ratio",):
            if side in row:
                v = row[side]
                if side == "ratio":
                    lines.append(f"{network:8} {cache:5} {'site/hub':9} " + " ".join(
                        f"{v[f]:>{w}.2f}" if v[f] is not None else f"{'-':>{w}}"
                        for f, w in zip(FIELDS, (7, 9, 11, 9))))
                else:
                    lines.append(f"{network:8} {cache:5} {side:9} {v['idle_s']:7.2f} {v['result_s']:9.2f} "
                                 f"{v['http_bytes']:11.0f} {v['ws_bytes']:9.0f}")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", default="slow,fast")
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "browser-hub-results.json"))
    args = parser.parse_args()
    networks = args.networks.split(",")
    unknown = [n for n in networks if n not in NETWORKS or NETWORKS[n] is None]
    if unknown:
        parser.error(f"unknown network(s) {unknown}: choose among slow, fast")
    results = []
    workdir = tempfile.mkdtemp(prefix="bench-browser-hub-")
    started = time.time()
    try:
        measure(results, pathlib.Path(workdir), networks, args.samples)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        table = medians(results)
        with open(args.output, "w") as f:
            json.dump({"load": os.getloadavg(), "cores": os.cpu_count(), "started": started, "networks":
                       {n: NETWORKS[n] for n in networks}, "samples": args.samples, "results": results,
                       "medians": [{"network": n, "cache": c, **row} for (n, c), row in sorted(table.items())]},
                      f, indent=1)
    print("\n".join(summary(table)))
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a shared machine: "
          "the ratios between interleaved sides are the figures to read)")


if __name__ == "__main__":
    main()
