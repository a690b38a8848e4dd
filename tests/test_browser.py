"""A person in a real browser: log in, open shells, run code, shut down (headless Chromium)."""
import os

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.browser import ARTIFACTS, CHROMEDRIVER, CHROMIUM
from tests.helpers import daemons_under, wait_for

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (scripts/test installs them)")

SHUTDOWN_LABEL = "Shut down and return to site"


def log_in(browser, base_url, username="user", password="password"):
    browser.visit(base_url + "/login")
    browser.find_by_id("username").fill(username)
    browser.find_by_id("password").fill(password)
    browser.find_by_id("login").click()
    wait_for(lambda: _text_on_page(browser, f"Logged in as {username}"), timeout=30, interval=0.2,
             message=f"the site's page for {username}")


def _text_on_page(browser, text):
    """``text`` is on the current page; False while the page is being replaced (the browser then
    answers with "Node ... does not belong to the document", or the old body goes stale)."""
    from selenium.common.exceptions import WebDriverException

    try:
        return text in browser.driver.find_element(By.TAG_NAME, "body").text
    except WebDriverException:
        return False


def run_in_last_cell(browser, code, timeout=90):
    """Type ``code`` into the notebook's last code cell and run it with Shift+Enter.

    A notebook page that is still initialising (on a busy machine) can swallow the keystrokes or
    the Shift+Enter; the cell's prompt shows whether it was queued (``[*]`` or ``[n]``), so type
    and run again on that same cell until it was, within ``timeout``.
    """
    from selenium.common.exceptions import WebDriverException

    driver = browser.driver
    wait_for(lambda: _last_editor(driver), timeout=60, message="a code cell editor")
    found = {}

    def queued():
        try:
            prompt = found["cell"].find_element(By.CSS_SELECTOR, ".jp-InputPrompt").text
        except WebDriverException:
            return False
        return "*" in prompt or any(ch.isdigit() for ch in prompt)

    def attempt():
        # The same cell each time, found again only if the notebook re-rendered it while it
        # initialised (a stale element would fail every later attempt).
        try:
            editor = found.get("editor")
            try:
                stale = editor is None or not editor.is_enabled()
            except StaleElementReferenceException:
                stale = True
            if stale:
                editor = found["editor"] = _last_editor(driver)
                if editor is None:
                    return False
                found["cell"] = editor.find_element(By.XPATH, "./ancestor::div[contains(@class, 'jp-CodeCell')][1]")
            editor.click()
            if code not in editor.text:
                editor.send_keys(code)
            ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
        except WebDriverException:
            return False
        try:
            return wait_for(queued, timeout=10, interval=0.2, message="the cell to be queued")
        except AssertionError:
            return False

    wait_for(attempt, timeout=timeout, interval=0.5, message=f"the cell {code!r} to run")


def _last_editor(driver):
    """The last code cell's editor once it is shown (None while the notebook renders)."""
    try:
        editors = driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .cm-content")
        return editors[-1] if editors and editors[-1].is_displayed() else None
    except StaleElementReferenceException:  # re-rendered under us: look again
        return None


def click_when_ready(browser, element_id, timeout=60):
    """Click once the page no longer covers the element (Jupyter shows a splash while loading)."""
    from selenium.common.exceptions import ElementClickInterceptedException

    element = browser.find_by_id(element_id, wait_time=timeout).first

    def attempt():
        try:
            element.click()
            return True
        except ElementClickInterceptedException:
            return False

    wait_for(attempt, timeout=timeout, interval=0.2, message=f"#{element_id} to be clickable")


