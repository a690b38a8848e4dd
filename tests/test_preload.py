"""The notebook page's bundles before the notebook page (issue 34): preload links on the progress page,
prefetch links on the site's pages, 103 Early Hints under gunicorn, compressed at site start. Real demo
sites (waitress, gunicorn), a real notebook server and a real headless Chromium."""
import gzip
import os
import re
import socket
import subprocess
import sys

import brotli
import pytest
import requests
from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

from pyramid_notebook import preload_links
from pyramid_notebook.relays import compress
from pyramid_notebook.web import bundles as first_bundles, preload
from tests.browser import CHROMEDRIVER, CHROMIUM
from tests.conftest import write_demo_ini
from tests.helpers import CLICK, login, serve_on_free_port, stop_process, wait_for

HTML = dict(CLICK, Accept="text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
LINK = re.compile(r'<link rel="(preload|prefetch)" href="([^"]+)" as="(\w+)"( crossorigin)?>')


def installed_bundles():
    """The bundles of the notebook package the demo's servers run (this interpreter's)."""
    found = first_bundles.bundles_in(first_bundles.package_folder_of(sys.executable))
    assert {b.name.split(".")[0] for b in found} >= {"main", "notebook_core"}, found
    return found


def hold_start(manager, username):
    """The user's next server waits in its Jupyter config file until the returned function is called."""
    state = manager.get_state_folder(username)
    gate = os.path.join(state, "go-on")
    os.makedirs(os.path.join(state, ".jupyter"), mode=0o700, exist_ok=True)
    with open(os.path.join(state, ".jupyter", "jupyter_server_config.py"), "w") as f:
        f.write(f"import os, time\ndeadline = time.monotonic() + 120\n"
                f"while not os.path.exists({gate!r}) and time.monotonic() < deadline:\n    time.sleep(0.05)\n")
    return lambda: open(gate, "w").close()


def raw_get(session, url, accept="br, gzip"):
    r = session.get(url, headers={"Accept-Encoding": accept}, stream=True, allow_redirects=False)
    r.body = r.raw.read(decode_content=False)
    r.close()
    return r


def decoded(r):
    coding = r.headers.get("Content-Encoding")
    return brotli.decompress(r.body) if coding == "br" else gzip.decompress(r.body) if coding == "gzip" else r.body


def test_progress_page_preloads_bundles_that_exist_served_compressed(make_demo_server):
    server = make_demo_server(**{"pyramid_notebook.progress_page": "true"})
    bundles = {b.name: b for b in installed_bundles()}
    s = login(server.url)
    go_on = hold_start(server.manager, "user")
    page = s.get(server.url + "/shell1", headers=HTML, allow_redirects=False, timeout=30)
    assert page.status_code == 200 and "Starting your notebook" in page.text, page.text[:300]
    links = LINK.findall(page.text)
    assert {rel for rel, *_ in links} == {"preload"} and len(links) == len(bundles), links
    for _, url, kind, cors in links:
        name, _, query = url.rsplit("/", 1)[1].partition("?")
        assert url.startswith("/notebook/static/notebook/") and name in bundles, url
        assert (kind, bool(cors)) == ("script", False), "scripts the page loads without CORS: no crossorigin"
        assert query == "v=" + name.split(".")[1], "the page's own URL (with ?v=), so the cache serves it"
        # Served while the server is still starting (held), compressed, with the page's type.
        assert not server.manager.get_notebook_status("user") or \
            not server.manager.get_notebook_status("user").get("static_files")
        r = raw_get(s, server.url + url)
        assert r.status_code == 200, (url, r.status_code, r.text[:200])
        assert r.headers["Content-Type"] == "application/javascript"
        assert r.headers["Content-Encoding"] in ("br", "gzip") and "max-age" in r.headers["Cache-Control"]
        with open(bundles[name].path, "rb") as f:
            assert decoded(r) == f.read()
    # Nothing else of the static folder is sent before the server runs: only the page's bundles.
    other = next(n for n in sorted(os.listdir(os.path.dirname(next(iter(bundles.values())).path)))
                 if n.endswith(".js") and n not in bundles)
    assert raw_get(s, f"{server.url}/notebook/static/notebook/{other}").status_code == 502
    go_on()
    wait_for(lambda: (server.manager.get_notebook_status("user") or {}).get("static_files"), timeout=90,
             message="the notebook's static folders")
    # The same URLs, now from the running server's own routes: the same bytes and type.
    for _, url, _, _ in links:
        r = raw_get(s, server.url + url)
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/javascript"
        assert decoded(r) == open(bundles[url.rsplit("/", 1)[1].split("?")[0]].path, "rb").read()


def test_home_page_prefetches_for_shell_users_only(demo_server):
    anonymous = requests.get(demo_server.url + "/", headers=HTML, allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302 and "prefetch" not in anonymous.text
    home = login(demo_server.url).get(demo_server.url + "/", timeout=10)
    links = LINK.findall(home.text)
    assert links and {rel for rel, *_ in links} == {"prefetch"}
    assert {u.rsplit("/", 1)[1].split("?")[0] for _, u, _, _ in links} == {b.name for b in installed_bundles()}


class HeaderPolicy:
    """Who the request is: its ``X-User`` header (a site whose user ``bob`` may not open a shell)."""

    def identity(self, request):
        return request.headers.get("X-User")

    def authenticated_userid(self, request):
        return request.headers.get("X-User")

    def permits(self, request, context, permission):
        user = request.headers.get("X-User")
        principals = [Everyone] + ([Authenticated, user] if user else [])
        return ACLHelper().permits(context, principals, permission)

    def remember(self, request, userid, **kw):
        return []

    def forget(self, request, **kw):
        return []


def test_no_preload_for_a_user_without_the_shell_permission(notebook_folder):
    settings = {"pyramid_notebook.notebook_folder": notebook_folder, "pyramid_notebook.shell_principals": "alice",
                "pyramid_notebook.fork_server": "false", "pyramid_notebook.precompress": "false"}
    with Configurator(settings=settings) as config:
        config.set_security_policy(HeaderPolicy())
        config.include("pyramid_notebook")
        config.add_route("home", "/")
        config.add_view(lambda r: Response(preload_links(r)), route_name="home")
        app = config.make_wsgi_app()
    main = next(b for b in installed_bundles() if b.name.startswith("main."))

    def get(path, user):
        request = Request.blank(path, headers={"X-User": user} if user else {})
        return request.get_response(app)

    assert "rel=\"prefetch\"" in get("/", "alice").text
    assert get("/", "bob").text == "" and get("/", None).text == ""
    # Nor the bundles themselves before a server runs: the proxy's permission comes first.
    url = f"/notebook/static/notebook/{main.name}{main.query}"
    assert get(url, "alice").status_code == 200
    assert get(url, "bob").status_code == 403


def test_the_bundles_are_compressed_at_site_start(make_demo_server, notebook_folder):
    server = make_demo_server(**{"pyramid_notebook.precompress": "true"})
    cache = compress.cache_for(server.app.registry)
    wanted = [cache.cached_path(cache.version(b.path), coding) for b in installed_bundles()
              if os.path.getsize(b.path) >= compress.MIN_SIZE for coding in ("gzip", "br")]
    wait_for(lambda: all(os.path.isfile(p) for p in wanted), timeout=240, interval=0.2,
             message="the bundles' gzip and brotli copies, made at start")
    # Then the rest of the notebook's static folder (gzip first: brotli of 13 MB takes its time).
    rest = preload.page_files(server.app.registry)[1]
    assert len(rest) > 100 and not [p for p in rest if p.endswith((".woff", ".woff2", ".png"))], "compressible only"
    wait_for(lambda: all(os.path.isfile(cache.cached_path(cache.version(p), "gzip")) for p in rest
                         if os.path.getsize(p) >= compress.MIN_SIZE), timeout=240, interval=0.2,
             message="the rest of the static folder gzipped at start")
    # Turned off: nothing is made at start.
    cache_folder = os.path.join(notebook_folder, "other-cache")
    off = make_demo_server(**{"pyramid_notebook.precompress": "false", "pyramid_notebook.compress_cache": cache_folder})
    assert getattr(off.app.registry, "pyramid_notebook_precompress", None) is None
    assert not os.path.exists(cache_folder) or not any(files for _, _, files in os.walk(cache_folder))


REPORT = "/notebook/api/pyramid-notebook/page-files"
#: The notebook page's Resource Timing: each file's URL and whether it came over the network.
RESOURCES = "return performance.getEntriesByType('resource').map(e => [e.name, e.transferSize, e.responseEnd])"


def preloading_progress_page(browser, server, go_on):
    """Click the shell while the user's server is held in its start: the progress page's preloaded URLs,
    once the browser has every one of them."""
    browser.find_by_id("shell2").click()
    wait_for(lambda: "Starting your notebook" in browser.html, timeout=30, message="the progress page")
    preloaded = [server.url + href for _, href, _, _ in LINK.findall(browser.html)]
    wait_for(lambda: set(preloaded) <= {n for n, _, end in browser.driver.execute_script(RESOURCES) if end > 0},
             timeout=60, message="the preloaded files downloaded during the start")
    go_on()
    return preloaded


def notebook_page_runs_a_cell(browser):
    from tests.test_browser import _text_on_page, run_in_last_cell, wait_for_output

    # The progress page gives way to the notebook page: splinter's is_text_present raised reading a body
    # the navigation had just replaced.
    wait_for(lambda: _text_on_page(browser, "a test variable"), timeout=90, interval=0.2,
             message="the notebook page's greeting")
    run_in_last_cell(browser, 'print("Output of a + b is", a + b)')
    wait_for_output(browser, "Output of a + b is foobar")


@pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)), reason="needs chromium")
def test_the_page_reports_what_it_loaded_and_a_cold_click_preloads_all_of_it(browser, make_demo_server):
    from tests.test_browser import log_in

    server = make_demo_server(**{"pyramid_notebook.progress_page": "true"})
    bundles = installed_bundles()
    log_in(browser, server.url)
    # A first cold click: the site knows the first bundles only.
    preloaded = preloading_progress_page(browser, server, hold_start(server.manager, "user"))
    assert len(preloaded) == len(bundles), preloaded
    notebook_page_runs_a_cell(browser)
    # Never more than a visit: the notebook page itself loaded every preloaded URL.
    assert set(preloaded) <= {name for name, *_ in browser.driver.execute_script(RESOURCES)}
    # The page tells the site what else it loaded, once it has settled.
    wait_for(lambda: preload.learned_files(server.app.registry), timeout=60, message="the page's report")
    learned_paths = {f.url: f.path for f in preload.learned_files(server.app.registry)}
    learned = list(learned_paths)
    assert len(learned) > 20 and any(u.startswith("lab/extensions/pyramid-notebook-shutdown/") for u in learned)
    assert all(u.startswith(("static/", "lab/extensions/")) for u in learned), learned

    # The next cold click, after a deploy's restart of the server and with an empty browser cache.
    server.manager.stop_notebook("user")
    browser.visit(server.url + "/")
    browser.driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    s = login(server.url)
    go_on = hold_start(server.manager, "user")
    page = s.get(server.url + "/shell2", headers=HTML, allow_redirects=False, timeout=30)
    links = LINK.findall(page.text)
    assert [href for _, href, *_ in links[len(bundles):]] == ["/notebook/" + u for u in learned]
    for _, href, kind, cors in links[len(bundles):]:
        # Served while the server is held in its start, compressed when text, with the page's type.
        r = raw_get(s, server.url + href)
        assert r.status_code == 200, (href, r.status_code, r.text[:200])
        path = href.split("?")[0]
        assert r.headers["Content-Type"] == {"script": "application/javascript", "style": "text/css",
                                             "font": "font/woff2"}.get(kind, r.headers["Content-Type"]), href
        assert bool(cors) == (kind == "font")
        local = learned_paths[href[len("/notebook/"):]]
        if compress.compressible(r.headers["Content-Type"], local) and os.path.getsize(local) >= compress.MIN_SIZE:
            assert r.headers["Content-Encoding"] in ("br", "gzip"), href
        if path.startswith("/notebook/lab/extensions/"):
            assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable", href
        with open(local, "rb") as f:
            assert decoded(r) == f.read(), href
    preloaded = preloading_progress_page(browser, server, go_on)
    assert len(preloaded) == len(bundles) + len(learned)
    notebook_page_runs_a_cell(browser)
    loaded = {name: size for name, size, _ in browser.driver.execute_script(RESOURCES)}
    assert set(preloaded) <= set(loaded), sorted(set(preloaded) - set(loaded))
    # ... and from the browser's cache: each file came over the network once, during the start.
    assert not [u for u in preloaded if loaded[u] > 0], "fetched again by the notebook page"
    # A restarted site (a deploy) preloads them from its first click: the list is in the cache folder.
    restarted = make_demo_server(**{"pyramid_notebook.progress_page": "true"})
    now = [f.url for f in preload.learned_files(server.app.registry)]
    assert len(now) > 20 and [f.url for f in preload.learned_files(restarted.app.registry)] == now


