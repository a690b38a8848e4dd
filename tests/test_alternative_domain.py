"""The alternative domain end to end: site pages on www.example.test, notebooks on shell.example.test.

The shipped uwsgi.ini (websockets relayed through the site) with ``alternative_domain`` set and the
demo's login cookie on the parent domain, in real Chromium with both names mapped to loopback.
"""
import json
import os
import sqlite3

import pytest
from selenium.webdriver.common.by import By

from tests.browser import CHROMEDRIVER, CHROMIUM, EXAMPLE_HOSTS
from tests.helpers import daemons_under, wait_for
from tests.test_browser import log_in, wait_for_output
from tests.test_embed import bridge_status, open_embed, run_in_last_cell, type_unsaved
from tests.test_uwsgi import UWSGI, UWSGIServer

pytestmark = [
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                       reason="needs Debian's chromium and chromium-driver (scripts/test installs them)"),
    pytest.mark.skipif(not os.path.exists(UWSGI), reason="needs uWSGI (pip install -e .[uwsgi])"),
]


@pytest.fixture(scope="module")
def alt_site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("altdomain")
    database = tmp / "demo.sqlite"
    server = UWSGIServer(tmp, env={
        "PYRAMID_NOTEBOOK_ALTERNATIVE_DOMAIN": "http://shell.example.test:{port}",
        "PYRAMID_NOTEBOOK_DEMO_COOKIE_DOMAIN": "example.test",
        "PYRAMID_NOTEBOOK_DEMO_DATABASE": f"sqlite:///{database}",
    })
    server.www = f"http://www.example.test:{server.port}"
    server.shell = f"http://shell.example.test:{server.port}"
    server.database = str(database)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    import shutil

    from tests.browser import make_browser

    b, profile = make_browser([EXAMPLE_HOSTS])
    yield b
    b.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(autouse=True)
def artifacts_on_failure(request, browser):
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        from tests.browser import save_artifacts

        print(f"\nArtifacts saved in {save_artifacts(browser, request.node.name)}")


def test_embedded_on_the_site_saved_across_origins(browser, alt_site):
    """/embed on www frames the notebook on shell (the default frame_ancestors allows the site)."""
    log_in(browser, alt_site.www)
    open_embed(browser, alt_site.www + "/embed")
    assert browser.driver.execute_script("return location.origin") == alt_site.shell
    run_in_last_cell(browser, "a + b")
    wait_for_output(browser, "foobar")  # kernel websocket on the alternative domain, through uWSGI
    marker = "saved_across_origins = True"
    type_unsaved(browser, marker)
    browser.driver.switch_to.default_content()
    assert bridge_status(browser)["dirty"] is True
    browser.find_by_id("site-save").first.click()
    assert browser.is_text_present("Saved as analysis", wait_time=30), browser.find_by_id("save-status").text
    with sqlite3.connect(alt_site.database) as db:
        (content,) = db.execute("SELECT content FROM analyses").fetchone()
    assert marker in ["".join(c["source"]) for c in json.loads(content)["cells"]]


def test_launch_lands_on_the_alternative_domain_and_returns_to_the_site(browser, alt_site):
    log_in(browser, alt_site.www)
    browser.find_by_id("shell2").click()
    wait_for(lambda: browser.url.startswith(alt_site.shell + "/notebook/notebooks/"), timeout=60,
             message=f"the notebook page on {alt_site.shell}")
    assert browser.is_text_present("a test variable", wait_time=60)
    run_in_last_cell(browser, "a + b")
    wait_for_output(browser, "foobar")
    browser.find_by_id("pyramid-notebook-shutdown", wait_time=30).first.click()
    assert browser.is_text_present("Logged in as user", wait_time=30)
    assert browser.url.rstrip("/") == alt_site.www
    assert daemons_under(alt_site.notebook_folder) == []
    assert not browser.driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook")