def output_text(browser):
    return "\n".join(e.text for e in browser.driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output"))


def wait_for_output(browser, text, timeout=90):
    wait_for(lambda: text in output_text(browser), timeout=timeout, message=f"output {text!r}")


def test_login_shows_home(browser, demo_server):
    log_in(browser, demo_server.url)
    assert browser.url.rstrip("/") == demo_server.url
    assert browser.is_element_present_by_id("shell1")


def test_shell1_shows_greeting_and_control(browser, demo_server):
    log_in(browser, demo_server.url)
    browser.find_by_id("shell1").click()
    assert browser.is_text_present("Available variables", wait_time=60)
    for text in ("The WSGI application object", "A request object", "The resource root",
                 "The application registry"):
        assert browser.is_text_present(text, wait_time=5), text
    assert browser.find_by_id("pyramid-notebook-shutdown", wait_time=10).first.text == SHUTDOWN_LABEL
    browser.visit(demo_server.url + "/notebook/tree")
    assert browser.find_by_id("pyramid-notebook-shutdown", wait_time=30).first.visible


def test_shell2_runs_code_and_queries_the_database(browser, demo_server):
    log_in(browser, demo_server.url)
    browser.find_by_id("shell2").click()
    assert browser.is_text_present("a test variable", wait_time=60)
    run_in_last_cell(browser, 'print("Output of a + b is", a + b)')
    wait_for_output(browser, "Output of a + b is foobar")
    run_in_last_cell(browser, "print(dbsession.query(Item).first().name)")
    wait_for_output(browser, "Ground control to Major Tom")
    os.makedirs(ARTIFACTS, exist_ok=True)
    browser.driver.save_screenshot(os.path.join(ARTIFACTS, "notebook.png"))


def test_shutdown_control_returns_to_site(browser, demo_server):
    log_in(browser, demo_server.url)
    browser.find_by_id("shell1").click()
    click_when_ready(browser, "pyramid-notebook-shutdown")
    assert browser.is_text_present("Logged in as user", wait_time=30)
    assert browser.url.rstrip("/") == demo_server.url
    assert not demo_server.manager.is_running("user")
    assert daemons_under(demo_server.manager.notebook_folder) == []


def test_other_users_notebook_is_unreachable(browser, demo_server):
    log_in(browser, demo_server.url)
    browser.find_by_id("shell1").click()
    assert browser.is_text_present("Available variables", wait_time=60)
    notebook_url = browser.url
    browser.visit(demo_server.url + "/logout")
    browser.visit(notebook_url)
    assert "/login" in browser.url, "logged out, the notebook is refused"
    log_in(browser, demo_server.url, "user2")
    browser.visit(notebook_url)
    assert browser.is_text_present("Your notebook is not running", wait_time=10)
    assert not browser.is_text_present("Available variables")


def test_jupyterlab_runs_a_cell(browser, demo_server):
    log_in(browser, demo_server.url)
    browser.find_by_id("shell2").click()
    assert browser.is_text_present("a test variable", wait_time=60)
    name = browser.url.rsplit("/", 1)[1]
    browser.visit(f"{demo_server.url}/notebook/lab/tree/{name}")
    assert browser.find_by_id("pyramid-notebook-shutdown", wait_time=60).first.visible
    assert browser.is_text_present("a test variable", wait_time=60)
    run_in_last_cell(browser, 'print("lab says", a + b)')
    wait_for_output(browser, "lab says foobar")


EVIL_PAGE = """<!DOCTYPE html><html><body><h1>Cute cats</h1>
<img src="{site}/notebook/shutdown" alt="">
<a id="evil" href="{site}/notebook/shutdown">See more cats</a></body></html>"""


def test_another_sites_link_asks_before_shutting_down(browser, demo_server):
    """A link on another site (cross-site, the login cookie still sent) gets a confirmation page."""
    from tests.helpers import WSGIServerThread

    def evil_app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html")])
        return [EVIL_PAGE.format(site=demo_server.url).encode()]

    log_in(browser, demo_server.url)
    browser.find_by_id("shell1").click()
    assert browser.is_text_present("Available variables", wait_time=60)
    pid = demo_server.manager.get_notebook_status("user")["pid"]
    with WSGIServerThread(evil_app) as evil:
        browser.visit(f"http://localhost:{evil.port}/")  # another site: localhost is not 127.0.0.1
        browser.find_by_id("evil").click()
        assert browser.is_text_present("Shut down your notebook?", wait_time=30)
        assert demo_server.manager.get_notebook_status("user")["pid"] == pid, "still running"
        browser.find_by_id("pyramid-notebook-confirm").click()
        assert browser.is_text_present("Logged in as user", wait_time=30)
    assert not demo_server.manager.is_running("user")


def test_shutdown_control_on_the_alternative_domain(browser, tmp_path, notebook_folder):
    """Notebook pages on the alternative domain (another site): its control still shuts down in one click."""
    from pyramid.paster import get_app

    from tests.conftest import write_demo_ini
    from tests.helpers import WSGIServerThread, listening_socket

    alt_socket = listening_socket()  # the app must know the port before its server runs
    alt = f"http://localhost:{alt_socket.getsockname()[1]}"
    app = get_app(write_demo_ini(tmp_path, notebook_folder, **{"pyramid_notebook.alternative_domain": alt}), "main")
    with WSGIServerThread(app) as site, WSGIServerThread(app, sock=alt_socket):
        log_in(browser, alt)  # the demo's login cookie is per host name
        log_in(browser, site.url)
        browser.find_by_id("shell1").click()
        assert browser.is_text_present("Available variables", wait_time=60)
        assert browser.url.startswith(alt + "/notebook/")
        click_when_ready(browser, "pyramid-notebook-shutdown")
        assert browser.is_text_present("Logged in as user", wait_time=30)
        assert browser.url.rstrip("/") == site.url
        assert not site.manager.is_running("user")


def open_file_menu(browser):
    """Open Notebook 7's File menu; return the labels of its items."""
    driver = browser.driver

    def opened():
        try:
            [m.click() for m in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel") if m.text == "File"]
            labels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".lm-Menu .lm-Menu-itemLabel")]
            return labels if any(labels) else None
        except StaleElementReferenceException:
            return None

    return wait_for(opened, timeout=60, interval=0.5, message="the File menu")


