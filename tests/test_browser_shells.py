"""Two shells side by side in one browser: two tabs, two kernels, one notebook server (headless Chromium)."""
from tests.test_browser import log_in, pytestmark as browser_mark, run_in_last_cell, wait_for_output

pytestmark = browser_mark


def test_shell1_and_shell2_in_two_tabs_both_run_cells(browser, demo_server):
    log_in(browser, demo_server.url)
    browser.find_by_id("shell1").click()
    assert browser.is_text_present("Available variables", wait_time=60)
    run_in_last_cell(browser, 'x = 41; print("Shell 1 has", x)')
    wait_for_output(browser, "Shell 1 has 41")
    pid = demo_server.manager.get_notebook_status("user")["pid"]
    first_tab = browser.driver.current_window_handle

    # A second tab, the site's home page, a click on Shell 2: it opens beside Shell 1.
    browser.driver.switch_to.new_window("tab")
    browser.visit(demo_server.url + "/")
    browser.find_by_id("shell2").click()
    assert browser.is_text_present("a test variable", wait_time=60)
    run_in_last_cell(browser, 'print("Shell 2 has", a + b, "and x:", "x" in dir())')
    wait_for_output(browser, "Shell 2 has foobar and x: False")
    assert demo_server.manager.get_notebook_status("user")["pid"] == pid, "the server was not restarted"

    browser.driver.switch_to.window(first_tab)
    run_in_last_cell(browser, 'print("Shell 1 still has", x + 1, "and a:", "a" in dir())')
    wait_for_output(browser, "Shell 1 still has 42 and a: False")
