"""Benchmark team recipes (issue 36) through the real demo site: 1,000 recipes listed, a 5 MB notebook's
page rendered, publishes.

    .venv/bin/python bench/recipes.py [--recipes 1000] [--samples 100] [--output bench/recipes-results.json]

The demo app runs in waitress in this process, on loopback; a logged-in ``requests`` session asks it.
The library is filled through :class:`~pyramid_notebook.core.recipes.RecipeLibrary` (one commit per
recipe, as publishes make them), then measured over HTTP:

* the list, JSON and HTML, p50 (targets: 50 ms and 100 ms);
* a 5 MB notebook's page (outputs: text and a 4 MB PNG): its first render, and cached;
* a publish (``POST /notebook/recipes``, a small notebook, into the 1,000-recipe library), p50.

This machine is shared: read the medians, not single samples.
"""
import argparse
import base64
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

import nbformat
import requests
import waitress.server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pyramid_notebook.core.recipenb import normalize, title_and_description  # noqa: E402
from pyramid_notebook.core.recipes import library  # noqa: E402

TARGETS_MS = {"list_json_p50": 50, "list_html_p50": 100}


def small_notebook(i: int) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# Recipe {i}\n\nWhat recipe {i} does, in one paragraph."))
    cell = nbformat.v4.new_code_cell(f"print({i} * 2)", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", text=f"{i * 2}\n")]
    nb.cells.append(cell)
    return nb


def big_notebook(size=5 << 20) -> nbformat.NotebookNode:
    """About ``size`` bytes: 200 cells of code and text output, and one 4 MB image."""
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# A big recipe\n\nMany cells, a large image."))
    for i in range(200):
        cell = nbformat.v4.new_code_cell(f"rows = query({i})\nrows", execution_count=i + 1)
        cell.outputs = [nbformat.v4.new_output("stream", text="row " * 400 + "\n")]
        nb.cells.append(cell)
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + os.urandom(int((size - len(nbformat.writes(nb))) * 0.74))).decode()
    cell = nbformat.v4.new_code_cell("plot()", execution_count=201)
    cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})]
    nb.cells.append(cell)
    return nb


def p50_ms(samples) -> float:
    return round(statistics.median(samples) * 1000, 2)


def timed(fn, count):
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def serve(folder):
    from pyramid.paster import get_app

    ini = os.path.join(folder, "bench.ini")
    with open(ini, "w") as f:
        f.write("[app:main]\nuse = egg:pyramid_notebook#demo\n"
                f"pyramid_notebook.notebook_folder = {folder}/notebooks\n"
                f"sqlalchemy.url = sqlite:///{folder}/demo.sqlite\npyramid_notebook.fork_server = false\n")
    app = get_app(ini, "main")
    server = waitress.server.create_server(app, host="127.0.0.1", port=0, threads=8)
    threading.Thread(target=server.run, daemon=True).start()
    return app, server, f"http://127.0.0.1:{server.effective_port}"


def report(results: dict, targets_ms: dict, output: str) -> None:
    """Add each target's verdict to ``results``, print them as JSON, and write them to ``output`` if named."""
    for key, target in targets_ms.items():
        results[key + "_verdict"] = "met" if results[key] <= target else "missed"
    print(json.dumps(results, indent=2))
    if output:
        with open(output, "w") as f:
            json.dump(results, f, indent=2)


def stop(server, app, folder) -> None:
    """Stop the in-process site (its server, its notebooks) and remove its folder."""
    if server is not None:
        server.close()
    manager = getattr(getattr(app, "registry", None), "pyramid_notebook_manager", None)
    if manager is not None:
        manager.close()
    shutil.rmtree(folder, ignore_errors=True)


def login(base) -> requests.Session:
    import re

    s = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"', s.get(base + "/login").text).group(1)
    r = s.post(base + "/login", data={"username": "user", "password": "password", "csrf_token": token},
               allow_redirects=False)
    assert r.status_code == 302
    return s


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench-recipes-")
    app, server = None, None
    try:
        app, server, base = serve(folder)
        session = login(base)
        lib = library(os.path.join(folder, "notebooks", ".recipes"))
        start = time.perf_counter()
        for i in range(args.recipes):
            data, nb = normalize(nbformat.writes(small_notebook(i)).encode(), 20 << 20)
            author = "user" if i % 2 else "user2"
            lib.publish(f"recipe-{i:04d}", data, author, f"Recipe {i}", *title_and_description(nb))
        fill_s = time.perf_counter() - start
        json_headers = {"Accept": "application/json"}
        assert len(session.get(base + "/notebook/recipes", headers=json_headers).json()["recipes"]) == args.recipes
        list_json = timed(lambda: session.get(base + "/notebook/recipes", headers=json_headers), args.samples)
        list_html = timed(lambda: session.get(base + "/notebook/recipes"), args.samples)

        user_folder = os.path.join(folder, "notebooks", "user")
        os.makedirs(user_folder, exist_ok=True)
        nbformat.write(big_notebook(), os.path.join(user_folder, "big.ipynb"))
        big_size = os.path.getsize(os.path.join(user_folder, "big.ipynb"))
        publish_headers = {"Origin": base, "Content-Type": "application/json", "Accept": "application/json"}
        r = session.post(base + "/notebook/recipes", data=json.dumps({"path": "big.ipynb", "name": "big"}),
                         headers=publish_headers)
        assert r.status_code == 201, r.text
        first = timed(lambda: session.get(base + "/notebook/recipes/big"), 1)
        cached = timed(lambda: session.get(base + "/notebook/recipes/big"), max(10, args.samples // 5))
        page_bytes = len(session.get(base + "/notebook/recipes/big").content)

        nbformat.write(small_notebook(-1), os.path.join(user_folder, "small.ipynb"))
        counter = iter(range(10 ** 6))
        publish = timed(lambda: session.post(base + "/notebook/recipes", headers=publish_headers, data=json.dumps(
            {"path": "small.ipynb", "name": f"new-{next(counter)}", "message": "bench"})), max(10, args.samples // 3))
        results = {
            "recipes": args.recipes, "fill_seconds": round(fill_s, 1),
            "list_json_p50": p50_ms(list_json), "list_html_p50": p50_ms(list_html),
            "big_notebook_bytes": big_size, "big_page_bytes": page_bytes,
            "big_first_render_ms": round(first[0] * 1000, 1), "big_cached_p50": p50_ms(cached),
            "publish_p50": p50_ms(publish), "samples": args.samples, "load_average": os.getloadavg(),
        }
        report(results, TARGETS_MS, args.output)
        session.close()
    finally:
        stop(server, app, folder)


if __name__ == "__main__":
    main()