def click_palette_command(browser, query, matches):
    """Open JupyterLab's command palette, search ``query`` and click the first item whose text
    ``matches`` (a predicate); waits for it (the palette fills as the extensions activate)."""
    from selenium.common.exceptions import WebDriverException

    driver = browser.driver

    def palette_item():
        try:
            ActionChains(driver).key_down(Keys.CONTROL).key_down(Keys.SHIFT).send_keys("c").key_up(Keys.SHIFT) \
                .key_up(Keys.CONTROL).perform()
            search = driver.find_element(By.CSS_SELECTOR, ".lm-CommandPalette-input")
            search.clear()
            search.send_keys(query)
            items = [e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-CommandPalette-item") if matches(e.text)]
            return items[0] if items else None
        except WebDriverException:
            return None

    wait_for(palette_item, timeout=60, interval=1, message="the command in JupyterLab's palette").click()


def test_the_file_menu_item_shuts_down_and_returns_to_site(browser, demo_server):
    """The original's File menu item, now the extension's: "Shut down and return to site"."""
    log_in(browser, demo_server.url)
    browser.find_by_id("shell1").click()
    assert browser.is_text_present("Available variables", wait_time=60)
    labels = open_file_menu(browser)
    assert SHUTDOWN_LABEL in labels, labels
    [item] = [e for e in browser.driver.find_elements(By.CSS_SELECTOR, ".lm-Menu .lm-Menu-item")
              if e.text.strip().startswith(SHUTDOWN_LABEL)]
    item.click()
    assert browser.is_text_present("Logged in as user", wait_time=30)
    assert browser.url.rstrip("/") == demo_server.url
    assert not demo_server.manager.is_running("user")


def test_without_a_shutdown_url_there_is_no_shutdown_control(browser, notebook_folder):
    """A site with neither ``pyramid_notebook.shutdown_url`` nor a ``shutdown_notebook`` route: the
    extension is loaded (the page config lists it) but adds neither the button nor the menu item."""
    import json

    from pyramid.config import Configurator

    from pyramid_notebook.views import launch_notebook, notebook_proxy
    from tests.helpers import WSGIServerThread, random_port_base

    settings = {"pyramid_notebook.notebook_folder": notebook_folder, "pyramid_notebook.port_base": str(random_port_base()),
                "pyramid_notebook.port_range": "20", "pyramid_notebook.fork_server": "false",
                "pyramid_notebook.spare_kernel": "false"}
    with Configurator(settings=settings) as config:
        config.include("pyramid_notebook")
        config.add_route("shell", "/shell")
        config.add_route("notebook_proxy", "/notebook/*remainder")
        # One user for the whole site: this test is about the page, not about who logs in.
        config.add_view(lambda request: launch_notebook(request, "user", {"greeting": "No way back from here"}),
                        route_name="shell")
        config.add_view(lambda request: notebook_proxy(request, "user"), route_name="notebook_proxy")
        app = config.make_wsgi_app()
    with WSGIServerThread(app) as site:
        browser.visit(site.url + "/shell")
        assert browser.is_text_present("No way back from here", wait_time=60)
        page_config = json.loads(browser.driver.execute_script(
            "return document.getElementById('jupyter-config-data').textContent"))
        assert page_config["pyramidNotebookShutdownUrl"] == ""
        assert any(e["name"] == "pyramid-notebook-shutdown" for e in page_config["federated_extensions"])
        labels = open_file_menu(browser)
        assert "Save" in " ".join(labels) and SHUTDOWN_LABEL not in labels, labels
        assert not browser.driver.find_elements(By.ID, "pyramid-notebook-shutdown")
