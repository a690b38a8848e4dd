"""Bench: another page's shell in a running server, beside a cold launch in the same run.

    .venv/bin/python bench/second_shell.py [--samples 5] [--output bench/second_shell.json]

Each round, for one user of the bench app (bench/app.py) under waitress:

* cold: the notebook is not running; click (the launch request) -> redirect -> notebook page ->
  the page's session -> websocket -> ``a + b``'s result (the ``click`` row of bench/run.py);
* second shell: the server runs with the first page's shell; a click on another page's shell
  (``?page=N``, a context whose server part is the same, never opened before) -> redirect -> page
  -> that context's session -> websocket -> ``page``'s result: that context's own kernel, forked
  from the site's kernel zygote on the click (the default, ``spare_kernel = false``);
* next shell: the same with a third page;
* with ``spare_kernel = always`` (another user, its own server; for comparison, no target): a
  spare kernel (``server/spare_kernel.py``) ready before the first hop takes the other page's shell.

Then the notebook is shut down and the next round starts. Target: the p50 at most half the cold
launch's.
"""
import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.common import HEADER, Channel, Results, first_result as _first_result, ms, stats, wait_until  # noqa: E402
from bench.common import session_like_the_page as _session_like_the_page  # noqa: E402
from bench.sites import Site  # noqa: E402


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


def _spare_ready(site, user):
    """True once the user's server has a ready kernel no session uses (the spare, see server/spare_kernel.py)."""
    import requests

    ctx = site.context(user)
    base = f"http://127.0.0.1:{ctx['http_port']}/notebook/api/"
    auth = {"Authorization": "token " + ctx["token"]}
    answers = [requests.get(base + what, headers=auth, timeout=10) for what in ("kernels", "sessions")]
    if any(r.status_code != 200 for r in answers):
        raise RuntimeError(f"the notebook server answered {[(r.status_code, r.text[:200]) for r in answers]}")
    # Started and answering (Jupyter saw its first "idle"), as after a few seconds on the page.
    kernels = {k["id"] for k in answers[0].json() if k.get("execution_state") == "idle"}
    used = {x["kernel"]["id"] for x in answers[1].json()}
    return bool(kernels - used)


def measure_second_shell(results, site, n):
    """The other shells' rows, with the cold launch's beside them."""
    cold, first, later, spared = [], [], [], []
    for i in range(n):
        page = 100 * (i + 1)
        # The default (spare_kernel = false): each other page's shell forks its kernel on the click.
        cold.append(click_to_result(site, "second", "page=1", "a + b", "'foobar'"))
        pid = site.context("second")["pid"]
        first.append(click_to_result(site, "second", f"page={page}", "page", str(page)))
        later.append(click_to_result(site, "second", f"page={page + 1}", "page", str(page + 1)))
        assert site.context("second")["pid"] == pid, "another shell restarted the server"
        site.session("second").get(site.url + "/notebook/shutdown", allow_redirects=False)
        # spare_kernel = always (another user, its own server): a spare is ready before the first hop,
        # as a few seconds after the start, while the user reads the first page.
        click_to_result(site, "spare", "page=1&spare=always", "a + b", "'foobar'")
        wait_until(lambda: _spare_ready(site, "spare"), 60, 0.05)
        spared.append(click_to_result(site, "spare", f"page={page}&spare=always", "page", str(page)))
        site.session("spare").get(site.url + "/notebook/shutdown", allow_redirects=False)
    c = stats([ms(x) for x in cold])
    results.add("cold launch: click -> first result", c)
    for label, values, target in (("second page's shell (default: its kernel forked on the click)", first, True),
                                  ("next page's shell (default)", later, True),
                                  ("second page's shell, spare_kernel = always (the spare)", spared, False)):
        s = stats([ms(x) for x in values])
        ratio = s["median"] / c["median"]
        if target:
            results.add(f"{label}: click -> answer", s, c, target="<= 0.5", passed=ratio <= 0.5, ratio=ratio,
                        note="p50; baseline: the cold launch above, same run")
        else:
            results.add(f"{label}: click -> answer", s, c, ratio=ratio,
                        note="p50; not the default: a kernel started ahead (for comparison)")


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
