"""The ``floor`` row of the browser bench (issue 34): cold visits against the same browser's warm floor.

    .venv/bin/python bench/browser.py --rows floor [--samples 3] [--settle 120] [--first-after 8]
                                      [--networks slow] [--floor-sides warmup-off,light]

Every comparison the issue's targets name, side by side in one run, in headless Chromium with
DevTools network emulation (``slow``: 20 Mbit/s down, 5 up, 40 ms), each sample interleaved:

* ``cold``: a fresh profile, the user's server not running, on a site up for ``--settle`` seconds
  (its fork server, warm-up and compression long done): click on Shell 2 -> editor ready (kernel
  idle) -> ``a + b`` shown;
* ``warm``: the same profile's second visit, the server running (the floor);
* ``first``: a fresh site, the first click ``--first-after`` seconds after it started (fresh profile);
* ``direct``: a second visit of the same notebook straight from a plain ``jupyter notebook``;
* optional sides (``--floor-sides``): ``first-warmup-off`` (the first click on a fresh site with
  ``pyramid_notebook.warm_up = false``), ``light`` (a warm visit on a site with
  ``pyramid_notebook.disabled_extensions`` set to :data:`LIGHT`), ``progress`` (cold and warm on a
  site with the launch's progress page, ``progress-cold`` and ``progress-warm``).

Each site is visited once before the measured visits (not measured): the notebook page reports what
it loaded, as on any site that has been used (``web/pagefiles.py``). The ``first`` sides are a
restart of the site after a deploy: a new site process on the first site's compression cache folder,
which keeps its compressed copies and what its pages reported, as the notebook folder does.

Each visit also records where the page's time went: Chromium's ``Performance.getMetrics``
(``ScriptDuration``: compiling and running JavaScript; ``TaskDuration``: all main-thread work).
"""
import json
import os
import time

from bench.chrome import Chromium, click_to_result, wait_until

#: The lab extensions and plugins the ``light`` side leaves out of the page: none is part of what
#: the shell shows on a notebook page by default. Measured, not the default (docs/performance.rst).
LIGHT = ("@jupyterlab/extensionmanager-extension", "@jupyterlab/pluginmanager-extension",
         "@jupyterlab/lsp-extension", "@jupyterlab/hub-extension", "@jupyterlab/running-extension",
         "@jupyterlab/logconsole-extension", "@jupyterlab/csvviewer-extension", "@jupyterlab/pdf-extension",
         "@jupyterlab/audio-extension", "@jupyterlab/video-extension", "@jupyterlab/htmlviewer-extension",
         "@jupyterlab/imageviewer-extension", "@jupyter-notebook/lab-extension")


def _metrics(chrome):
    values = {m["name"]: m["value"] for m in chrome.driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]}
    return {"script_s": values.get("ScriptDuration"), "task_s": values.get("TaskDuration")}


def _visit(chrome, network, action, expression="a + b"):
    """One measured visit: (kernel idle s, result s, HTTP bytes, websocket bytes, page metrics)."""
    chrome.network(network)
    chrome.driver.execute_cdp_cmd("Performance.enable", {})
    try:
        idle, result, http, ws = click_to_result(chrome, action, expression)
        return idle, result, http, ws, _metrics(chrome)
    finally:
        chrome.network("loopback")
        chrome.driver.execute_cdp_cmd("Performance.disable", {})


def _record(results, **row):
    results.append(dict(row="floor", **row))
    print(json.dumps(results[-1]), flush=True)


def _click_shell(chrome):
    return lambda: chrome.browser.find_by_id("shell2").click()


def _stop_user(site, user="user"):
    from pyramid_notebook.backends.local.manager import NotebookManager

    NotebookManager(site.folder, fork_server=False).stop_notebook(user)


def _cold_and_warm(results, site, network, sample, side_cold="cold", side_warm="warm"):
    """A fresh profile's first click (server stopped), then its second visit (server running)."""
    from bench.browser import log_in

    _stop_user(site)
    chrome = Chromium()
    try:
        # The site's pages on the same link: their prefetches (preload_links) are not a loopback's.
        chrome.network(network)
        log_in(chrome, site)
        idle, result, http, ws, m = _visit(chrome, network, _click_shell(chrome))
        _record(results, network=network, sample=sample, side=side_cold, idle_s=idle, result_s=result,
                http_bytes=http, ws_bytes=ws, site_age_s=time.perf_counter() - site.started, **m)
        chrome.driver.get(site.url + "/")
        idle, result, http, ws, m = _visit(chrome, network, _click_shell(chrome))
        _record(results, network=network, sample=sample, side=side_warm, idle_s=idle, result_s=result,
                http_bytes=http, ws_bytes=ws, **m)
    finally:
        chrome.quit()


def _first_click(results, workdir, network, sample, after, side, **settings):
    """A fresh site, its first click ``after`` seconds after it started, in a fresh profile."""
    from bench.browser import Site, _forked, log_in

    site = Site(workdir, **settings)
    chrome = Chromium()
    try:
        chrome.network(network)
        log_in(chrome, site)
        late = time.perf_counter() - site.started
        wait_until(lambda: time.perf_counter() - site.started >= after, after + 60, interval=0.05)
        idle, result, http, ws, m = _visit(chrome, network, _click_shell(chrome))
        forked = _forked(site.context()["pid"])
    finally:
        chrome.quit()
        site.stop()
    _record(results, network=network, sample=sample, side=side, idle_s=idle, result_s=result, http_bytes=http,
            ws_bytes=ws, after_s=max(after, late), forked=forked, **m)


