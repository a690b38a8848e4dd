"""pyramid_notebook.relays.static: which URL maps to which file, and the cache headers Jupyter would send."""
import os

import pytest
from pyramid.request import Request

from pyramid_notebook.relays.static import IMMUTABLE, find_static_file, static_file_response


@pytest.fixture
def tree(tmp_path):
    first, second, outside = tmp_path / "first", tmp_path / "second", tmp_path / "outside"
    for d in (first / "sub", second, outside):
        d.mkdir(parents=True)
    (first / "sub" / "app.js").write_text("first")
    (second / "sub").mkdir()
    (second / "sub" / "app.js").write_text("second")
    (second / "only-second.css").write_text("body{}")
    (first / ".hidden.js").write_text("secret")
    (outside / "passwd.js").write_text("outside")
    os.symlink(outside / "passwd.js", first / "link.js")
    (first / "bundle.js.gz").write_bytes(b"\x1f\x8b")
    context = {"static_files": {
        "routes": [
            {"prefix": "/notebook/static/", "roots": [str(first), str(second)], "no_cache_paths": ["/notebook/static/custom"]},
            {"prefix": "/notebook/static/deeper/", "roots": [str(second)], "no_cache_paths": []},
        ],
        "immutable": ["/notebook/static/sub/"],
    }}
    return context, first, second


def test_first_folder_with_the_file_wins(tree):
    context, first, second = tree
    assert find_static_file(context, "/notebook/static/sub/app.js")[0] == str(first / "sub" / "app.js")
    assert find_static_file(context, "/notebook/static/only-second.css")[0] == str(second / "only-second.css")


def test_longest_prefix_is_the_route(tree):
    context, first, second = tree
    path, route = find_static_file(context, "/notebook/static/deeper/only-second.css")
    assert route["prefix"] == "/notebook/static/deeper/" and path == str(second / "only-second.css")
    # The deeper route owns its prefix: no falling back to the shorter one (Jupyter would 404).
    assert find_static_file(context, "/notebook/static/deeper/sub/missing.js") is None


@pytest.mark.parametrize("path", [
    "/notebook/static/../first/sub/app.js", "/notebook/static/sub/../sub/app.js", "/notebook/static/.hidden.js",
    "/notebook/static//sub/app.js", "/notebook/static/sub/", "/notebook/static/", "/notebook/static/sub",
    "/notebook/static/missing.js", "/notebook/api/status", "/notebook/static/sub\\app.js",
])
def test_anything_unusual_is_left_to_jupyter(tree, path):
    context, _, _ = tree
    assert find_static_file(context, path) is None


def test_links_out_of_the_folder_are_left_to_jupyter(tree):
    context, _, _ = tree
    assert find_static_file(context, "/notebook/static/link.js") is None


def test_nothing_published_means_proxy(tree):
    assert find_static_file({}, "/notebook/static/sub/app.js") is None
    assert find_static_file({"static_files": "garbage"}, "/notebook/static/sub/app.js") is None
    assert find_static_file({"static_files": {"routes": [{"nonsense": 1}]}}, "/notebook/static/sub/app.js") is None


def _get(path, method="GET", **headers):
    return Request.blank(path, method=method, headers=headers)


def test_response_body_and_cache_rules(tree):
    context, _, _ = tree
    r = static_file_response(_get("/notebook/static/sub/app.js"), context)
    assert b"".join(r.app_iter) == b"first"
    assert r.headers["Cache-Control"] == IMMUTABLE and "Expires" not in r.headers
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.content_type in ("text/javascript", "application/javascript")

    r = static_file_response(_get("/notebook/static/only-second.css"), context)
    assert r.headers["Cache-Control"] == "no-cache", "unversioned and not immutable"
    r = static_file_response(_get("/notebook/static/only-second.css?v=1"), context)
    assert r.headers["Cache-Control"] == "max-age=315360000" and "Expires" in r.headers
    r = static_file_response(_get("/notebook/static/sub/app.js?v=1"), context)
    assert r.headers["Cache-Control"] == IMMUTABLE and "Expires" in r.headers


def test_no_cache_paths(tree, tmp_path):
    context, first, _ = tree
    (first / "custom").mkdir()
    (first / "custom" / "custom.css").write_text("x")
    r = static_file_response(_get("/notebook/static/custom/custom.css?v=1"), context)
    assert r.headers["Cache-Control"] == "no-cache"


def test_only_reads_and_no_compressed_files(tree):
    context, _, _ = tree
    assert static_file_response(_get("/notebook/static/sub/app.js", method="POST"), context) is None
    assert static_file_response(_get("/notebook/static/bundle.js.gz"), context) is None
    head = _get("/notebook/static/sub/app.js", method="HEAD").get_response(
        lambda environ, start_response: static_file_response(Request(environ), context)(environ, start_response))
    assert head.status_code == 200 and head.body == b"" and head.content_length == 5


