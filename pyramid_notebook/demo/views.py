"""Demo views: home, login/logout, two shells, shutdown and the notebook proxy."""
import html
from urllib.parse import urlsplit

from pyramid.csrf import new_csrf_token
from pyramid.exceptions import BadCSRFOrigin, BadCSRFToken, URLDecodeError
from pyramid.httpexceptions import HTTPForbidden, HTTPFound
from pyramid.response import Response
from pyramid.security import forget, remember
from pyramid.view import exception_view_config, forbidden_view_config, view_config
from webob.request import DisconnectionError

from pyramid_notebook import preload_links
from pyramid_notebook.core import startup
from pyramid_notebook.web.badurl import bad_url_view
from pyramid_notebook.core.framing import refuse_framing
from pyramid_notebook.web.intent import get_csrf_token
from pyramid_notebook.demo.models import Base, Item
from pyramid_notebook.demo.security import check_password
from pyramid_notebook.demo.sharing import sharing_section
from pyramid_notebook.web.views import launch_notebook, notebook_proxy, shutdown_notebook

LAYOUT = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>pyramid_notebook demo</title>{head}</head>
<body>{body}</body></html>
"""

HOME = """<h1>pyramid_notebook demo</h1>
<p id="whoami">Logged in as <strong>{user}</strong>. <a href="/logout">Log out</a></p>
<p>The demo database has {count} item(s).</p>
<ul id="items">{items}</ul>
{shells}{sharing}"""

#: The shells, for users with the shell permission (``viewer`` has none: it only watches what is shared).
SHELLS = """<ul>
<li><a id="shell1" href="/shell1">Shell 1</a>: the site's <code>app</code>, <code>request</code>,
    <code>root</code> and <code>registry</code></li>
<li><a id="shell2" href="/shell2">Shell 2</a>: also <code>a</code>, <code>b</code>, <code>fn()</code> and the
    SQLAlchemy models</li>
<li><a id="shell3" href="/shell3">Shell 3</a>: Shell 1 with a two-hour time-out, a server setting: opening it
    restarts your notebook server (the other shells open beside each other in the running one)</li>
<li><a id="embed" href="/embed">Shell 2 inside this site's page</a>: save analyses to the site's
    database and reopen them</li>
<li><a id="shutdown" href="/notebook/shutdown">Shut down my notebook</a></li>
<li><a id="notebook-admin" href="/notebook-admin/">Operator console</a> (administrators: <code>user</code>)</li>
<li><a id="recipes" href="/notebook/recipes">Team recipes</a>: notebooks published with a notebook's
    <em>File → Publish to team recipes…</em>; read them here, open them in your shell</li>
</ul>
"""

LOGIN = """<h1>Log in</h1>
<p class="error">{error}</p>
<form method="post" action="/login">
<input type="hidden" name="csrf_token" value="{csrf_token}">
<input type="hidden" name="came_from" value="{came_from}">
<label>Username <input type="text" name="username" id="username" autofocus></label>
<label>Password <input type="password" name="password" id="password"></label>
<button type="submit" id="login">Log in</button>
</form>
<p>Users: <code>user</code> / <code>password</code> and <code>user2</code> / <code>password</code>;
<code>viewer</code> / <code>password</code> has no shell and only watches notebooks shared with it.</p>
"""


def page(body, status=200, head=""):
    """A demo HTML page; no other page may frame it.

    Home carries the shell and shutdown links: framed, nearly invisible, by another page,
    a click meant for that page could land on them (clickjacking). Send ``frame-ancestors``
    on every page with such links.
    """
    response = Response(LAYOUT.format(body=body, head=head), status=status, content_type="text/html", charset="utf-8")
    return refuse_framing(response)


def _local_path(url) -> str:
    """Only redirect to paths on this site after login (no open redirect)."""
    parts = urlsplit(url or "/")
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return "/"
    return parts.path + (f"?{parts.query}" if parts.query else "")


ITEM = """<li>{name} <a id="item-shell-{id}" class="item-shell" href="/items/{id}/shell">Shell</a></li>"""


@view_config(route_name="home", permission="view")
def home(request):
    """The home page with links to the shells (users with a shell), a shell button on each item, and sharing."""
    items = request.dbsession.query(Item).order_by(Item.id).all()
    shell = bool(request.has_permission("shell"))
    listing = "".join(ITEM.format(name=html.escape(item.name), id=item.id) if shell else
                      f"<li>{html.escape(item.name)}</li>" for item in items)
    # The notebook page's bundles, fetched at idle time: the first click on a shell finds them cached.
    return page(HOME.format(user=html.escape(request.authenticated_userid), count=len(items), items=listing,
                            shells=SHELLS if shell else "", sharing=sharing_section(request)),
                head=preload_links(request))


def login_page(request, error="", came_from="/", status=200):
    """The login form, with the session's CSRF token."""
    body = LOGIN.format(error=html.escape(error), came_from=html.escape(came_from),
                        csrf_token=html.escape(get_csrf_token(request), quote=True))
    return page(body, status=status)


@view_config(route_name="login", require_csrf=True)
def login(request):
    """Login form; on success redirect back where the user came from.

    ``require_csrf``: a POST must carry the form's token, so another site's form cannot
    log the user in as someone else (whose notebook would then get what they type).
    """
    came_from = _local_path(request.params.get("came_from", "/"))
    if request.method == "POST":
        username = request.POST.get("username", "")
        if check_password(username, request.POST.get("password", "")):
            new_csrf_token(request)  # a new login, a new token
            return HTTPFound(came_from, headers=remember(request, username))
        return login_page(request, "Wrong username or password.", came_from, status=400)
    return login_page(request, came_from=came_from)