def _direct_warm(results, jupyter, notebook, network, sample):
    """The same notebook straight from Jupyter: a first visit (not measured), then the second."""
    chrome = Chromium()
    url = jupyter.url + f"notebooks/{notebook}?token={jupyter.token}"
    try:
        from bench.chrome import IDLE

        chrome.driver.get(url)
        wait_until(lambda: chrome.js(IDLE), 300, message="the direct notebook")
        chrome.driver.get("about:blank")
        idle, result, http, ws, m = _visit(chrome, network, lambda: chrome.driver.get(url), "'foo' + 'bar'")
        _record(results, network=network, sample=sample, side="direct", idle_s=idle, result_s=result,
                http_bytes=http, ws_bytes=ws, **m)
    finally:
        chrome.quit()


def _first_visit(site):
    """One launch (not measured): the page reports what it loaded; the user's notebook is made."""
    from bench.browser import log_in
    from bench.chrome import IDLE

    setup = Chromium()
    try:
        log_in(setup, site)
        setup.browser.find_by_id("shell2").click()
        wait_until(lambda: setup.js(IDLE), 300, message="the first launch")
        reports = os.path.join(site.folder, ".compress-cache")
        wait_until(lambda: any(n.startswith("page-files-") for n in os.listdir(reports)), 60,
                   message="the notebook page's report")
    finally:
        setup.quit()


def measure_floor(results, workdir, networks, samples, after, settle, sides=()):
    """Every side of the row, interleaved per sample; the long-running sites start first."""
    from bench.browser import PlainJupyter, Site

    site = Site(workdir)
    light = Site(workdir, **{"pyramid_notebook.disabled_extensions": " ".join(LIGHT)}) if "light" in sides else None
    paged = Site(workdir, **{"pyramid_notebook.progress_page": "true"}) if "progress" in sides else None
    jupyter = None
    try:
        for each in (site, light, paged):
            if each is not None:
                _first_visit(each)
        notebook = site.context()["notebook_name"]
        cache = {"pyramid_notebook.compress_cache": os.path.join(site.folder, ".compress-cache")}
        jupyter = PlainJupyter(workdir, os.path.join(site.folder, "user", notebook))
        wait_until(lambda: time.perf_counter() - site.started >= settle, settle + 60, interval=0.5,
                   message="the site to have run for --settle seconds")
        for network in networks:
            for sample in range(samples):
                sides_now = [("cold", lambda: _cold_and_warm(results, site, network, sample)),
                             ("first", lambda: _first_click(results, workdir, network, sample, after, "first",
                                                            **cache))]
                if "warmup-off" in sides:
                    sides_now.append(("first-warmup-off", lambda: _first_click(
                        results, workdir, network, sample, after, "first-warmup-off",
                        **{"pyramid_notebook.warm_up": "false"}, **cache)))
                if paged is not None:
                    sides_now.append(("progress", lambda: _cold_and_warm(results, paged, network, sample,
                                                                         "progress-cold", "progress-warm")))
                sides_now.append(("direct", lambda: _direct_warm(results, jupyter, notebook, network, sample)))
                if light is not None:
                    sides_now.append(("light", lambda: _cold_and_warm(results, light, network, sample, "light-cold",
                                                                      "light-warm")))
                for side, measure in sides_now:
                    try:
                        measure()
                    except Exception as e:  # noqa: BLE001 - one failed visit (a loaded machine) is recorded, not fatal
                        results.append({"row": "floor-error", "network": network, "sample": sample, "side": side,
                                        "error": f"{type(e).__name__}: {e}"[:500]})
                        print(json.dumps(results[-1]), flush=True)
    finally:
        site.stop()
        for each in (light, paged):
            if each is not None:
                each.stop()
        if jupyter is not None:
            jupyter.stop()


def floor_summary(results) -> list:
    """The issue's ratios, per network, from the medians of the ``floor`` rows."""
    import statistics

    lines = []
    for network in sorted({r["network"] for r in results if r["row"] == "floor"}):
        med = {}
        for side in ("cold", "warm", "first", "first-warmup-off", "direct", "light-cold", "light-warm",
                     "progress-cold", "progress-warm"):
            rows = [r for r in results if r["row"] == "floor" and r["network"] == network and r["side"] == side]
            if rows:
                med[side] = {k: statistics.median(r[k] for r in rows) for k in ("result_s", "idle_s", "http_bytes")}
        ratio = lambda a, b, k="result_s": (f"{med[a][k] / med[b][k]:.2f}" if a in med and b in med  # noqa: E731
                                            else "-")
        lines.append(f"floor {network}: cold/warm {ratio('cold', 'warm')} (idle {ratio('cold', 'warm', 'idle_s')};"
                     f" target <= 1.5), first/cold {ratio('first', 'cold')} (target <= 1.10), first without"
                     f" warm-up/cold {ratio('first-warmup-off', 'cold')}, warm site/direct {ratio('warm', 'direct')}"
                     f" (target <= 1.0), light warm/warm {ratio('light-warm', 'warm')} (<= 0.9 to be the default),"
                     f" with the progress page cold/warm {ratio('progress-cold', 'progress-warm')}")
    return lines
