"""Joining a shared notebook in a real browser (issue 31): the guest opens the grant's link, lands in the
owner's notebook and runs a cell in the owner's kernel, with their own shell open in another tab."""
from tests import test_browser
from tests.helpers import CLICK, login, wait_for
from tests.test_audit import records
from tests.test_browser import log_in, run_in_last_cell, wait_for_output
from tests.test_shares import share

pytestmark = test_browser.pytestmark  # needs Debian's chromium and chromium-driver


def test_the_guest_opens_the_link_and_runs_a_cell_in_the_owners_notebook(browser, demo_server, notebook_folder):
    base = demo_server.url
    owner = login(base)
    r = owner.get(base + "/shell2", headers=CLICK, allow_redirects=False)
    assert r.status_code == 302 and owner.get(r.headers["Location"]).status_code == 200
    grant = share(owner, base, **{"with": "user2", "mode": "collaborate", "expires_in": 600})

    log_in(browser, base, "user2")
    # The guest's own shell, in one tab...
    browser.visit(base + "/shell1")
    wait_for(lambda: "/notebook/notebooks/" in browser.url, timeout=60, message="the guest's own notebook")
    own_tab = browser.driver.current_window_handle
    # ...and the owner's notebook, through the link, in another.
    browser.driver.switch_to.new_window("tab")
    browser.visit(grant["url"])
    wait_for(lambda: f"/notebook/shared/{grant['id']}/notebooks/" in browser.url, timeout=60,
             message="the shared notebook's page")
    assert browser.is_text_present("a test variable", wait_time=60)  # shell2's greeting: the owner's notebook
    run_in_last_cell(browser, "print('guest says', a + b)")
    wait_for_output(browser, "guest says foobar")  # the owner's kernel ran shell2's startup script

    cells = [r for r in records(notebook_folder, "execute") if r["code"] == "print('guest says', a + b)"]
    assert [(r["user"], r["owner"]) for r in cells] == [("user2", "user")]
    # The guest's own tab still works, in their own server.
    browser.driver.switch_to.window(own_tab)
    run_in_last_cell(browser, "print('at home', 40 + 2)")
    wait_for_output(browser, "at home 42")
    at_home = [r for r in records(notebook_folder, "execute", user="user2") if r["code"] == "print('at home', 40 + 2)"]
    assert [(r["user"], r["owner"]) for r in at_home] == [("user2", "user2")]


def test_a_watcher_without_a_shell_of_their_own_sees_the_owners_notebook(browser, demo_server, notebook_folder):
    base = demo_server.url
    owner = login(base)
    r = owner.get(base + "/shell2", headers=CLICK, allow_redirects=False)
    assert r.status_code == 302 and owner.get(r.headers["Location"]).status_code == 200
    grant = share(owner, base, **{"with": "viewer", "mode": "watch"})

    # The link, not logged in yet: the site's login page, then the link (viewer has no shell, nor home page).
    browser.visit(grant["url"])
    browser.find_by_id("username", wait_time=30).fill("viewer")
    browser.find_by_id("password").fill("password")
    browser.find_by_id("login").click()
    wait_for(lambda: f"/notebook/shared/{grant['id']}/notebooks/" in browser.url, timeout=60,
             message="the shared notebook's page")
    assert browser.is_text_present("a test variable", wait_time=60)
    # Every script, style and API call of the page came from under the prefix: none was refused.
    failed = [e["message"] for e in browser.driver.get_log("browser")
              if "Failed to load resource" in e["message"] and "/notebook/" in e["message"]]
    assert not [m for m in failed if f"/notebook/shared/{grant['id']}/" not in m], failed
