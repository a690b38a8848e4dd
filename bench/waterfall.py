"""Where a cold click's time goes: every request of a notebook page, cold and warm, on a slow link.

    .venv/bin/python bench/waterfall.py [--settle 60] [--network slow] [--progress-page] [--learn]
                                        [--output FILE.json]

The demo site (bench/browser.py's ``Site``), a fresh Chromium profile: a click on Shell 2 with the
user's server stopped (``cold``), then the same profile's second visit (``warm``), then its third
with the user's server stopped again (``restart``: what a cold click would be if the browser already
had every file the page loads, the bound of any preloading), each until the notebook's kernel is
idle. For each request from the click on (a progress page's preloads before the notebook page's own,
at negative times): when it started and finished (seconds after the page's request), its status,
bytes on the wire, whether the browser's cache answered it, its type and URL. ``--progress-page``
turns on the launch's progress page (the demo's development.ini does), whose preloads then run while
the server starts; ``--learn`` first lets one fresh profile visit the notebook, untimed, so that the
site has learned what a notebook page loads (``web/pagefiles.py``: a team mate's earlier visit), as
any site that has been used has. What it showed is in docs/performance.rst ("Cold visits at the warm
floor"): which waves of requests a cold visit waits for that a warm one does not.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.browser import Site, log_in  # noqa: E402
from bench.browser_floor import _click_shell, _stop_user  # noqa: E402
from bench.chrome import IDLE, Chromium, wait_until  # noqa: E402


def _requests(chrome) -> list:
    found = {}
    for entry in chrome.driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        method, params = message.get("method"), message.get("params", {})
        row = found.setdefault(params.get("requestId"), {})
        if method == "Network.requestWillBeSent":
            row.update(url=params["request"]["url"], start=params["timestamp"], type=params.get("type"))
        elif method == "Network.responseReceived":
            response = params["response"]
            row.update(status=response.get("status"),
                       cached=bool(response.get("fromDiskCache") or response.get("fromMemoryCache")))
        elif method == "Network.requestServedFromCache":
            row["cached"] = True
        elif method == "Network.loadingFinished":
            row.update(end=params["timestamp"], bytes=params.get("encodedDataLength"))
    rows = sorted((r for r in found.values() if "start" in r), key=lambda r: r["start"])
    first = next((r["start"] for r in rows if r.get("type") == "Document" and "/notebooks/" in r["url"]), None)
    if first is None:
        return []
    # From the click on: the progress page's preloads, if any, start before the notebook page (< 0).
    return [dict(r, start=round(r["start"] - first, 3), end=round(r.get("end", r["start"]) - first, 3))
            for r in rows]


def _quiet(chrome, quiet=1.0, timeout=120.0) -> None:
    """Until the page has started no request for ``quiet`` seconds: a visit's lazily loaded chunks are
    then in the cache, not cancelled by the next navigation (the next visit would download them)."""
    seen = [None, time.monotonic()]

    def still():
        count = chrome.js("return performance.getEntriesByType('resource').length")
        if count != seen[0]:
            seen[:] = [count, time.monotonic()]
        return time.monotonic() - seen[1] >= quiet

    wait_until(still, timeout, interval=0.1, message="the page's requests to end")


def visit(chrome, network, action) -> dict:
    """One visit until the kernel is idle: its seconds and its requests."""
    chrome.network(network)
    chrome.drain()
    started = time.perf_counter()
    try:
        action()
        wait_until(lambda: chrome.js(IDLE), 300, message="the kernel to be idle")
        idle = time.perf_counter() - started
        requests = _requests(chrome)
        _quiet(chrome)  # not measured
        return {"idle_s": round(idle, 3), "requests": requests}
    finally:
        chrome.network("loopback")


def summary(sample, side, result) -> dict:
    """One visit in a line: its seconds, its requests, the static files it took from the network."""
    requests = result["requests"]
    # Bytes on the wire: a download, or a revalidation's headers; the browser's cache sends none.
    network = [r for r in requests if (r.get("bytes") or 0) > 0 and r.get("type") in ("Script", "Stylesheet", "Font")]
    return {"sample": sample, "side": side, "idle_s": result["idle_s"], "requests": len(requests),
            "static_from_network": len(network), "static_bytes": sum(r.get("bytes") or 0 for r in network)}


def _learn(site, network) -> None:
    """A fresh profile's visit, untimed, until its page has reported what it loaded."""
    reports = os.path.join(site.folder, ".compress-cache")
    chrome = Chromium()
    try:
        log_in(chrome, site)
        visit(chrome, network, _click_shell(chrome))
        wait_until(lambda: os.path.isdir(reports) and any(n.startswith("page-files-") for n in os.listdir(reports)),
                   60, message="the notebook page's report")
    finally:
        chrome.quit()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settle", type=float, default=60.0, help="seconds the site runs before the cold click")
    parser.add_argument("--network", default="slow")
    parser.add_argument("--samples", type=int, default=1, help="cold, warm and restart visits, each a fresh profile")
    parser.add_argument("--progress-page", action="store_true", help="the launch answers with its progress page")
    parser.add_argument("--learn", action="store_true", help="an untimed visit first, whose page the site learns")
    parser.add_argument("--output")
    args = parser.parse_args()
    settings = {"pyramid_notebook.progress_page": "true"} if args.progress_page else {}
    site = Site(tempfile.mkdtemp(prefix="waterfall-"), **settings)
    visits, rows = [], []
    try:
        # The measurement's premise, not a synchronisation: a site up for a while (its fork server,
        # warm-up and compression done), as the cold click is defined.
        time.sleep(args.settle)
        if args.learn:
            _learn(site, args.network)
        for sample in range(args.samples):
            _stop_user(site)
            chrome = Chromium()
            try:
                # The site's pages on the same link: their prefetches (preload_links) are not a loopback's.
                chrome.network(args.network)
                log_in(chrome, site)
                for side in ("cold", "warm", "restart"):
                    if side != "cold":
                        chrome.driver.get(site.url + "/")
                    if side == "restart":
                        _stop_user(site)
                    result = visit(chrome, args.network, _click_shell(chrome))
                    visits.append(dict(result, sample=sample, side=side))
                    rows.append(summary(sample, side, result))
                    print(json.dumps(rows[-1]), flush=True)
            finally:
                chrome.quit()
    finally:
        site.stop()
    for side in ("cold", "warm", "restart"):
        times = [r["idle_s"] for r in rows if r["side"] == side]
        print(f"{side}: median {statistics.median(times):.2f} s to the kernel idle ({len(times)} samples)")
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"network": args.network, "settle_s": args.settle, "progress_page": args.progress_page,
                       "learn": args.learn, "summary": rows, "visits": visits}, f, indent=1)


if __name__ == "__main__":
    main()
