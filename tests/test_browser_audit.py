"""Sensitive code in a real browser (issue 32): with ``audit_sensitive_reason = required`` a cell matching
``audit_sensitive`` is refused by the notebook server, the page asks why in a dialog, writes the reason as the
cell's first line and runs it again; the trail keeps the reason with the cell (headless Chromium)."""
import os

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.browser import CHROMEDRIVER, CHROMIUM
from tests.helpers import wait_for
from tests.test_audit import records
from tests.test_audit_sensitive import REQUIRED
from tests.test_browser import _last_editor, log_in, wait_for_output

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (scripts/test installs them)")

REASON_INPUT = "pyramid-notebook-sensitive-reason"


def _dialog(driver):
    found = driver.find_elements(By.ID, REASON_INPUT)
    return found[0] if found and found[0].is_displayed() else None


def run_until_asked(browser, code, timeout=120):
    """Type ``code`` into the last cell and run it until the reason dialog shows (a page still initialising
    can swallow the keystrokes); return the cell."""
    driver = browser.driver
    wait_for(lambda: _last_editor(driver), timeout=60, message="a code cell editor")
    found = {}

    def attempt():
        if _dialog(driver) is not None:
            return True
        try:
            editor = found.get("editor") or _last_editor(driver)
            if editor is None:
                return False
            found["editor"] = editor
            found["cell"] = editor.find_element(By.XPATH, "./ancestor::div[contains(@class, 'jp-CodeCell')][1]")
            editor.click()
            if code not in editor.text:
                editor.send_keys(code)
            ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
        except WebDriverException:
            found.pop("editor", None)
            return False
        try:
            return wait_for(lambda: _dialog(driver) is not None, timeout=20, interval=0.2, message="the dialog")
        except AssertionError:
            return False

    wait_for(attempt, timeout=timeout, interval=0.5, message=f"the reason dialog for {code!r}")
    return found["cell"]


def test_a_sensitive_cell_asks_for_a_reason_and_runs_with_it(browser, make_demo_server, notebook_folder):
    server = make_demo_server(**REQUIRED)
    log_in(browser, server.url)
    browser.find_by_id("shell2").click()
    assert browser.is_text_present("a test variable", wait_time=90)
    cell = run_until_asked(browser, "print('DROP TABLE', 'pretend', 6 * 7)")
    driver = browser.driver
    dialog = driver.find_element(By.CSS_SELECTOR, ".jp-Dialog")
    assert "DROP\\s+TABLE" in dialog.text and "# reason:" in dialog.text, dialog.text
    assert not records(notebook_folder, "execute") or all("DROP" not in r["code"]
                                                          for r in records(notebook_folder, "execute"))
    driver.find_element(By.ID, REASON_INPUT).send_keys("ticket 77: check the <drop> path")
    driver.find_element(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept").click()

    wait_for_output(browser, "DROP TABLE pretend 42")
    editor_text = cell.find_element(By.CSS_SELECTOR, ".cm-content").text
    assert editor_text.splitlines()[0] == "# reason: ticket 77: check the <drop> path", editor_text
    refused = [r for r in records(notebook_folder, "refused") if r["msg_type"] == "execute_request"]
    assert refused and refused[0]["code"] == "print('DROP TABLE', 'pretend', 6 * 7)"
    assert refused[0]["patterns"] == ["DROP\\s+TABLE"]
    ran = [r for r in records(notebook_folder, "execute") if "DROP TABLE" in r["code"]]
    assert len(ran) == 1 and ran[0]["reason"] == "ticket 77: check the <drop> path" and ran[0]["sensitive"] is True
    assert ran[0]["code"].startswith("# reason: ticket 77")
