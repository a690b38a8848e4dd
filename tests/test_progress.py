"""The progress page of a browser's cold launch: plain HTTP and a real headless Chromium."""
import json
import os
import subprocess
import sys
import threading

import pytest
import requests
from pyramid.config import Configurator

from pyramid_notebook.web.progress import HEADER, PARAM
from pyramid_notebook.views import launch_notebook, notebook_proxy
from tests.browser import CHROMEDRIVER, CHROMIUM
from tests.helpers import WSGIServerThread, daemons_under, join_background_starts, random_port_base, wait_for

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
BROKEN = {"greeting": "Never shown: this notebook cannot start"}


def break_bobs_server(site):
    """A Jupyter config file in bob's state folder that ends the server while it starts, after
    saying why on stderr (the context itself is checked before any start, so a malformed one
    never reaches Jupyter; and Jupyter only logs exceptions raised in config files)."""
    folder = os.path.join(site.manager.get_state_folder("bob"), ".jupyter")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    with open(os.path.join(folder, "jupyter_server_config.py"), "w") as f:
        f.write('import os, sys\n'
                'print("Bad config value for extra_template_paths (broken on purpose)", file=sys.stderr)\n'
                'sys.stderr.flush()\n'
                'os._exit(3)\n')


def hold_alices_start(site):
    """Alice's server, once started, waits in its Jupyter config file until the test lets it go on;
    returns the function that does. The tests see the progress page for sure, however fast a start
    or however slow a page load (no race between the two)."""
    state = site.manager.get_state_folder("alice")
    gate = os.path.join(state, "go-on")
    folder = os.path.join(state, ".jupyter")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    with open(os.path.join(folder, "jupyter_server_config.py"), "w") as f:
        f.write(f'import os, time\n'
                f'deadline = time.monotonic() + 120\n'
                f'while not os.path.exists({gate!r}) and time.monotonic() < deadline:\n'
                f'    time.sleep(0.05)\n')
    return lambda: open(gate, "w").close()


def make_app(notebook_folder):
    """A site with one good shell (user alice) and one whose notebook cannot start (user bob)."""
    settings = {"pyramid_notebook.notebook_folder": notebook_folder,
                "pyramid_notebook.port_base": str(random_port_base()), "pyramid_notebook.port_range": "20",
                "pyramid_notebook.startup_timeout": "60", "pyramid_notebook.fork_server": "true",
                "pyramid_notebook.progress_page": "true"}
    with Configurator(settings=settings) as config:
        config.include("pyramid_notebook")
        config.add_route("shell", "/shell")
        config.add_route("broken", "/broken")
        config.add_route("direct", "/direct")
        config.add_route("notebook_proxy", "/notebook/*remainder")
        config.add_view(lambda r: launch_notebook(r, "alice", {"greeting": "Progress *test*", "startup": "a = 1\n"}),
                        route_name="shell")
        config.add_view(lambda r: launch_notebook(r, "bob", BROKEN), route_name="broken")
        # The site's own choice per view: no progress page, and another notebook than the default.
        config.add_view(lambda r: launch_notebook(r, "carol", {"greeting": "Direct"}, path="work/analysis.ipynb",
                                                  progress=False), route_name="direct")
        config.add_view(lambda r: notebook_proxy(r, "alice"), route_name="notebook_proxy")
        return config.make_wsgi_app()


@pytest.fixture
def site(notebook_folder):
    with WSGIServerThread(make_app(notebook_folder)) as server:
        yield server
    join_background_starts()


