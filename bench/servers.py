"""A forked notebook server's own memory after start and after a page (issue 33, "a hundred users").

    .venv/bin/python -m bench.servers [--servers 5] [--settle 10] [--no-page] [--output FILE]

``--servers`` users' servers per side, started interleaved (the first side alternating) with the
default settings otherwise (fork server, warm kernel, spare kernel, kernels forked from the zygote,
the demo site's startup as ``pshell demo.ini`` gives it). Two sides, each with its own fork server:

* ``without the page's imports``: the fork server without ``forkserver/page_preload.py``
  (``PYRAMID_NOTEBOOK_FORK_SERVER_PAGE_PRELOAD=0`` in its environment): what it was before;
* ``page preloaded (default)``: the fork server as shipped, which imports and loads before it forks
  what a server otherwise loads only once the notebook page asks for it (the export formats' menu,
  the language list, the REST handlers).

For each server: start -> ready (``start_notebook_on_demand``, which returns once the server
answers), then PSS and USS of the server process alone (not its kernels nor its zygote) once every
server's warm kernel is up and ``--settle`` seconds passed, and again after one notebook page load in
headless Chromium (a fresh cache per load, straight to the server with its secret, until the page
shows its cells and its kernel is connected and idle). Medians [min-max], side by side.

Server extensions were measured the same way and are not where the memory is: ``jupyter_lsp`` off
saves 0.5 MB USS per server (1 %), ``LanguageServerManager.autodetect`` off 0.3 MB, ``jupyterlab``
off 0.4 MB; and the page then asks ``lsp/status`` (JupyterLab's own LSP client) and logs a 404, while
``jupyterlab`` serves the page's "JupyterLab" link. A forked server's USS is pages it copies from the
fork server (objects it touches) more than what it allocates (2 MB at start, under tracemalloc).
"""
import argparse
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.common import wait_until  # noqa: E402
from pyramid_notebook.forkserver.page_preload import PAGE_PRELOAD_ENV  # noqa: E402

#: The sides: label, and whether its fork server preloads the page's imports.
SIDES = (("without the page's imports", False), ("page preloaded (default)", True))


def _memory(pid) -> tuple:
    """(PSS, USS) in MiB of the process alone."""
    import psutil

    info = psutil.Process(pid).memory_full_info()
    return info.pss / 2**20, info.uss / 2**20


def _context(ini):
    from pyramid_notebook.core.startup import make_startup

    nb = {"context_hash": "bench-servers", "greeting": "", "notebook_path": "/notebook/"}
    make_startup(nb, ini)
    return nb


def _connected(ctx) -> bool:
    """True once one of the server's kernels has a websocket (the page's) and is idle."""
    import requests

    kernels = requests.get(f"http://127.0.0.1:{ctx['http_port']}/notebook/api/kernels", timeout=10,
                           headers={"Authorization": "token " + ctx["token"]}).json()
    return any(k.get("connections") and k.get("execution_state") == "idle" for k in kernels)


def _load_page(browser, ctx):
    """One notebook page, cold cache, straight to the server: shown, its kernel connected and idle."""
    from selenium.webdriver.common.by import By

    driver = browser.driver
    driver.delete_all_cookies()
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": "token " + ctx["token"]}})
    browser.visit(f"http://127.0.0.1:{ctx['http_port']}/notebook/notebooks/{ctx['notebook_name']}")
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .cm-content") and _connected(ctx), 120, 0.2)
    browser.visit("about:blank")  # the page's websockets closed: the server's idle state again


def _fmt(values):
    return f"{statistics.median(values):7.1f} [{min(values):.1f}-{max(values):.1f}]"


def _fork_server(workdir, label, preload, size):
    """A manager with its own notebook folder and fork server; ``preload``: with the page's imports."""
    from pyramid_notebook.notebookmanager import NotebookManager
    from tests.helpers import random_port_base

    folder = os.path.join(workdir, label.replace(" ", "-"))
    os.makedirs(folder, exist_ok=True)
    manager = NotebookManager(folder, min_port=random_port_base(size), port_range=size, fork_server=True,
                              max_notebooks=size)
    saved = os.environ.get(PAGE_PRELOAD_ENV)
    if not preload:  # the fork server's only: its servers get the environment of each start
        os.environ[PAGE_PRELOAD_ENV] = "0"
    try:
        manager.start_fork_server()
    finally:
        if saved is None:
            os.environ.pop(PAGE_PRELOAD_ENV, None)
        else:
            os.environ[PAGE_PRELOAD_ENV] = saved
    manager.fork_server.wait_until_ready(timeout=180)
    return manager


