"""The notebook inside the site's own page (/embed), and pages on other origins that try to use it.

Real Chromium with host names mapped to loopback: the site is www.example.test, the other
origin evil.example.test (another server). One notebook launch is shared by the module.
"""
import json
import os
import sqlite3

import pytest
from pyramid.paster import get_app
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.browser import CHROMEDRIVER, CHROMIUM, EXAMPLE_HOSTS
from tests.conftest import write_demo_ini
from tests.helpers import WSGIServerThread, stop_all_notebooks, wait_for
from tests.test_browser import log_in, wait_for_output

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (scripts/test installs them)")


class Pages:
    """A tiny WSGI site on another origin serving the HTML pages a test gives it."""

    def __init__(self):
        self.pages = {}

    def __call__(self, environ, start_response):
        body = self.pages.get(environ["PATH_INFO"], "<!DOCTYPE html><title>other site</title>").encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [body]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("embed")
    folder = str(tmp / "notebooks")
    os.makedirs(folder)
    server = WSGIServerThread(get_app(write_demo_ini(tmp, folder), "main")).__enter__()
    server.url = f"http://www.example.test:{server.port}"
    server.database = str(tmp / "demo.sqlite")
    server.folder = folder
    yield server
    stop_all_notebooks(folder)
    server.__exit__(None, None, None)


@pytest.fixture(scope="module")
def evil():
    pages = Pages()
    server = WSGIServerThread(pages).__enter__()
    server.url = f"http://evil.example.test:{server.port}"
    server.pages = pages.pages
    yield server
    server.__exit__(None, None, None)


@pytest.fixture(scope="module")
def chrome(request):
    import shutil

    from tests.browser import make_browser

    b, profile = make_browser([EXAMPLE_HOSTS])
    yield b
    b.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(chrome, request):
    """The module's Chromium, back on its first window; artifacts saved on failure."""
    from tests.browser import save_artifacts

    yield chrome
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"\nArtifacts saved in {save_artifacts(chrome, request.node.name)}")
    driver = chrome.driver
    for handle in driver.window_handles[1:]:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(driver.window_handles[0])


def _last_editor(driver):
    """The last code cell's editor once it is shown (None while the notebook renders)."""
    try:
        editors = driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .cm-content")
        return editors[-1] if editors and editors[-1].is_displayed() else None
    except StaleElementReferenceException:  # re-rendered under us: look again
        return None


def type_unsaved(browser, text):
    """Type ``text`` into the last code cell (not run, not saved)."""
    def typed():
        editor = _last_editor(browser.driver)
        try:
            editor.click()
            editor.send_keys(text)
            return True
        except (AttributeError, StaleElementReferenceException):
            return False
    wait_for(typed, timeout=60, message="a code cell to type into")


