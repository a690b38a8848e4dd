"""Bench: another page's shell in a running server, beside a cold launch in the same run.

    .venv/bin/python bench/second_shell.py [--samples 5] [--output bench/second_shell.json]

Each round, for one user of the bench app (bench/app.py) under waitress:

* cold: the notebook is not running; click (the launch request) -> redirect -> notebook page ->
  the page's session -> websocket -> ``a + b``'s result (the ``click`` row of bench/run.py);
* second shell: the server runs with the first page's shell; a click on another page's shell
  (``?page=N``, a context whose server part is the same, never opened before) -> redirect ->
  page -> that context's session -> websocket -> ``page``'s result: that context's own kernel
  answers with its own variable.

Then the notebook is shut down and the next round starts. Target: the second shell's p50 at most
half the cold launch's.
"""
import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.run import HEADER, Channel, Results, Site, _first_result, _session_like_the_page, ms, stats  # noqa: E402


def click_to_result(site, user, query, code, expected):
    """Seconds from the click on ``/shell?<query>`` to ``code``'s result in the launched notebook's kernel."""
    s = site.session(user)
    start = time.perf_counter()
    r = s.get(f"{site.url}/shell?{query}", allow_redirects=False)
    assert r.status_code == 302, r.text
    page = s.get(r.headers["Location"])
    assert page.status_code == 200
    name = r.headers["Location"].rsplit("/", 1)[1]
    kernel = _session_like_the_page(s, site.url + "/notebook/", name, {"Origin": site.url})
    ctx = site.context(user)
    channel = Channel(f"ws://127.0.0.1:{ctx['http_port']}/notebook/api/kernels/{kernel}/channels",
                      [f"Authorization: token {ctx['token']}"])
    try:
        assert _first_result(channel, code) == expected
    finally:
        channel.ws.close()
    return time.perf_counter() - start


def measure_second_shell(results, site, n):
    """The second shell's row, with the cold launch's beside it."""
    cold, second = [], []
    for i in range(n):
        cold.append(click_to_result(site, "second", "page=1", "a + b", "'foobar'"))
        pid = site.context("second")["pid"]
        second.append(click_to_result(site, "second", f"page={i + 2}", "page", str(i + 2)))
        assert site.context("second")["pid"] == pid, "the second shell restarted the server"
        site.session("second").get(site.url + "/notebook/shutdown", allow_redirects=False)
    c, s = stats([ms(x) for x in cold]), stats([ms(x) for x in second])
    ratio = s["median"] / c["median"]
    results.add("cold launch: click -> first result", c)
    results.add("second page's shell: click -> its kernel answers", s, c, target="<= 0.5", passed=ratio <= 0.5,
                ratio=ratio, note="p50; baseline: the cold launch above, same run")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "second_shell.json"))
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="pyramid-notebook-bench-")
    results = Results()
    print(HEADER)
    site = Site("waitress", workdir)
    try:
        measure_second_shell(results, site, args.samples)
    finally:
        site.stop()
    with open(args.output, "w") as f:
        json.dump({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": results.rows}, f, indent=2)
    print(f"\nWrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