def run(servers=5, settle=10.0, page=True):
    """Start, measure, print; returns ``{label: {row: [values]}}``."""
    from tests.conftest import write_demo_ini
    from tests.helpers import stop_all_notebooks

    workdir = tempfile.mkdtemp(prefix="bench-servers-")
    context = _context(write_demo_ini(pathlib.Path(workdir), os.path.join(workdir, "today")))
    labels = [label for label, _ in SIDES]
    managers = {}
    rows = {label: {"start -> ready (ms)": [], "PSS after start (MB)": [], "USS after start (MB)": [],
                    "PSS after a page (MB)": [], "USS after a page (MB)": []} for label in labels}
    names = [f"u{i}" for i in range(servers)]
    browser = profile = None
    try:
        for label, preload in SIDES:
            managers[label] = _fork_server(workdir, label, preload, servers + 4)
        for i, name in enumerate(names):
            # Interleaved, the first side alternating: the machine's load falls on both alike.
            for label in (labels if i % 2 == 0 else labels[::-1]):
                start = time.perf_counter()
                managers[label].start_notebook_on_demand(name, dict(context))
                rows[label]["start -> ready (ms)"].append((time.perf_counter() - start) * 1000)
        for label in labels:
            for name in names:
                wait_until(lambda: "warm_session" in (managers[label].get_notebook_status(name) or {}), 120)
        time.sleep(settle)  # spare kernels started, start-up's garbage gone: the idle server
        contexts = {label: [managers[label].get_notebook_status(name) for name in names] for label in labels}
        _read(rows, contexts, "after start")
        forkers = {label: _fork_server_memory(managers[label]) for label in labels}
        if page:
            from tests.browser import make_browser

            browser, profile = make_browser()
            for i in range(servers):
                for label in labels:
                    _load_page(browser, contexts[label][i])
            time.sleep(settle)
            _read(rows, contexts, "after a page")
    finally:
        if browser is not None:
            browser.quit()
        for manager in managers.values():
            stop_all_notebooks(manager.notebook_folder)
        for folder in (profile, workdir):
            if folder:
                shutil.rmtree(folder, ignore_errors=True)
    print(f"{servers} servers per side, forked, default settings; median [min-max]")
    print(f"{'row':24}" + "".join(f"{label:>26}" for label in labels) + f"{'ratio':>8}")
    for row in rows[labels[0]]:
        if not rows[labels[0]][row]:
            continue
        medians = [statistics.median(rows[label][row]) for label in labels]
        print(f"{row:24}" + "".join(f"{_fmt(rows[label][row]):>26}" for label in labels) +
              f"{medians[1] / medians[0]:8.2f}")
    for label in labels:
        print(f"{label}: fork server (paid once per site) RSS {forkers[label][0]:.1f} MB, USS {forkers[label][1]:.1f} MB")
        rows[label]["fork server RSS, USS (MB)"] = list(forkers[label])
    return rows


def _fork_server_memory(manager) -> tuple:
    """(RSS, USS) in MiB of the fork server process."""
    import psutil

    from pyramid_notebook.core.process import read_pid_file

    info = psutil.Process(read_pid_file(manager.fork_server.pid_file)).memory_full_info()
    return info.rss / 2**20, info.uss / 2**20


def _read(rows, contexts, when):
    for label, servers in contexts.items():
        for ctx in servers:
            pss, uss = _memory(ctx["pid"])
            rows[label][f"PSS {when} (MB)"].append(pss)
            rows[label][f"USS {when} (MB)"].append(uss)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=5, help="servers per side (default 5)")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds idle before each reading (default 10)")
    parser.add_argument("--no-page", action="store_true", help="skip the page loads (and their rows)")
    parser.add_argument("--output", default="", help="also write the samples as JSON to this file")
    args = parser.parse_args(argv)
    rows = run(args.servers, args.settle, page=not args.no_page)
    if args.output:
        import json

        with open(args.output, "w") as f:
            json.dump({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "servers": args.servers, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
