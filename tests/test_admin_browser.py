"""In headless Chromium: memory in the notebook's top bar, and the operator console's table."""
import os

import pytest
from selenium.webdriver.common.by import By

from tests.browser import ARTIFACTS, CHROMEDRIVER, CHROMIUM
from tests.helpers import CLICK, login, wait_for
from tests.test_browser import _text_on_page, log_in

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (scripts/test installs them)")


def _texts(driver, selector):
    from selenium.common.exceptions import WebDriverException

    try:
        return [e.text for e in driver.find_elements(By.CSS_SELECTOR, selector)]
    except WebDriverException:
        return []


def _screenshot(browser, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name)
    browser.driver.save_screenshot(path)
    return path


def test_memory_in_the_notebook_and_the_console_table(make_demo_server, browser):
    server = make_demo_server(**{"pyramid_notebook.memory_limit": "2G"})
    # user2's notebook, launched without a browser, shows in the console beside user's.
    other = login(server.url, "user2")
    assert other.get(server.url + "/shell2", allow_redirects=False, headers=CLICK).status_code == 302

    log_in(browser, server.url, "user")
    browser.visit(server.url + "/shell1")
    driver = browser.driver
    # jupyter-resource-usage in Notebook 7's top bar: "Mem: 180.52 / 2048.00 MB".
    indicator = wait_for(lambda: [t for t in _texts(driver, ".jp-IndicatorContainer") if "Mem" in t and "/" in t],
                         timeout=90, interval=0.5, message="the memory indicator in the notebook's top bar")[0]
    used, limit = indicator.split("Mem:")[1].split("/")
    assert float(used.strip()) > 10, indicator
    assert limit.split()[0] in ("2048.00", "2.00") or "2048" in limit or "2.00 GB" in limit, indicator
    _screenshot(browser, "notebook-memory.png")

    browser.visit(server.url + "/notebook-admin/")
    wait_for(lambda: _text_on_page(browser, "Notebooks"), timeout=30, message="the console")

    def both_rows():
        users = _texts(driver, "#notebook-admin-rows tr td.user")
        kernels = _texts(driver, "#notebook-admin-rows tr .kernel")
        return sorted(users) == ["user", "user2"] and len(kernels) >= 2 and users
    wait_for(both_rows, timeout=60, interval=0.5, message="both users' notebooks and kernels in the table")
    memory = _texts(driver, "#notebook-admin-rows td.memory")
    assert all("MiB" in m and "/ 2 GiB" in m for m in memory), memory
    # Sorting: click "User" (ascending), then again (descending).
    driver.find_element(By.CSS_SELECTOR, 'th[data-key="user"]').click()
    assert _texts(driver, "#notebook-admin-rows tr td.user") == ["user", "user2"]
    driver.find_element(By.CSS_SELECTOR, 'th[data-key="user"]').click()
    assert _texts(driver, "#notebook-admin-rows tr td.user") == ["user2", "user"]
    # The table refreshes itself.
    first = driver.find_element(By.ID, "notebook-admin-status").text
    wait_for(lambda: driver.find_element(By.ID, "notebook-admin-status").text != first, timeout=30, interval=0.5,
             message="the table to refresh")
    _screenshot(browser, "notebook-admin.png")
    # Stop user2's notebook from the console (the page asks to confirm).
    driver.find_element(By.CSS_SELECTOR, 'button.stop[data-user="user2"]').click()
    driver.switch_to.alert.accept()
    wait_for(lambda: not server.manager.is_running("user2"), timeout=60, message="user2's notebook to stop")
    wait_for(lambda: "Stopped the notebook of user2" in driver.find_element(By.ID, "notebook-admin-message").text,
             timeout=30, message="the console to say so")
