"""A clean browser console on the notebook's pages (issue 35): the browser test fails on any console
error the project causes (our lab extension, our settings overrides, the proxy, the static files).

Two messages come from Notebook itself and are allowed here, by their text: both appear on a bare
``jupyter notebook`` (7.6.5, JupyterLab 4.6) serving a notebook, with no pyramid_notebook in the
loop and with every other lab extension disabled (checked while writing this test):

* ``Uncaught TypeError: Cannot read properties of undefined (reading 'schema')``, thrown in
  ``notebook_core.*.js`` by the bundled ``@jupyterlab/shortcuts-extension``: its
  ``pluginChanged`` handler reads ``registry.plugins[id].schema`` for a plugin not (yet) in the
  registry;
* ``[yjs#509] Not same Y.Doc`` (a warning), logged by the copy of yjs bundled with Notebook
  (``@jupyter/ydoc``), not by jupyter-collaboration, which is not installed.

What the project caused (``Cannot convert undefined or null to object``, and ``Unsatisfied version
4.0.0 ... @jupyter/ydoc``: nbdime's lab extension, installed with nbdime for the site's diffs) is left
out of the pages by :mod:`pyramid_notebook.server.page_config`.
"""
import re

from tests.helpers import wait_for
from tests.test_browser import SHUTDOWN_LABEL, log_in, run_in_last_cell, wait_for_output

#: Console messages of Notebook's own bundles (see the module's docstring), by the text they carry.
UPSTREAM = (
    "Cannot read properties of undefined (reading 'schema')",
    "[yjs#509] Not same Y.Doc",
)
#: What marks a warning as ours: our names, or any lab extension's bundle (every lab extension a
#: notebook server loads is there by the project's dependencies or configuration).
OURS = re.compile(r"pyramid[-_]notebook|pyramidNotebook|/lab/extensions/", re.I)


def project_console_errors(entries) -> list:
    """The console entries the project is answerable for: every SEVERE one (errors, uncaught
    exceptions, failed loads) and every warning of ours (:data:`OURS`), minus :data:`UPSTREAM`."""
    found = []
    for entry in entries:
        message = entry.get("message", "")
        if any(text in message for text in UPSTREAM):
            continue
        if entry.get("level") == "SEVERE" or (entry.get("level") == "WARNING" and OURS.search(message)):
            found.append(f"{entry.get('level')} {message}")
    return found


def test_project_console_errors_catches_an_extension_error_and_allows_notebooks_own():
    entries = [
        {"level": "SEVERE", "message": "http://h/notebook/static/notebook/notebook_core.js 500:206 Uncaught "
                                       "TypeError: Cannot read properties of undefined (reading 'schema')"},
        {"level": "WARNING", "message": 'http://h/notebook/static/notebook/137.js 0:1 "[yjs#509] Not same Y.Doc"'},
        {"level": "WARNING", "message": "http://h/notebook/static/notebook/notebook_core.js \"Skipping\" Object"},
        {"level": "WARNING", "message": "http://h/notebook/lab/extensions/pyramid-notebook-shutdown/static/443.js "
                                        "no shutdown URL"},
        {"level": "SEVERE", "message": "http://h/notebook/api/kernels - Failed to load resource: 502"},
        {"level": "WARNING", "message": "http://h/notebook/lab/extensions/nbdime-jupyterlab/static/remoteEntry.js "
                                        '"Unsatisfied version 4.0.0 from CORE_FEDERATION of shared singleton module"'},
        {"level": "DEBUG", "message": 'http://h/notebook/static/notebook/core.js "Starting WebSocket: ws://h/"'},
    ]
    assert [e.split()[0] for e in project_console_errors(entries)] == ["WARNING", "SEVERE", "WARNING"]


def test_the_notebook_pages_log_no_console_error_of_ours(browser, demo_server):
    log_in(browser, demo_server.url)
    browser.driver.get_log("browser")  # the site's own pages (its favicon) are not the notebook's
    browser.find_by_id("shell1").click()
    assert browser.is_text_present("Available variables", wait_time=60)
    run_in_last_cell(browser, 'print("console", 6 * 7)')
    wait_for_output(browser, "console 42")
    entries = browser.driver.get_log("browser")
    browser.visit(demo_server.url + "/notebook/tree")
    wait_for(lambda: browser.is_element_present_by_id("pyramid-notebook-shutdown", wait_time=1), timeout=60,
             message="the file browser with our control")
    assert browser.find_by_id("pyramid-notebook-shutdown").first.text == SHUTDOWN_LABEL
    wait_for(lambda: browser.driver.execute_script("return document.readyState") == "complete", timeout=30)
    entries += browser.driver.get_log("browser")
    assert entries, "the browser log is read (goog:loggingPrefs)"
    assert project_console_errors(entries) == [], "\n".join(f"{e['level']} {e['message']}" for e in entries)