@exception_view_config(BadCSRFToken)
@exception_view_config(BadCSRFOrigin)
def bad_csrf(exc, request):
    """A login form from another site, or an expired one: 400 and a fresh form."""
    return login_page(request, "This form was not sent from this site's login page (or it expired); "
                      "log in again.", status=400)


@exception_view_config(UnicodeDecodeError)
def not_utf8(exc, request):
    """A query string or form that is not UTF-8 (``/login?came_from=%ff``): 400, not a traceback."""
    return page("<h1>Bad request</h1><p>The address or form is not UTF-8.</p>", status=400)


@exception_view_config(DisconnectionError)
def body_cut_off(exc, request):
    """The client sent less body than it announced (under a server that does not buffer bodies)."""
    return page("<h1>Bad request</h1><p>The request's body was cut off.</p>", status=400)


@view_config(route_name="logout")
def logout(request):
    """Forget the login and go to the login page."""
    return HTTPFound("/login", headers=forget(request))


@forbidden_view_config()
def forbidden(request):
    """Send people who are not logged in to the login form; refuse everything else."""
    if request.authenticated_userid is None and request.method == "GET" and \
            "text/html" in request.headers.get("Accept", ""):
        return HTTPFound("/login?came_from=" + request.path_qs.replace("&", "%26"))
    return page("<h1>Forbidden</h1><p>Log in first, as a user who may use the shell.</p>", status=403)


def _config_file(request):
    return request.registry.settings["pyramid_notebook.demo.config_file"]


@view_config(route_name="shell1", permission="shell")
def shell1(request):
    """A notebook with the Pyramid bootstrap variables."""
    nb = {"shell_name": "Shell 1"}
    startup.make_startup(nb, _config_file(request))
    return launch_notebook(request, request.authenticated_userid, notebook_context=nb)


def shell2_context(request) -> dict:
    """Shell 2's notebook context: the bootstrap, a few test variables and the SQLAlchemy models."""
    nb = {"shell_name": "Shell 2"}
    startup.make_startup(nb, _config_file(request))
    startup.add_script(nb, 'a = "foo"')
    startup.add_greeting(nb, "* **a** - a test variable")
    startup.add_script(nb, 'b = "bar"')
    startup.add_greeting(nb, "* **b** - another test variable")
    startup.add_script(nb, 'def fn():\n    print("Hello there")')
    startup.add_greeting(nb, "* **fn()** - a test function")
    startup.add_script(nb, "dbsession = request.dbsession")
    startup.add_greeting(nb, "* **dbsession** - the demo's SQLAlchemy session")
    startup.include_sqlalchemy_models(nb, Base)
    return nb


@view_config(route_name="shell2", permission="shell")
def shell2(request):
    """A notebook with the bootstrap, a few test variables and the SQLAlchemy models."""
    return launch_notebook(request, request.authenticated_userid, notebook_context=shell2_context(request))


@view_config(route_name="shell3", permission="shell")
def shell3(request):
    """Shell 1 with another ``kill_timeout``: a server setting, so opening it restarts the server."""
    nb = {"kill_timeout": 7200}
    startup.make_startup(nb, _config_file(request))
    return launch_notebook(request, request.authenticated_userid, notebook_context=nb)


def item_shell_context(request, item_id: int) -> dict:
    """The context of an item's shell button: the bootstrap, and that ``item`` loaded."""
    nb = {}
    startup.make_startup(nb, _config_file(request))
    startup.add_script(nb, "from pyramid_notebook.demo.models import Item")
    startup.add_script(nb, f"item = request.dbsession.get(Item, {int(item_id)})")
    startup.add_greeting(nb, f"* **item** - the item #{int(item_id)} whose shell button you clicked")
    return nb


@view_config(route_name="item_shell", permission="shell")
def item_shell(request):
    """A shell whose notebook has the item of the page's button loaded as ``item``."""
    try:
        item_id = int(request.matchdict["id"])
    except ValueError:
        return page("<h1>Not found</h1><p>No such item.</p>", status=404)
    if request.dbsession.get(Item, item_id) is None:
        return page("<h1>Not found</h1><p>No such item.</p>", status=404)
    return launch_notebook(request, request.authenticated_userid,
                           notebook_context=item_shell_context(request, item_id))


@view_config(route_name="shutdown_notebook", permission="shell")
def shutdown(request):
    """Stop the user's notebook and go home.

    GET (a link on this site, the notebook's own control) and POST (the confirmation
    page's button) both come here: ``shutdown_notebook`` raises its confirmation page
    when the request does not show that the user meant it.
    """
    shutdown_notebook(request, request.authenticated_userid)
    return HTTPFound(request.route_url("home"))


@exception_view_config(URLDecodeError)
def bad_url(exc, request):
    """An address that is not UTF-8: 400 with the library's error page, site-wide."""
    return bad_url_view(exc, request)


@view_config(route_name="notebook_proxy", permission="shell", require_csrf=False)
def proxy(request):
    """Everything under /notebook/ goes to the logged-in user's own notebook."""
    username = request.authenticated_userid
    if not username:
        raise HTTPForbidden()
    return notebook_proxy(request, username)
