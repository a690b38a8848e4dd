"""Team recipes in a real browser (headless Chromium): the File menu's "Publish to team recipes…" in
Notebook 7 publishes Shell 2's notebook, another user finds it on the site and opens it in their own
shell, whose kernel has the site's namespace; ``<script>`` in a recipe never runs on the site's page."""
import json
import os

import nbformat
import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By

from pyramid_notebook.core.recipes import RecipeLibrary
from tests.browser import CHROMEDRIVER, CHROMIUM
from tests.helpers import login, wait_for
from tests.test_browser import click_palette_command, log_in, open_file_menu, output_text, run_in_last_cell

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (scripts/test installs them)")

PUBLISH_LABEL = "Publish to team recipes…"


def _click_menu_item(browser, label):
    items = [e for e in browser.driver.find_elements(By.CSS_SELECTOR, ".lm-Menu .lm-Menu-item")
             if e.text.strip().startswith(label)]
    assert items, f"no menu item {label!r}"
    items[0].click()


def test_publish_from_the_file_menu_and_another_user_opens_it(browser, demo_server, notebook_folder):
    site = demo_server
    log_in(browser, site.url, "user")
    browser.find_by_id("shell2").click()
    assert browser.is_text_present("Available variables", wait_time=90)
    labels = open_file_menu(browser)
    assert PUBLISH_LABEL in labels, labels
    _click_menu_item(browser, PUBLISH_LABEL)
    name_input = browser.find_by_id("pyramid-notebook-recipe-name", wait_time=30).first
    assert name_input.value.startswith("default-")  # the file's own name, as a recipe name
    name_input.clear()
    name_input.type("shell2-welcome")
    browser.find_by_id("pyramid-notebook-recipe-message").first.type("Shell 2's greeting")
    browser.driver.find_element(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept").click()
    published = browser.find_by_id("pyramid-notebook-published", wait_time=60).first
    assert '"shell2-welcome" version 1' in published.text
    [version] = RecipeLibrary(os.path.join(notebook_folder, ".recipes")).recipe("shell2-welcome")["versions"]
    assert (version["author"], version["message"]) == ("user", "Shell 2's greeting")

    # user2 finds it in the site's list and opens it in their own shell.
    browser.visit(site.url + "/logout")
    log_in(browser, site.url, "user2")
    browser.visit(site.url + "/notebook/recipes")
    browser.find_by_css('tr[data-name="shell2-welcome"] a').first.click()
    assert browser.is_text_present("Shell 2's greeting", wait_time=30)
    browser.find_by_id("recipe-open").first.click()
    wait_for(lambda: browser.url.endswith("/notebook/notebooks/recipes/shell2-welcome.ipynb"), timeout=120,
             interval=0.5, message="user2's shell on the recipe's copy")
    assert browser.is_text_present("Available variables", wait_time=90)
    assert os.path.isfile(os.path.join(notebook_folder, "user2", "recipes", "shell2-welcome.ipynb"))
    # Its kernel started with the site's startup: pshell's namespace.
    run_in_last_cell(browser, "print('namespace', sorted(k for k in ('app', 'registry', 'request') if k in globals()))")
    wait_for(lambda: "namespace ['app', 'registry', 'request']" in output_text(browser), timeout=120,
             message="the kernel's pshell namespace")


def test_script_in_a_recipe_never_runs_on_the_site(browser, demo_server, notebook_folder):
    base = demo_server.url
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(
        "# Harmless\n\n<script>window.pwned = 'markdown'</script><img src=x onerror=\"window.pwned = 'img'\">"))
    cell = nbformat.v4.new_code_cell("x", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "text/html": "<b id='html-output'>shown</b><script>window.pwned = 'html'</script>",
        "application/javascript": "window.pwned = 'javascript'"})]
    nb.cells.append(cell)
    os.makedirs(os.path.join(notebook_folder, "user"), exist_ok=True)
    nbformat.write(nb, os.path.join(notebook_folder, "user", "evil.ipynb"))
    session = login(base, "user")
    r = session.post(base + "/notebook/recipes", data=json.dumps({"path": "evil.ipynb", "name": "evil"}),
                     headers={"Origin": base, "Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    log_in(browser, base, "user")
    browser.visit(base + "/notebook/recipes/evil")
    assert browser.is_text_present("shown", wait_time=30)
    try:
        pwned = browser.driver.execute_script("return window.pwned === undefined ? null : window.pwned")
    except WebDriverException as e:  # pragma: no cover - the page itself must load
        raise AssertionError(e)
    assert pwned is None


def test_jupyterlab_file_menu_and_command_palette_publish(browser, demo_server, notebook_folder):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    log_in(browser, demo_server.url, "user")
    browser.find_by_id("shell2").click()
    assert browser.is_text_present("a test variable", wait_time=90)
    name = browser.url.rsplit("/", 1)[1]
    browser.visit(f"{demo_server.url}/notebook/lab/tree/{name}")
    assert browser.is_text_present("a test variable", wait_time=90)
    assert PUBLISH_LABEL in open_file_menu(browser)
    ActionChains(browser.driver).send_keys(Keys.ESCAPE).perform()
    driver = browser.driver

    click_palette_command(browser, "Publish to team", lambda text: "Publish to team recipes" in text)
    name_input = browser.find_by_id("pyramid-notebook-recipe-name", wait_time=30).first
    name_input.clear()
    name_input.type("from-lab")
    driver.find_element(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-accept").click()
    assert '"from-lab" version 1' in browser.find_by_id("pyramid-notebook-published", wait_time=60).first.text
    assert RecipeLibrary(os.path.join(notebook_folder, ".recipes")).version("from-lab")["author"] == "user"