def test_a_bad_page_report_gets_a_clear_answer(make_demo_server):
    server = make_demo_server()
    s = login(server.url)
    assert s.get(server.url + "/shell1", timeout=120).status_code == 200
    origin = {"Origin": server.url, "Content-Type": "application/json"}
    for body, status in ((b"{not json", 400), (b'{"page": "tree/", "files": []}', 400),
                         (b'{"page": "notebooks/x.ipynb", "files": ["' + b"x" * 200_000 + b'"]}', 413)):
        r = s.post(server.url + REPORT, data=body, headers=origin, timeout=30)
        assert r.status_code == status and "Traceback" not in r.text, (body[:40], r.status_code, r.text[:300])
    assert s.get(server.url + REPORT, timeout=30).status_code == 405
    assert s.post(server.url + REPORT, data=b'{"page": "notebooks/x.ipynb", "files": []}', timeout=30,
                  headers={**origin, "Origin": "http://elsewhere.example"}).status_code == 403
    # Nothing usable: accepted, nothing learned.
    assert s.post(server.url + REPORT, data=b'{"page": "notebooks/x.ipynb", "files": ["api/kernels"]}',
                  headers=origin, timeout=30).status_code == 204
    assert preload.learned_files(server.app.registry) == []


def test_gunicorn_sends_103_early_hints(tmp_path, notebook_folder):
    ini = write_demo_ini(tmp_path, notebook_folder, **{"pyramid_notebook.precompress": "false"})
    log = open(tmp_path / "gunicorn.log", "w")
    bundles = installed_bundles()

    def launch(port):
        return subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "gunicorn"), "--paste", ini, "-b",
                                 f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket"],
                                cwd=str(tmp_path), stdout=log, stderr=subprocess.STDOUT)

    def ready(port):
        try:
            return requests.get(f"http://127.0.0.1:{port}/login", timeout=1).status_code == 200
        except requests.RequestException:  # not listening yet, or a first answer slower than 1 s (loaded machine)
            return False

    port, proc = serve_on_free_port(launch, ready, lambda: (tmp_path / "gunicorn.log").read_text(), timeout=60,
                                    message="gunicorn")
    try:
        url = f"http://127.0.0.1:{port}"
        s = login(url)
        cookie = "; ".join(f"{k}={v}" for k, v in s.cookies.items())
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            sock.sendall((f"GET /shell1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n"
                          f"Accept: text/html\r\nSec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: navigate\r\n"
                          f"Sec-Fetch-Dest: document\r\nConnection: close\r\n\r\n").encode())
            data = b""
            final = re.compile(rb"\r\n\r\nHTTP/1\.1 [1-5]\d\d .*?\r\n\r\n", re.S)
            while not final.search(data):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        head = data.decode("latin-1")
        assert head.startswith("HTTP/1.1 103 Early Hints\r\n"), head[:300]
        hints = head.split("\r\n\r\n", 1)[0]
        for b in bundles:
            assert f"</notebook/static/notebook/{b.name}{b.query}>; rel=preload; as=script" in hints, hints
        assert re.search(r"\r\n\r\nHTTP/1.1 (200|302) ", head), "then the launch's own answer"
    finally:
        stop_process(proc)
        log.close()
