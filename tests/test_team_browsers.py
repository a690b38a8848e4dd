"""Two people, two real browsers (issue 31): the owner and a guest type into one notebook and each sees the
other's edit; the guest runs a cell and the audit trail names them. An administrator's watch from the
console shows on the owner's page while it lasts."""
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests import test_browser
from tests.helpers import login, wait_for
from tests.test_audit import records
from tests.test_browser import log_in, output_text
from tests.test_shares import share

pytestmark = test_browser.pytestmark  # needs Debian's chromium and chromium-driver


def editor_text(browser):
    """The text of every code cell's editor on the page."""
    return "\n".join(e.text for e in browser.driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .cm-content"))


def type_at_end_of_last_cell(browser, text):
    """Click the last code cell's editor, go to its end, type ``text`` (retried while the page settles)."""
    from selenium.common.exceptions import WebDriverException

    def attempt():
        try:
            editor = browser.driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .cm-content")[-1]
            editor.click()
            ActionChains(browser.driver).key_down(Keys.CONTROL).send_keys(Keys.END).key_up(Keys.CONTROL) \
                .send_keys(text).perform()
            return True
        except (WebDriverException, IndexError):
            return False

    wait_for(attempt, timeout=60, interval=0.5, message="the last cell's editor")


def open_shell(browser, base, shell):
    browser.find_by_id(shell).click()
    assert browser.is_text_present("a test variable", wait_time=90)  # shell2's greeting


def test_owner_and_guest_type_into_one_notebook_and_the_guest_runs_it(browser, browser2, make_demo_server,
                                                                      notebook_folder):
    server = make_demo_server(**{"pyramid_notebook.collaboration": "always"})
    base = server.url
    log_in(browser, base, "user")
    open_shell(browser, base, "shell2")
    grant = share(login(base, "user"), base, **{"with": "user2", "mode": "collaborate", "expires_in": 600})

    log_in(browser2, base, "user2")
    browser2.visit(grant["url"])
    wait_for(lambda: f"/notebook/shared/{grant['id']}/notebooks/" in browser2.url, timeout=60,
             message="the shared notebook's page")
    assert browser2.is_text_present("a test variable", wait_time=90)

    # The owner types; the guest's editor shows it. Then the other way round.
    type_at_end_of_last_cell(browser, "from_owner = 20")
    wait_for(lambda: "from_owner = 20" in editor_text(browser2), timeout=30, message="the owner's typing, for the guest")
    type_at_end_of_last_cell(browser2, Keys.ENTER + "from_guest = 22" + Keys.ENTER + "print('sum', from_owner + from_guest)")
    wait_for(lambda: "print('sum', from_owner + from_guest)" in editor_text(browser), timeout=30,
             message="the guest's typing, for the owner")

    # The guest runs the cell in the owner's kernel: both see its output.
    ActionChains(browser2.driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
    wait_for(lambda: "sum 42" in output_text(browser2), timeout=60, message="the output in the guest's page")
    wait_for(lambda: "sum 42" in output_text(browser), timeout=30, message="the output in the owner's page")
    ran = [r for r in records(notebook_folder, "execute") if "from_guest = 22" in r.get("code", "")]
    assert [(r["user"], r["owner"]) for r in ran] == [("user2", "user")]


def test_the_owner_sees_an_administrator_watching(browser, browser2, demo_server, notebook_folder):
    base = demo_server.url
    log_in(browser, base, "user2")
    open_shell(browser, base, "shell2")
    notice = browser.driver.find_element(By.ID, "pyramid-notebook-watched")
    assert not notice.is_displayed()

    # The administrator's Watch on the console's row of user2 opens user2's notebook in a new tab.
    log_in(browser2, base, "user")
    browser2.visit(base + "/notebook-admin/")
    first_tab = browser2.driver.current_window_handle
    assert not browser2.find_by_css('button.watch[data-user="user"]')  # not their own
    browser2.find_by_css('button.watch[data-user="user2"]', wait_time=30).first.click()
    wait_for(lambda: len(browser2.driver.window_handles) == 2, timeout=30, message="the watch's tab")
    browser2.driver.switch_to.window([h for h in browser2.driver.window_handles if h != first_tab][0])
    wait_for(lambda: "/notebook/shared/" in browser2.url and "/notebooks/" in browser2.url, timeout=60,
             message="the watched notebook's page")
    assert browser2.is_text_present("a test variable", wait_time=90)

    wait_for(lambda: notice.is_displayed() and notice.text == "Watched by Demo User", timeout=30,
             message="the owner's 'Watched by' notice")
    assert [r["event"] for r in records(notebook_folder, "watch", user="user2")] == ["start"]
    # The administrator leaves (no "unsaved changes" prompt holds a watcher's page): the notice goes, the
    # watch's end is on record.
    browser2.visit(base + "/")
    wait_for(lambda: browser2.url.rstrip("/") == base, timeout=30, message="the site's home page")
    wait_for(lambda: not notice.is_displayed(), timeout=30, message="the notice to go")
    ends = [r for r in records(notebook_folder, "watch", user="user2") if r["event"] == "end"]
    assert [(r["user"], r["why"]) for r in ends] == [("user", "left")]


def test_the_demo_tour_user_shares_shell2_and_viewer_watches_from_home(browser, browser2, demo_server):
    """The README's tour: user opens Shell 2 and shares it from the home page with viewer, who has no shell;
    viewer's home page lists it, and its link opens user's notebook to watch."""
    base = demo_server.url
    log_in(browser, base, "user")
    open_shell(browser, base, "shell2")
    browser.visit(base + "/")
    browser.find_by_id("share-viewer", wait_time=30).click()
    wait_for(lambda: "Send them this link: " + base + "/notebook/shared/" in browser.find_by_id("share-result").text,
             timeout=30, message="the share's link on the home page")

    log_in(browser2, base, "viewer")
    assert not browser2.is_element_present_by_id("shell1")  # no shell of their own
    link = browser2.find_by_id("open-share-user", wait_time=30)
    assert "Demo User shares a notebook with you, to watch" in browser2.find_by_id("shared-with-me").text
    link.click()
    wait_for(lambda: "/notebook/shared/" in browser2.url and "/notebooks/" in browser2.url, timeout=60,
             message="the shared notebook's page")
    assert browser2.is_text_present("a test variable", wait_time=90)
    config = browser2.driver.execute_script("return document.getElementById('jupyter-config-data').textContent")
    assert '"pyramidNotebookRole": "watch"' in config
