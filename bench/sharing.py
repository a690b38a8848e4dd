"""Live shared sessions as two people live them (issue 31): ``.venv/bin/python bench/sharing.py``.

The demo site under uvicorn (websockets through the site, loopback) with ``collaboration = always``; two
headless Chromiums, the owner (``user``) and a guest (``user2``, a collaborate grant):

* **typing**: the owner types a short word into a cell (DevTools ``Input.insertText``, what a keystroke
  inserts); the guest's page notes when its editor shows it (a ``MutationObserver``, the page's own clock:
  both browsers read the one system clock). ``--typings`` words, p50 and p95 in milliseconds
  (target p95 <= 250 ms);
* **guest click -> ready** against **owner's warm visit**, interleaved: the guest opens the grant's link,
  the owner opens Shell 2 again (their server running), each until the notebook's kernel shows idle.
  The ratio of medians (target <= 1.2).

Prints a table and the numbers as JSON (``--output``); docs/performance.rst records them. The cost of
loading jupyter-collaboration at all (page bytes, PSS, kernel round trip) is ``bench/collaboration.py``.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.browser import Site  # noqa: E402
from bench.chrome import IDLE, Chromium, wait_until  # noqa: E402

#: Installed in the guest's page: when each wanted word first shows in a cell's editor, on the page's clock.
OBSERVER = """
window.__want = window.__want || []; window.__seen = window.__seen || {};
if (!window.__observer) {
  const look = () => {
    if (!window.__want.length) return;
    const now = performance.timeOrigin + performance.now();
    const text = Array.from(document.querySelectorAll('.jp-CodeCell .cm-content')).map(e => e.textContent).join('\\n');
    for (const word of window.__want) { if (!(word in window.__seen) && text.includes(word)) window.__seen[word] = now; }
  };
  window.__observer = new MutationObserver(look);
  window.__observer.observe(document.body, {subtree: true, childList: true, characterData: true});
}
"""


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def _login(chrome, site, user):
    from tests.test_browser import log_in

    log_in(chrome.browser, site.url, user)


def _grant(site):
    from tests.helpers import login

    s = login(site.url, "user")
    r = s.post(site.url + "/notebook/shares", json={"with": "user2", "mode": "collaborate", "expires_in": 3600},
               headers={"Origin": site.url})
    assert r.status_code == 201, r.text
    return r.json()


def _focus_end_of_last_cell(chrome):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    def attempt():
        editors = chrome.driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .cm-content")
        if not editors:
            return False
        editors[-1].click()
        ActionChains(chrome.driver).key_down(Keys.CONTROL).send_keys(Keys.END).key_up(Keys.CONTROL).perform()
        return True

    wait_until(attempt, 120, interval=0.5, message="the last cell's editor")


def typing(owner, guest, count):
    """Milliseconds from the owner's keystroke to the guest's editor showing it, ``count`` times."""
    guest.js(OBSERVER)
    _focus_end_of_last_cell(owner)
    owner.driver.execute_cdp_cmd("Input.insertText", {"text": "# "})
    latencies = []
    for i in range(count):
        word = f"w{i}x{os.urandom(3).hex()} "
        guest.js(f"window.__want.push({json.dumps(word.strip())})")
        sent = time.time() * 1000
        owner.driver.execute_cdp_cmd("Input.insertText", {"text": word})
        seen = wait_until(lambda: guest.js(f"return window.__seen[{json.dumps(word.strip())}]"), 30, interval=0.01,
                          message="the word in the guest's editor")
        latencies.append(seen - sent)
        time.sleep(0.05)  # pacing between keystrokes, as a typist's (not a synchronisation)
    return latencies


def visit_until_idle(chrome, url):
    start = time.perf_counter()
    chrome.browser.visit(url)
    wait_until(lambda: chrome.js(IDLE), 300, interval=0.01, message="the kernel to be idle")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--typings", type=int, default=60)
    parser.add_argument("--visits", type=int, default=7)
    parser.add_argument("--output", default="")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="bench-sharing-")
    site = Site(workdir, **{"pyramid_notebook.collaboration": "always"})
    owner = guest = None
    try:
        owner, guest = Chromium(), Chromium()
        _login(owner, site, "user")
        _login(guest, site, "user2")
        visit_until_idle(owner, site.url + "/shell2")  # the server starts: not a warm visit
        grant = _grant(site)
        visit_until_idle(guest, grant["url"])  # the guest's first visit fills its cache, as the owner's did
        owner_warm, guest_click = [], []
        for _ in range(args.visits):
            owner_warm.append(visit_until_idle(owner, site.url + "/shell2"))
            guest_click.append(visit_until_idle(guest, grant["url"]))
        latencies = typing(owner, guest, args.typings)
    finally:
        for chrome in (owner, guest):
            if chrome is not None:
                chrome.quit()
        site.stop()
    result = {
        "typing_ms": {"p50": round(percentile(latencies, 50), 1), "p95": round(percentile(latencies, 95), 1),
                      "max": round(max(latencies), 1), "n": len(latencies)},
        "owner_warm_visit_s": round(statistics.median(owner_warm), 3),
        "guest_click_ready_s": round(statistics.median(guest_click), 3),
        "guest_over_owner": round(statistics.median(guest_click) / statistics.median(owner_warm), 3),
        "visits": args.visits,
    }
    print(f"owner types -> guest sees   p50 {result['typing_ms']['p50']} ms   p95 {result['typing_ms']['p95']} ms"
          f"   (n={len(latencies)}; target p95 <= 250 ms)")
    print(f"guest click -> ready {result['guest_click_ready_s']} s   owner warm visit {result['owner_warm_visit_s']} s"
          f"   ratio {result['guest_over_owner']} (target <= 1.2)")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
