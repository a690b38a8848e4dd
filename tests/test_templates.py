"""The library's pages come from Jinja2 templates with one layout, and whatever a user supplies is escaped.

Every page is rendered for real (the package's templates, its one environment); two through the
demo in waitress, where the hostile text arrives in a request.
"""
import ast
import asyncio
import http.client
import json
import os
import re
from urllib.parse import quote, urlencode, urlsplit

import pytest
from pyramid import testing
from pyramid.request import Request

from pyramid_notebook.core import templates
from tests.helpers import CLICK, login

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyramid_notebook")
#: A page's markers: none may appear in a Python string of the package.
PAGE_MARKERS = re.compile(r"<html|<!doctype|<body|<head\b", re.I)
#: What a hostile user types: a script, an attribute breaking out of its quotes, an entity.
HOSTILE = """</script><script>alert("pwned")</script>"><img src=x onerror=alert('x')>&amp;"""


def _page_strings(source: str) -> list:
    """The string constants of ``source`` (f-strings' literal parts too, docstrings not) that look like a page."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and id(node) not in docstrings
            and isinstance(node.value, str) and PAGE_MARKERS.search(node.value)]


def test_no_module_builds_a_page_in_a_python_string():
    """Pages are templates: no module of the package has ``<html``, ``<!DOCTYPE``, ``<body`` or ``<head``
    in a string. The demo is left out: it stands for the host site, whose pages are its own business."""
    assert _page_strings('PAGE = f"""<!DOCTYPE html>\\n<html><body>{x}</body></html>"""'), "the check finds one"
    assert not _page_strings('"""A docstring about the <head> of a page."""')
    assert _page_strings('def f():\n    """Doc."""\n    return "<head><title>x</title></head>"')
    found = {}
    for parent, folders, names in os.walk(PACKAGE):
        folders[:] = [f for f in folders if f not in ("__pycache__", "demo")]
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(parent, name)
                with open(path, encoding="utf-8") as f:
                    strings = _page_strings(f.read())
                if strings:
                    found[os.path.relpath(path, PACKAGE)] = [s[:80] for s in strings]
    assert found == {}, f"HTML pages built in Python strings (make them templates in web/templates): {found}"


def test_every_page_template_extends_the_one_layout():
    """Only ``base.html`` has the document's frame; every other page extends it (directly or through
    ``recipes_base.html``); the rest are fragments without one."""
    env = templates.environment()
    names = env.list_templates(extensions=["html"])
    assert {"base.html", "error.html", "confirm.html", "reason.html", "progress.html", "admin_console.html",
            "recipes_base.html", "recipes_list.html", "recipe.html"} <= set(names)

    def parent(name):
        source = env.loader.get_source(env, name)[0]
        extends = list(env.parse(source).find_all(__import__("jinja2").nodes.Extends))
        return source, (extends[0].template.value if extends else None)

    for name in names:
        source, extends = parent(name)
        if name == "base.html":
            assert source.count("<!DOCTYPE html>") == 1 and extends is None
            continue
        assert not PAGE_MARKERS.search(source), f"{name} has its own document frame: extend base.html"
        chain = [name]
        while extends is not None:
            chain.append(extends)
            _, extends = parent(extends)
        assert chain[-1] == "base.html" or len(chain) == 1, chain
    assert parent("recipes_base.html")[1] == "base.html"


def test_templates_are_compiled_once_and_kept():
    """The environment is the process's one, never re-reads a template (no ``stat`` per page) and escapes."""
    env = templates.environment()
    assert env is templates.environment() and env.autoescape is True and env.auto_reload is False
    assert env.get_template("progress.html") is env.get_template("progress.html")
    assert templates.compile_all() >= 9


# --- every page escapes what users supply (rendered by the library's own functions) -------------------

@pytest.fixture
def registry(tmp_path):
    """A site's registry with the library included (the CSRF fallback policy: no session factory)."""
    config = testing.setUp(settings={"pyramid_notebook.notebook_folder": str(tmp_path / "nb")})
    config.include("pyramid_notebook")
    config.commit()
    yield config.registry
    testing.tearDown()


def _request(registry, path):
    request = Request.blank(path, base_url="http://site.example")
    request.registry = registry
    return request


def _assert_escaped(text, scripts=0):
    """``HOSTILE`` shows nowhere as markup; the page's own ``<script>`` elements are all there are."""
    assert "<img" not in text and 'alert("pwned")</script>' not in text, text
    assert text.count("<script") == scripts, text
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in text or "\\u003cscript\\u003e" in text


def test_error_page_escapes_title_message_and_details():
    from pyramid.httpexceptions import HTTPBadRequest

    from pyramid_notebook.core.pages import error_page

    response = error_page(HTTPBadRequest, HOSTILE, HOSTILE, details=HOSTILE)
    assert response.status_code == 400 and response.content_type == "text/html"
    _assert_escaped(response.text)
    assert response.text.count("&lt;script&gt;alert(&#34;pwned&#34;)") == 4  # title, heading, message, details
    assert "&amp;amp;" in response.text, "an entity the user typed is shown as typed"


def test_relay_error_answer_escapes():
    from pyramid_notebook.relays.asgi_body import answer

    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(answer(send, 413, HOSTILE, HOSTILE))
    assert sent[0]["status"] == 413
    _assert_escaped(sent[1]["body"].decode())