def test_conditional_and_range_requests(tree):
    context, _, _ = tree
    full = static_file_response(_get("/notebook/static/sub/app.js"), context)

    def app(environ, start_response):
        return static_file_response(Request(environ), context)(environ, start_response)

    r = _get("/notebook/static/sub/app.js", **{"If-Modified-Since": full.headers["Last-Modified"]}).get_response(app)
    assert r.status_code == 304
    r = _get("/notebook/static/sub/app.js", Range="bytes=1-2").get_response(app)
    assert r.status_code == 206 and r.body == b"ir"


def test_the_notebook_publishes_the_route_tornado_picks(tmp_path):
    """What the notebook publishes comes from its router: first matching rule, its own kwargs."""
    from jupyter_server.base.handlers import FileFindHandler
    from tornado.web import Application, RequestHandler

    from pyramid_notebook.server.static_files import _route_for

    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    app = Application([
        (r"/nb/static/(.*)", FileFindHandler, {"path": [a, b], "no_cache_paths": ["/nb/static/custom"]}),
        (r"/nb/static/(.*)", FileFindHandler, {"path": [b]}),  # registered later: never used
        (r"/nb/api/(.*)", RequestHandler),
        (r"/nb/one/(\w+)\.js", FileFindHandler, {"path": a}),  # not a plain file tail
    ])
    assert _route_for(app, "/nb/static/") == {"prefix": "/nb/static/", "roots": [a, b],
                                              "no_cache_paths": ["/nb/static/custom"]}
    assert _route_for(app, "/nb/api/") is None, "not a file handler"
    assert _route_for(app, "/nb/one/") is None
    assert _route_for(app, "/elsewhere/") is None


FILES_CSP = "frame-ancestors 'self'; report-uri /notebook/api/security/csp-report; sandbox allow-scripts"


@pytest.fixture
def files(tmp_path):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    for name in ("page.html", "notes.txt", "nb.ipynb", "sub/d\u00e9j\u00e0 vu.csv", "data.gz", ".secret"):
        (work / name).write_text("x")
    context = {"allow_origin": "https://site.example", "static_files": {"immutable": [], "routes": [
        {"prefix": "/notebook/files/", "roots": [str(work)], "no_cache_paths": [], "kind": "files",
         "headers": {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": FILES_CSP, "X-Other": "no"}}]}}
    return context, work


def _from_site(path, **headers):
    return _get(path, Referer="https://site.example/notebook/tree", **headers)


def test_user_files_follow_jupyters_files_handler(files):
    from pyramid_notebook.relays.static import static_file_plan

    context, work = files
    path, content_type, headers = static_file_plan(_from_site("/notebook/files/page.html"), context)
    assert path == str(work / "page.html") and content_type == "text/html"
    assert headers == {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", "Content-Security-Policy": FILES_CSP}
    assert static_file_plan(_from_site("/notebook/files/notes.txt"), context)[1] == "text/plain; charset=UTF-8"
    _, content_type, headers = static_file_plan(_from_site("/notebook/files/nb.ipynb"), context)
    assert content_type == "application/x-ipynb+json"
    assert headers["Content-Disposition"] == "attachment; filename*=utf-8''nb.ipynb"
    _, _, headers = static_file_plan(_from_site("/notebook/files/sub/d%C3%A9j%C3%A0%20vu.csv?download=1&v=3"), context)
    assert headers["Content-Disposition"] == "attachment; filename*=utf-8''d%C3%A9j%C3%A0%20vu.csv"
    assert headers["Cache-Control"].startswith("max-age=") and "Expires" in headers
    assert "Content-Disposition" not in static_file_plan(_from_site("/notebook/files/page.html?download="), context)[2]
    # Only the handler's own headers are copied; the response carries exactly Jupyter's type.
    r = static_file_response(_from_site("/notebook/files/page.html"), context)
    assert r.headers["Content-Type"] == "text/html" and "X-Other" not in r.headers


def test_user_files_jupyter_must_judge_are_left_to_it(files):
    from pyramid_notebook.relays.static import static_file_plan

    context, _ = files
    for request in (_get("/notebook/files/page.html"),  # no Referer: Jupyter's XSSI check decides
                    _get("/notebook/files/page.html", Referer="https://evil.example/"),
                    _from_site("/notebook/files/page.html", Origin="https://evil.example"),
                    _from_site("/notebook/files/.secret"), _from_site("/notebook/files/data.gz"),
                    _from_site("/notebook/files/sub"),
                    _from_site("/notebook/files/page.html", method="POST")):
        assert static_file_plan(request, context) is None, request.url
    assert static_file_plan(_from_site("/notebook/files/page.html", method="HEAD"), context) is not None
    assert static_file_plan(_from_site("/notebook/files/page.html"), dict(context, allow_origin="")) is None