def run_in_last_cell(browser, code):
    type_unsaved(browser, code)
    ActionChains(browser.driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()


def analyses(site):
    with sqlite3.connect(site.database) as db:
        return db.execute("SELECT id, name, content FROM analyses ORDER BY id").fetchall()


def open_embed(browser, url):
    """Visit /embed (or a stored analysis); return the notebook frame once the notebook shows."""
    browser.visit(url)
    driver = browser.driver
    frame = browser.find_by_id("notebook-frame", wait_time=30).first._element
    driver.switch_to.frame(frame)
    wait_for(lambda: _last_editor(driver), timeout=90, message="the notebook in the frame")
    return frame


def on_disk(site, name):
    with open(os.path.join(site.folder, "user", name), encoding="utf-8") as f:
        return f.read()


def bridge_status(browser):
    """The notebook's path as the frame's bridge reports it (from the parent page)."""
    return browser.driver.execute_async_script(
        "const done = arguments[0];"
        "PyramidNotebookBridge.status(document.getElementById('notebook-frame'))"
        ".then(a => done(a), e => done({error: e.message}));")


def test_embed_runs_code_and_saves_unsaved_cells_to_the_database(browser, site):
    log_in(browser, site.url)
    open_embed(browser, site.url + "/embed")
    assert browser.is_text_present("a test variable", wait_time=30), "shell 2's greeting in the frame"
    run_in_last_cell(browser, "a + b")
    wait_for_output(browser, "foobar")
    marker = "typed_but_not_saved = 'in the frame'"
    type_unsaved(browser, marker)
    browser.driver.switch_to.default_content()
    status = bridge_status(browser)
    assert status["dirty"] is True and status["path"].startswith("default-"), status
    assert marker not in on_disk(site, status["path"]), "the cell is not saved yet"

    before = set(analyses(site))  # other tests of the module may have stored some
    browser.find_by_id("site-save").first.click()
    assert browser.is_text_present("Saved as analysis ", wait_time=30), browser.find_by_id("save-status").text
    (row,) = set(analyses(site)) - before
    assert browser.find_by_id("save-status").text == f"Saved as analysis {row[0]}"
    assert row[1] == status["path"]
    sources = ["".join(c["source"]) for c in json.loads(row[2])["cells"]]
    assert marker in sources and "a + b" in sources

    # Reopen it: the stored analysis goes back into the user's folder and into the frame.
    browser.find_by_css(f"#analysis-{row[0]} a.analysis").first.click()
    open_embed(browser, browser.url)
    assert browser.is_text_present("in the frame", wait_time=30)
    assert f"analysis-{row[0]}.ipynb" in browser.driver.execute_script("return location.pathname")
    browser.driver.switch_to.default_content()
    assert browser.find_by_id("analysis-name").text == status["path"]


def test_embed_save_refuses_other_origins(site):
    import requests

    from tests.helpers import login

    s = login(site.url.replace("www.example.test", "127.0.0.1"))
    r = s.post(site.url.replace("www.example.test", "127.0.0.1") + "/embed/save",
               json={"path": "x.ipynb"}, headers={"Origin": "http://evil.example.test"})
    assert r.status_code == 403
    assert requests.get(site.url.replace("www.example.test", "127.0.0.1") +
                        "/pyramid_notebook/notebook-bridge.js").text.count("PyramidNotebookBridge") >= 1


def test_another_origin_cannot_frame_the_notebook(browser, site, evil):
    log_in(browser, site.url)
    open_embed(browser, site.url + "/embed")  # the notebook runs and this page may frame it
    src = browser.driver.execute_script("return location.href")
    browser.driver.switch_to.default_content()
    browser.driver.get_log("browser")  # forget earlier messages
    evil.pages["/frame"] = f'<!DOCTYPE html><iframe id="f" src="{src}" width=800 height=600></iframe>'
    browser.visit(evil.url + "/frame")
    refused = wait_for(lambda: [e["message"] for e in browser.driver.get_log("browser")
                                if "frame-ancestors" in e["message"]], timeout=30, message="the CSP refusal")
    assert "blocked" in refused[0] and site.url in refused[0], refused
    browser.driver.switch_to.frame(browser.find_by_id("f").first._element)
    assert not browser.driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook")


EVIL_OPENER = """<!DOCTYPE html><title>other site</title><script>
window.received = [];
window.addEventListener('message', e => window.received.push({origin: e.origin, data: e.data}));
</script>"""


def test_another_origin_posting_save_gets_no_answer(browser, site, evil):
    log_in(browser, site.url)
    before = analyses(site)
    evil.pages["/opener"] = EVIL_OPENER
    browser.visit(evil.url + "/opener")
    driver = browser.driver
    evil_window = driver.current_window_handle
    # The other site opens the site's /embed page, so it holds a reference to the notebook frame.
    driver.execute_script("window.embed = window.open(arguments[0], 'embed')", site.url + "/embed")
    driver.switch_to.window([h for h in driver.window_handles if h != evil_window][0])
    embed_window = driver.current_window_handle
    driver.switch_to.frame(driver.find_element(By.ID, "notebook-frame"))
    wait_for(lambda: _last_editor(driver), timeout=90, message="the notebook in the frame")
    marker = "other_site_must_not_save_this = 1"
    type_unsaved(browser, marker)
    driver.switch_to.default_content()
    path = bridge_status(browser)["path"]

    driver.switch_to.window(evil_window)
    driver.execute_script(
        "for (const type of ['save', 'status'])"
        "  window.embed.frames[0].postMessage({channel: 'pyramid_notebook', type: type, id: 'evil-' + type}, '*');")
    # The frame handles messages in order: once it has answered the site's own request (posted
    # after the other site's), it has dealt with the other site's too.
    driver.switch_to.window(embed_window)
    status = bridge_status(browser)
    assert status["dirty"] is True, status
    driver.switch_to.window(evil_window)
    assert driver.execute_script("return window.received") == []
    assert marker not in on_disk(site, path)
    assert analyses(site) == before


def test_the_bridge_tells_the_page_of_edits_and_saves_and_times_out(browser, site):
    """``PyramidNotebookBridge.listen()``: unasked, the frame posts ``dirty`` when the user edits and
    ``saved`` when the notebook is saved (here with Ctrl+S inside the notebook, not by the page);
    a request the frame does not answer rejects after its ``timeout``."""
    log_in(browser, site.url)
    frame = open_embed(browser, site.url + "/embed")
    driver = browser.driver
    driver.switch_to.default_content()
    driver.execute_script("window.heard = [];"
                          "PyramidNotebookBridge.listen(document.getElementById('notebook-frame'),"
                          "                             m => window.heard.push(m));")

    def heard(kind):
        return [m for m in driver.execute_script("return window.heard") if m["type"] == kind]

    # Saved inside the notebook (Ctrl+S), not by the page: "saved". (First, so that the notebook is
    # clean: opening it may already have made it dirty, before the page listened.)
    driver.switch_to.frame(frame)
    type_unsaved(browser, "")  # focus the notebook
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("s").key_up(Keys.CONTROL).perform()
    driver.switch_to.default_content()
    (saved, *_) = wait_for(lambda: heard("saved"), timeout=30, message="the unasked 'saved' notice")
    assert saved["channel"] == "pyramid_notebook" and saved["path"].startswith("default-"), saved
    assert bridge_status(browser)["dirty"] is False

    # The user edits: "dirty", once.
    marker = "heard_by_the_page = 1"
    before = len(heard("dirty"))
    driver.switch_to.frame(frame)
    type_unsaved(browser, marker)
    driver.switch_to.default_content()
    dirty = wait_for(lambda: heard("dirty")[before:], timeout=30, message="the unasked 'dirty' notice")[0]
    assert dirty["path"] == saved["path"]
    assert browser.find_by_id("save-status").first.text == "Unsaved changes", "the demo page's own listener"
    assert marker not in on_disk(site, saved["path"])

    # A frame that never answers (a page of the site that is not a notebook): rejected in time.
    # (Inline: the demo's pages refuse to be framed.)
    driver.execute_script("const f = document.createElement('iframe'); f.id = 'mute';"
                          "f.srcdoc = '<p id=mute-page>not a notebook</p>'; document.body.appendChild(f);")
    wait_for(lambda: driver.execute_script("const d = document.getElementById('mute').contentDocument;"
                                           "return d && d.getElementById('mute-page') !== null"),
             timeout=30, message="the other frame to load")
    answer = driver.execute_async_script(
        "const done = arguments[0], started = Date.now();"
        "PyramidNotebookBridge.save(document.getElementById('mute'), {timeout: 700})"
        ".then(a => done({answer: a}), e => done({error: e.message, after: Date.now() - started}));")
    assert "did not answer within 0.7 s" in answer.get("error", ""), answer
    assert 600 <= answer["after"] < 10000, answer
