"""The "Share…" dialog of the shipped lab extension (issue 31), in a real headless Chromium.

Notebook 7's File menu (and JupyterLab's command palette) opens it on Shell 2: share with user2,
see the link the site made, see the grant listed, revoke it; a refused share shows the site's own
error. The site's JSON API does the work (tests/test_shares.py tests it on its own).
"""
import os

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By

from tests.browser import CHROMEDRIVER, CHROMIUM
from tests.helpers import login, wait_for
from tests.test_browser import click_palette_command, log_in, open_file_menu, output_text, run_in_last_cell
from tests.test_recipes_browser import _click_menu_item

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (scripts/test installs them)")

SHARE_LABEL = "Share…"


def _text(browser, element_id):
    try:
        found = browser.driver.find_elements(By.ID, element_id)
        return found[0].text if found else ""
    except WebDriverException:
        return ""


def _given(base):
    r = login(base, "user").get(base + "/notebook/shares")
    assert r.status_code == 200, r.text
    return r.json()["given"]


def test_share_from_the_file_menu_see_the_link_and_revoke(browser, demo_server, notebook_folder):
    base = demo_server.url
    log_in(browser, base, "user")
    browser.find_by_id("shell2").click()
    assert browser.is_text_present("Available variables", wait_time=90)
    labels = open_file_menu(browser)
    assert SHARE_LABEL in labels, labels
    _click_menu_item(browser, SHARE_LABEL)
    wait_for(lambda: "Nobody" in _text(browser, "pyramid-notebook-share-list"), timeout=30,
             message="the empty list of shares")

    # A refused share: the site's 400 error, shown as it said it.
    browser.find_by_id("pyramid-notebook-share-with").first.type("user")
    browser.find_by_id("pyramid-notebook-share-submit").first.click()
    error = wait_for(lambda: _text(browser, "pyramid-notebook-share-error"), timeout=30, message="the error")
    assert "yourself" in error.lower(), error

    # Share with user2, to collaborate, for 15 minutes.
    field = browser.find_by_id("pyramid-notebook-share-with").first
    field.clear()
    field.type("user2")
    browser.find_by_id("pyramid-notebook-share-mode").first.select("collaborate")
    browser.find_by_id("pyramid-notebook-share-expires").first.select("900")
    browser.find_by_id("pyramid-notebook-share-submit").first.click()
    link = wait_for(lambda: browser.driver.find_elements(By.ID, "pyramid-notebook-share-link"), timeout=30,
                    message="the link")[0].get_attribute("value")
    [grant] = _given(base)
    assert link == grant["url"] and "/notebook/shared/" in link
    assert (grant["with"], grant["mode"]) == ("user2", "collaborate")
    assert _text(browser, "pyramid-notebook-share-error") == ""
    item = wait_for(lambda: [e for e in browser.driver.find_elements(By.CSS_SELECTOR, ".pyramid-notebook-share-item")
                             if e.get_attribute("data-with") == "user2"], timeout=30, message="the grant listed")[0]
    assert "collaborate" in item.text and "not connected" in item.text
    # The grantee's link works for them.
    r = login(base, "user2").get(link)
    assert r.status_code == 200, r.text

    # Revoke: gone from the site and from the dialog's list; the link now says so.
    item.find_element(By.CSS_SELECTOR, ".pyramid-notebook-share-revoke").click()
    wait_for(lambda: "Nobody" in _text(browser, "pyramid-notebook-share-list"), timeout=30,
             message="the list without the grant")
    assert _given(base) == []
    r = login(base, "user2").get(link)
    assert r.status_code == 403 and "revoked" in r.text

    # With the default collaboration "auto", the share loaded the collaboration into the running
    # server; the dialog offers the reload after which the owner's page co-edits live, and runs cells.
    browser.find_by_id("pyramid-notebook-share-reload").first.click()
    wait_for(lambda: '"pyramidNotebookCollaboration": "live"' in (browser.driver.execute_script(
        "var e = document.getElementById('jupyter-config-data'); return e ? e.textContent : ''") or ""),
        timeout=90, interval=0.5, message="the page reloaded, co-editing live")
    assert browser.is_text_present("Available variables", wait_time=90)
    run_in_last_cell(browser, "print('still' + ' running')")
    wait_for(lambda: "still running" in output_text(browser), timeout=120, message="the cell's output")


def test_jupyterlab_command_palette_has_share(browser, demo_server, notebook_folder):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    log_in(browser, demo_server.url, "user")
    browser.find_by_id("shell2").click()
    assert browser.is_text_present("Available variables", wait_time=90)
    name = browser.url.rsplit("/", 1)[1]
    browser.visit(f"{demo_server.url}/notebook/lab/tree/{name}")
    assert browser.is_text_present("Available variables", wait_time=90)
    assert SHARE_LABEL in open_file_menu(browser)
    ActionChains(browser.driver).send_keys(Keys.ESCAPE).perform()
    click_palette_command(browser, "Share", lambda text: text.strip().startswith("Share…"))
    wait_for(lambda: "Nobody" in _text(browser, "pyramid-notebook-share-list"), timeout=30,
             message="the dialog from the palette")