def test_confirmation_page_escapes_its_text_and_address(registry):
    from pyramid_notebook.web.intent import confirmation_page

    request = _request(registry, "/notebook-admin/stop?user=" + quote(HOSTILE))
    page = confirmation_page(request, HOSTILE, f"This stops the notebook of {HOSTILE}.", HOSTILE, cancel_url=HOSTILE)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    _assert_escaped(page.text)
    assert re.search(r'<input type="hidden" name="csrf_token" value="[0-9a-f]{32,}">', page.text)
    assert '<button type="submit" id="pyramid-notebook-confirm">&lt;/script&gt;' in page.text


def test_reason_page_escapes_the_error_and_address(registry):
    from pyramid_notebook.web.audit import reason_page

    page = reason_page(_request(registry, "/shell2?next=" + quote(HOSTILE)), required=True, error=HOSTILE)
    assert page.status_code == 200 and page.headers["X-Frame-Options"] == "DENY"
    _assert_escaped(page.text)
    assert 'maxlength="2000" required></textarea>' in page.text
    assert 'maxlength="2000"></textarea>' in reason_page(_request(registry, "/shell2"), required=False).text


def test_progress_page_escapes_the_address_in_html_and_script(registry):
    import html

    from pyramid_notebook.web.progress import HEADER, PARAM, _progress_response

    # The poll URL keeps the launch's path as WebOb quotes it (``'`` and ``&`` stay) and its query,
    # re-encoded: the page's meta refresh and its script must both give it back exactly.
    request = _request(registry, "/shell/it's&more?next=" + quote(HOSTILE))
    page = _progress_response(request, "0123abcd")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "<img" not in page.text and 'alert("pwned")' not in page.text and page.text.count("<script") == 1
    expected = f"/shell/it's&more?{urlencode({'next': HOSTILE, PARAM: '0123abcd'})}"
    script_url = re.search(r'var url = ("[^"]*")', page.text).group(1)
    assert "'" not in script_url and "&" not in script_url and json.loads(script_url) == expected
    meta_url = re.search(r'content="2;url=([^"]*)"', page.text).group(1)
    assert "&#39;" in meta_url and "&amp;" in meta_url and html.unescape(meta_url) == expected
    assert f'{{headers: {{ "{HEADER}": "1"}}' in page.text


def test_console_escapes_rows_message_and_token():
    from pyramid_notebook.web.admin_page import console_html

    rows = [{"user": HOSTILE, "running": True, "state": "running", "memory": 3 * 2 ** 20, "shell": HOSTILE,
             "kernels": [{"name": HOSTILE, "execution_state": "idle", "notebooks": [HOSTILE]}], "log_tail": [HOSTILE]}]
    text = console_html(rows, HOSTILE, stop_url=HOSTILE, stop_idle_url=HOSTILE, message=HOSTILE)
    _assert_escaped(text, scripts=2)
    data = re.search(r'<script type="application/json" id="notebook-admin-data">(.*?)</script>', text, re.S).group(1)
    assert json.loads(data) == rows, "the rows reach the page's script as they are"
    assert '<b id="count-running">1</b>' in text and '<b id="total-memory">3 MiB</b>' in text
    assert f'var token = {json.dumps(HOSTILE)}' not in text and "var token = \"\\u003c/script" in text


def test_recipe_pages_escape_what_users_wrote():
    from pyramid_notebook.web.recipes_pages import page

    recipe = {"name": "r1", "title": HOSTILE, "description": HOSTILE, "author": HOSTILE, "updated": "today",
              "version": 1}
    response = page("recipes_list.html", recipes=[recipe], query=HOSTILE, home_url="/notebook/recipes", user=HOSTILE)
    _assert_escaped(response.text)
    assert "default-src 'none'; script-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.text.startswith("<!DOCTYPE html>") and '<tr class="recipe" data-name="r1">' in response.text


# --- through the demo: the hostile text arrives in a request ---------------------------------------

def test_demo_console_confirmation_shows_a_hostile_username_escaped(demo_server):
    admin = login(demo_server.url, "user")
    r = admin.get(demo_server.url + "/notebook-admin/stop", params={"user": HOSTILE}, allow_redirects=False)
    assert r.status_code == 200 and "Stop this notebook?" in r.text
    _assert_escaped(r.text)
    assert "This stops the notebook of &lt;/script&gt;&lt;script&gt;alert(&#34;pwned&#34;)" in r.text
    assert r.headers["Cache-Control"] == "no-store" and "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    console = admin.get(demo_server.url + "/notebook-admin/")
    assert console.status_code == 200 and console.text.count("<script") == 2
    assert 'id="notebook-admin-table"' in console.text and 'id="stop-idle"' in console.text


def test_demo_reason_page_shows_a_hostile_address_escaped(make_demo_server):
    server = make_demo_server(**{"pyramid_notebook.audit_reason": "required"})
    session = login(server.url)
    # Sent raw (requests would percent-encode it): the address is what the form posts back to.
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    connection.request("GET", '/shell2?next="><script>alert("pwned")</script>',
                       headers=dict(CLICK, Cookie=cookie, Accept="text/html"))
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    assert response.status == 200 and 'id="pyramid-notebook-reason"' in text, text[:500]
    assert '<script>alert("pwned")' not in text and text.count("<script") == 0
    assert 'action="/shell2?next=&#34;&gt;&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;"' in text
    assert server.manager.get_notebook_status("user") is None, "no notebook before the reason"