def state(site, url):
    r = requests.get(url, headers={HEADER: "1"}, allow_redirects=False, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    return r.json()


def test_cold_launch_answers_with_a_progress_page_then_redirects(site):
    manager = site.manager
    # A launch interrupted by a web server that died mid-start is simply started again.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record_file = manager.progress_record_path("alice")
    os.makedirs(os.path.dirname(record_file), exist_ok=True)
    with open(record_file, "w") as f:
        json.dump({"id": "interrupted", "state": "starting", "owner": dead.pid, "at": 0}, f)

    # Several tabs at once: each gets a page at once (the server is held), and one server starts.
    go_on = hold_alices_start(site)
    pages = []
    threads = [threading.Thread(target=lambda: pages.append(
        requests.get(site.url + "/shell", headers=HTML, allow_redirects=False, timeout=30))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(pages) == 4
    for page in pages:
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert "Starting your notebook" in page.text and "Traceback" not in page.text
        assert f'http-equiv="refresh" content="2;url=/shell?{PARAM}=' in page.text.replace("&amp;", "&")
        assert page.headers["Cache-Control"] == "no-store"
        assert page.headers["Content-Security-Policy"] == "frame-ancestors 'self'", "no other site frames it"
    ids = {page.text.split(PARAM + "=")[1].split('"')[0] for page in pages}
    assert "interrupted" not in ids
    poll = f"{site.url}/shell?{PARAM}={ids.pop()}"
    assert state(site, poll)["state"] == "starting"
    go_on()

    ready = wait_for(lambda: (lambda s: s if s["state"] != "starting" else None)(state(site, poll)), timeout=90,
                     message="the notebook to start")
    context = manager.get_notebook_status("alice")
    assert ready == {"state": "ready", "url": f"{site.url}/notebook/notebooks/{context['notebook_name']}"}
    assert len(daemons_under(manager.notebook_folder)) == 1, "exactly one server for all those tabs"
    assert not os.path.exists(record_file)
    # The meta refresh (a browser without JavaScript) lands on the notebook.
    r = requests.get(poll, headers=HTML, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"] == ready["url"]
    # A non-browser client gets the redirect as before; so does a browser once it runs.
    assert requests.get(site.url + "/shell", allow_redirects=False, timeout=10).status_code == 302
    assert requests.get(site.url + "/shell", headers=HTML, allow_redirects=False, timeout=10).status_code == 302


def test_failed_start_shows_the_log(site):
    break_bobs_server(site)
    r = requests.get(site.url + "/broken", headers=HTML, allow_redirects=False, timeout=30)
    assert r.status_code == 200
    poll = r.url + "?" + PARAM + "=" + r.text.split(PARAM + "=")[1].split('"')[0]
    wait_for(lambda: state(site, poll)["state"] == "failed", timeout=90, message="the start to fail")
    r = requests.get(poll, headers=HTML, allow_redirects=False, timeout=10)
    assert r.status_code == 500
    assert "The notebook failed to start" in r.text and "extra_template_paths" in r.text
    assert "Traceback (most recent call last)" not in r.text.split("<pre>")[0]
    assert daemons_under(site.manager.notebook_folder) == []
    # Without the header a non-browser client still gets the synchronous answer.
    assert requests.get(site.url + "/broken", allow_redirects=False, timeout=90).status_code == 500


def test_progress_false_and_path_answer_a_browser_with_the_redirect_to_that_notebook(site):
    """``launch_notebook(progress=False, path=...)``: a browser's cold launch waits for the start
    (the setting says progress pages) and is sent to the notebook at ``path``."""
    r = requests.get(site.url + "/direct", headers=HTML, allow_redirects=False, timeout=120)
    assert r.status_code == 302, r.text[:500]
    context = site.manager.get_notebook_status("carol")
    assert context, "started before the answer"
    assert r.headers["Location"] == f"{site.url}/notebook/notebooks/work/analysis.ipynb"
    # The control: the same browser request on a view that leaves it to the setting gets the page.
    go_on = hold_alices_start(site)
    page = requests.get(site.url + "/shell", headers=HTML, allow_redirects=False, timeout=30)
    go_on()
    assert page.status_code == 200 and "Starting your notebook" in page.text


def _text_present(browser, text):
    try:
        return browser.is_text_present(text)
    except Exception:  # splinter raises while the page is navigating from the progress page
        return False


@pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                    reason="needs Debian's chromium and chromium-driver (scripts/test installs them)")
def test_browser_ends_on_the_notebook_or_the_error(browser, site):
    go_on = hold_alices_start(site)
    browser.visit(site.url + "/shell")
    assert "/notebook/notebooks/" not in browser.url, "answered at once, before the notebook runs"
    assert browser.is_text_present("Starting your notebook")
    go_on()
    wait_for(lambda: "/notebook/notebooks/default-" in browser.url, timeout=90, message="the notebook page")
    assert browser.is_text_present("Progress test", wait_time=60)
    break_bobs_server(site)
    browser.visit(site.url + "/broken")
    wait_for(lambda: _text_present(browser, "The notebook failed to start"), timeout=90, message="the error")
    assert browser.is_text_present("extra_template_paths")
