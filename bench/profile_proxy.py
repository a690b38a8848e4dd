"""Where a proxied small API call spends its time, in-process, under pyinstrument.

    .venv/bin/python bench/profile_proxy.py [N]

Starts one notebook through the bench app, captures the WSGI environ waitress builds
for ``GET /notebook/api/status``, then calls the app N times (default 1000) with it —
no web server in between, so what shows is Pyramid, pyramid_notebook and the round trip
to Jupyter — and prints pyinstrument's call tree. For scale it times the same call made
with a bare http.client passthrough and straight to Jupyter.
"""
import io
import os
import statistics
import sys
import tempfile
import threading
import time
import http.client

import requests
from pyinstrument import Profiler
from waitress.server import create_server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.sites import Site, launch_and_load  # noqa: E402


def waitress_environ(path, headers):
    """The environ waitress builds for a GET of ``path``."""
    captured = {}

    def capture(environ, start_response):
        captured.update(environ)
        start_response("200 OK", [])
        return [b""]

    server = create_server(capture, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    requests.get(f"http://127.0.0.1:{server.effective_port}{path}", headers=headers)
    server.close()
    return captured


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    site = Site("waitress", tempfile.mkdtemp(prefix="pyramid-notebook-profile-"))
    try:
        launch_and_load(site, "profile")
        context = site.context("profile")
        from bench.app import make_app

        app = make_app(site.folder)
        environ = waitress_environ("/notebook/api/status", {"X-Bench-User": "profile"})

        def proxied():
            env = dict(environ, **{"wsgi.input": io.BytesIO(b"")})
            body = app(env, lambda *args: None)
            b"".join(body)
            getattr(body, "close", lambda: None)()

        conn = http.client.HTTPConnection("127.0.0.1", context["http_port"])
        auth = {"Authorization": "token " + context["token"]}

        def direct():
            conn.request("GET", "/notebook/api/status", headers=auth)
            conn.getresponse().read()

        timings = {"proxied (Pyramid + pyramid_notebook)": [], "direct (http.client -> Jupyter)": []}
        for _ in range(n):
            for label, call in zip(timings, (proxied, direct)):
                start = time.perf_counter()
                call()
                timings[label].append(time.perf_counter() - start)
        for label, values in timings.items():
            print(f"{label:40} p50 {statistics.median(values) * 1000:.3f} ms")

        profiler = Profiler(interval=0.0002)
        profiler.start()
        for _ in range(n):
            proxied()
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False, show_all=False))
    finally:
        site.session("profile").get(site.url + "/notebook/shutdown", allow_redirects=False)
        site.stop()


if __name__ == "__main__":
    main()
