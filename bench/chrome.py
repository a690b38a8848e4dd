"""Headless Chromium for the browser bench (bench/browser.py): DevTools network emulation, bytes on
the wire from the performance log, and a notebook cell run to its result."""
import json
import os
import shutil
import time

NETWORKS = {
    "slow": {"offline": False, "latency": 40, "downloadThroughput": 20e6 / 8, "uploadThroughput": 5e6 / 8},
    "fast": {"offline": False, "latency": 10, "downloadThroughput": 100e6 / 8, "uploadThroughput": 100e6 / 8},
    "loopback": None,
}
def wait_until(condition, timeout=120.0, interval=0.02, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {message}")


class Chromium:
    """Headless Chromium (tests/browser.py's) with its DevTools performance log."""

    def __init__(self):
        from tests.browser import make_browser

        self.browser, self.profile = make_browser(performance_log=True)
        self.driver = self.browser.driver
        self.driver.execute_cdp_cmd("Network.enable", {})

    def network(self, name):
        conditions = NETWORKS[name]
        if conditions is None:
            conditions = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
        self.driver.execute_cdp_cmd("Network.emulateNetworkConditions", conditions)

    def clear_cache(self):
        self.driver.execute_cdp_cmd("Network.clearBrowserCache", {})

    def drain(self):
        """Forget the DevTools events so far."""
        self.driver.get_log("performance")

    def bytes(self):
        """(HTTP bytes on the wire, websocket payload bytes) since the last drain."""
        http = ws = 0
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            method, params = message.get("method"), message.get("params", {})
            if method == "Network.loadingFinished":
                http += params.get("encodedDataLength", 0)
            elif method in ("Network.webSocketFrameReceived", "Network.webSocketFrameSent"):
                ws += len(params.get("response", {}).get("payloadData", ""))
        return http, ws

    def js(self, script):
        return self.driver.execute_script(script)

    def quit(self):
        self.browser.quit()
        shutil.rmtree(self.profile, ignore_errors=True)


IDLE = "return !!document.querySelector('.jp-Notebook-ExecutionIndicator[data-status=\"idle\"]')"


def _outputs(chrome):
    return chrome.js("return Array.from(document.querySelectorAll('.jp-OutputArea-output')).map(e => e.innerText)"
                     ".join('\\n')") or ""


def run_cell(chrome, code, expect, timeout=180):
    """Type ``code`` in the last cell, run it, wait until ``expect`` is in the outputs."""
    from tests.test_browser import run_in_last_cell

    run_in_last_cell(chrome.browser, code, timeout=timeout)
    wait_until(lambda: expect in _outputs(chrome), timeout, message=f"output {expect!r}")


def log_in(chrome, site):
    from tests.test_browser import log_in as login

    login(chrome.browser, site.url)


def click_to_result(chrome, start_page_action, expression="a + b"):
    """(seconds to kernel idle, seconds to ``a + b`` shown, HTTP bytes, websocket bytes)."""
    marker = os.urandom(4).hex()  # a result of its own: the notebook may have kept earlier outputs
    code, expect = f"{expression} + '{marker}'", f"foobar{marker}"
    chrome.drain()
    start = time.perf_counter()
    start_page_action()
    wait_until(lambda: chrome.js(IDLE), 300, message="the kernel to be idle")
    idle = time.perf_counter() - start
    run_cell(chrome, code, expect)
    result = time.perf_counter() - start
    http, ws = chrome.bytes()
    return idle, result, http, ws
