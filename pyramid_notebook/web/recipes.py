"""Team recipes on the site: publish a notebook, browse and read it without a server, open a copy.

``config.include("pyramid_notebook")`` adds, when ``shell_principals`` or ``recipe_principals`` is set:

* ``GET /notebook/recipes``: the list (HTML, or JSON ``{"recipes": [...]}`` for ``Accept:
  application/json``); ``?q=`` searches titles, descriptions, names and authors;
* ``POST /notebook/recipes`` (JSON ``{"path", "name", "message"}``) → ``201 {"name", "version"}``;
* ``GET /notebook/recipes/<name>`` (``?version=N``): the notebook rendered, its versions (JSON too);
* ``GET /notebook/recipes/<name>/diff?from=1&to=2``: what changed (nbdime);
* ``POST /notebook/recipes/<name>/open``: a copy in the user's folder, then 303 into their shell
  (JSON: ``{"url"}``);
* ``DELETE /notebook/recipes/<name>`` (or the page's form, ``POST .../delete``): its first author or an admin.

The JSON API acts on same-origin requests only (:func:`pyramid_notebook.web.intent.browser_intent`:
``Sec-Fetch-Site`` / ``Origin``) and takes bodies of ``Content-Type: application/json`` only, which no
HTML form of another site can send; the pages' own forms carry the site's CSRF token. Read with
``recipes.read`` (shell, recipe and admin principals), open with ``recipes.open`` (shell and recipe
principals: it launches the user's own notebook), publish with ``recipes.publish`` (``recipe_principals``,
default the shell principals).
"""
import json
from urllib.parse import quote

from pyramid.authorization import ALL_PERMISSIONS, Allow, Deny, Everyone
from pyramid.httpexceptions import (
    HTTPBadRequest, HTTPCreated, HTTPForbidden, HTTPNotFound, HTTPSeeOther, HTTPServiceUnavailable,
    HTTPUnsupportedMediaType,
)
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED
from markupsafe import Markup

from pyramid_notebook.core.audit import AuditError
from pyramid_notebook.core.origin import route_to_alt_domain
from pyramid_notebook.core.pages import error_page
from pyramid_notebook.core.recipenb import BadNotebook, check_name, name_from_path, normalize, title_and_description
from pyramid_notebook.core.recipes import LibraryUnavailable, NotAllowed, RecipeNotFound, library
from pyramid_notebook.core.routes import routes_first
from pyramid_notebook.core.settings import PREFIX, get_notebook_settings, parse_principals, parse_shell_principals
from pyramid_notebook.web import contents, permission, recipes_io, recipes_pages
from pyramid_notebook.web.intent import browser_intent, get_csrf_token, has_valid_csrf_token
from pyramid_notebook.web.views import launch_on_demand

LIST_ROUTE, RECIPE_ROUTE, OPEN_ROUTE, DELETE_ROUTE, DIFF_ROUTE = (
    "notebook_recipes", "notebook_recipe", "notebook_recipe_open", "notebook_recipe_delete", "notebook_recipe_diff")
ROUTES = ((OPEN_ROUTE, "/notebook/recipes/{name}/open"), (DELETE_ROUTE, "/notebook/recipes/{name}/delete"),
          (DIFF_ROUTE, "/notebook/recipes/{name}/diff"), (RECIPE_ROUTE, "/notebook/recipes/{name}"),
          (LIST_ROUTE, "/notebook/recipes"))
READ, OPEN, PUBLISH, ADMIN = "recipes.read", "recipes.open", "recipes.publish", "recipes.admin"
#: Largest JSON body of a publish request (a path, a name, a message).
MAX_JSON_BODY = 16 * 1024


class RecipesACL:
    """Route context: who may read, open (in a shell of their own), publish, and delete anyone's recipe."""

    readers: tuple = ()
    openers: tuple = ()
    publishers: tuple = ()
    admins: tuple = ()

    def __init__(self, request):
        self.request = request
        self.__acl__ = [(Allow, p, READ) for p in self.readers] + [(Allow, p, OPEN) for p in self.openers] + \
            [(Allow, p, PUBLISH) for p in self.publishers] + [(Allow, p, ADMIN) for p in self.admins] + \
            [(Deny, Everyone, ALL_PERMISSIONS)]


class Answer(Exception):
    """Raised with the error answer to send as it is (not the site's forbidden view, for a 403)."""

    def __init__(self, response):
        super().__init__(response.status)
        self.response = response


def _wants_json(request) -> bool:
    offers = request.accept.acceptable_offers(["text/html", "application/json"])
    return request.content_type == "application/json" or bool(offers and offers[0][0] == "application/json")


def _fail(request, exc_class, title, message) -> Answer:
    """An error answer: JSON ``{"error"}`` for JSON clients, the library's error page otherwise."""
    if _wants_json(request):
        return Answer(exc_class(json_body={"error": message, "title": title}))
    return Answer(error_page(exc_class, title, message))


def _library(request):
    return library(get_notebook_settings(request.registry).recipes_folder)


def _user(request) -> str:
    return str(request.authenticated_userid)


def _require_same_origin(request) -> None:
    if browser_intent(request) is not True:
        raise _fail(request, HTTPForbidden, "Cross-site request refused",
                    "The recipes API acts on requests from this site's own pages only.")


def _json_body(request) -> dict:
    _require_same_origin(request)
    if request.content_type != "application/json":
        raise _fail(request, HTTPUnsupportedMediaType, "JSON only", "Send Content-Type: application/json.")
    if (request.content_length or 0) > MAX_JSON_BODY:
        raise _fail(request, HTTPBadRequest, "Request too large", "The request's body is too large.")
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise _fail(request, HTTPBadRequest, "Bad JSON", "The request's body is not JSON.") from None
    if not isinstance(body, dict):
        raise _fail(request, HTTPBadRequest, "Bad JSON", "The request's body must be a JSON object.")
    return body


def _common(request) -> dict:
    return {"home_url": request.route_path(LIST_ROUTE), "user": _user(request)}


def list_view(context, request):
    """``GET /notebook/recipes``: the list, HTML or JSON; ``POST``: publish."""
    if request.method == "POST":
        return publish_view(context, request)
    recipes = _library(request).listing()
    query = (request.GET.get("q") or "").strip()[:200]
    if query:
        words = query.lower().split()
        def text(r):
            return " ".join((r["name"], r["title"], r["description"], r["author"])).lower()

        recipes = [r for r in recipes if all(w in text(r) for w in words)]
    if _wants_json(request):
        return Response(json_body={"recipes": recipes}, headers={"Cache-Control": "private, no-cache"})
    return recipes_pages.page("recipes_list.html", recipes=recipes, query=query, **_common(request))


def publish_view(context, request):
    """``POST /notebook/recipes`` ``{"path", "name", "message"}`` → ``201 {"name", "version"}``."""
    permission.require(request, context, PUBLISH)
    body = _json_body(request)
    settings = get_notebook_settings(request.registry)
    path, name, message = body.get("path"), body.get("name"), body.get("message") or ""
    try:
        if not isinstance(message, str):
            raise BadNotebook("The message must be text.")
        if name is None or name == "":
            name = name_from_path(path) if isinstance(path, str) else None
        check_name(name)
        raw = recipes_io.read_user_notebook(request, _user(request), path, settings.recipe_max_bytes)
        data, notebook = normalize(raw, settings.recipe_max_bytes, settings.recipe_strip_outputs)
    except BadNotebook as e:
        raise _fail(request, HTTPBadRequest, "Cannot publish this notebook", str(e)) from None
    title, description = title_and_description(notebook)
    entry = _library(request).publish(name, data, _user(request), message, title, description,
                                      record=lambda version: recipes_io.audit_record(request, "publish", name, version))
    location = request.route_url(RECIPE_ROUTE, name=name)
    return HTTPCreated(json_body={"name": name, "version": entry["version"], "url": location},
                       headers={"Location": location})


def _version_param(request, name):
    raw = request.GET.get("version")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise _fail(request, HTTPNotFound, "No such version", f"Recipe {name!r} has no version {raw!r}.") from None


def recipe_view(context, request):
    """``GET /notebook/recipes/<name>``: the rendered notebook and its versions; ``DELETE``: delete it."""
    name = request.matchdict["name"]
    if request.method == "DELETE":
        _require_same_origin(request)
        return _delete(context, request, name)
    lib = _library(request)
    entry = lib.recipe(name)
    shown = lib.version(name, _version_param(request, name))
    versions = [{k: v[k] for k in ("version", "author", "updated", "message")} for v in entry["versions"]]
    if _wants_json(request):
        latest = entry["versions"][-1]
        return Response(json_body={
            "name": name, "title": latest.get("title") or name, "description": latest.get("description", ""),
            "author": entry["versions"][0]["author"], "version": latest["version"], "updated": latest["updated"],
            "versions": versions})
    body = recipes_pages.cached_notebook_html(lib.folder, shown["blob"],
                                              lambda: lib.notebook_bytes(name, shown["version"])[1])
    return recipes_pages.page(
        "recipe.html", name=name, title=shown.get("title") or name, shown=shown, latest=entry["versions"][-1],
        versions=versions, notebook_html=Markup(body), csrf_token=get_csrf_token(request),
        may_delete=_may_delete(context, request, entry), **_common(request))


def _may_delete(context, request, entry) -> bool:
    return entry["versions"][0]["author"] == _user(request) or bool(permission.permits(request, context, ADMIN))


def _delete(context, request, name):
    lib = _library(request)
    entry = lib.recipe(name)
    try:
        lib.delete(name, _user(request), admin=_may_delete(context, request, entry),
                   record=lambda version: recipes_io.audit_record(request, "delete", name, version))
    except NotAllowed as e:
        raise _fail(request, HTTPForbidden, "Not your recipe", str(e)) from None
    if _wants_json(request) or request.method == "DELETE":
        return Response(json_body={"name": name, "deleted": True})
    return HTTPSeeOther(request.route_url(LIST_ROUTE))


def delete_form_view(context, request):
    """``POST /notebook/recipes/<name>/delete`` from the recipe page's form (CSRF token)."""
    if not has_valid_csrf_token(request):
        raise _fail(request, HTTPForbidden, "Form refused", "This form was not sent from this site's recipe page.")
    return _delete(context, request, request.matchdict["name"])


def diff_view(context, request):
    """``GET /notebook/recipes/<name>/diff?from=N&to=M``: what changed between two versions."""
    name, lib = request.matchdict["name"], _library(request)
    entry = lib.recipe(name)
    try:
        new = int(request.GET.get("to") or entry["versions"][-1]["version"])
        old = int(request.GET.get("from") or max(1, new - 1))
        old_bytes, new_bytes = lib.notebook_bytes(name, old)[1], lib.notebook_bytes(name, new)[1]
    except (ValueError, RecipeNotFound):
        raise _fail(request, HTTPNotFound, "No such versions", f"Recipe {name!r} has no such versions.") from None
    return recipes_pages.page("recipe_diff.html", name=name, old=old, new=new,
                              diff=recipes_pages.diff_text(old_bytes, new_bytes), **_common(request))


def recipe_context(request) -> dict:
    """The shell an opened recipe runs in: the INI-only set-up's (``pshell`` for ``config_file``)."""
    from pyramid_notebook.web.routes import notebook_context

    return dict(notebook_context(request), shell_name="Team recipes")


def open_view(context, request):
    """``POST /notebook/recipes/<name>/open``: copy the latest version into ``recipes/<name>.ipynb`` (never
    over the user's changed copy) and go there in the user's shell."""
    name, lib = request.matchdict["name"], _library(request)
    if request.content_type == "application/json":
        options = _json_body(request)
    elif has_valid_csrf_token(request):
        options = request.POST
    else:
        raise _fail(request, HTTPForbidden, "Form refused", "This form was not sent from this site's recipe page.")
    latest = lib.version(name)
    blob_id, data = lib.notebook_bytes(name)
    take = str(options.get("take") or "") == str(latest["version"])

    def original_of(version):
        try:
            return lib.notebook_bytes(name, version)[1]
        except RecipeNotFound:
            return None

    running = launch_on_demand(request, _user(request), recipe_context(request))
    recipes_io.audit_record(request, "open", name, latest["version"])
    try:
        server = contents.NotebookContents(running)
        copy = recipes_io.put_copy(server, name, latest["version"], json.loads(data), original_of, take=take)
    except contents.ContentsError as e:
        raise _fail(request, HTTPServiceUnavailable, "Your notebook could not take the copy", str(e)) from None
    url = route_to_alt_domain(request, request.host_url + running["notebook_path"].rstrip("/") + "/notebooks/" +
                              quote(copy["path"]))
    note = ""
    if copy["changed"] and copy["copied_version"] != latest["version"]:
        note = (f"Your copy {copy['path']} has your changes and opens as it is; version {latest['version']} of "
                f"{name} exists. Take it as {recipes_io.copy_path(name, latest['version'])}, beside your copy.")
    if _wants_json(request):
        return Response(json_body={"url": url, "path": copy["path"], "note": note, "latest": latest["version"]})
    if note and not options.get("as_is"):
        return recipes_pages.page("recipe_note.html", name=name, note=note, path=copy["path"],
                                  latest=latest["version"], take_path=recipes_io.copy_path(name, latest["version"]),
                                  csrf_token=get_csrf_token(request), **_common(request))
    return HTTPSeeOther(url)


def audit_failed_view(exc, request):
    """The audit trail cannot be written: the publish, delete or open is refused (503), as a cell would be."""
    return _fail(request, HTTPServiceUnavailable, "The audit trail cannot be written",
                 f"{exc.strerror or exc}. Nothing was done; try again once the site's administrator has fixed it.").response


def answer_view(exc, request):
    """An :class:`Answer` raised by a view: its response."""
    return exc.response


def not_found_view(exc, request):
    """An unknown recipe or version: 404."""
    return _fail(request, HTTPNotFound, "No such recipe", str(exc).strip("'\"")).response


def unavailable_view(exc, request):
    """The library's folder cannot be read or written: 503, the rest of the site works."""
    return _fail(request, HTTPServiceUnavailable, "The team's recipe library is unavailable",
                 f"{exc.strerror or exc}. Publishing and reading recipes wait until the site's administrator "
                 f"fixes it ({PREFIX}recipes_folder); your shell and the rest of the site work.").response


def _routes_first(config):
    """Our routes before every other (the notebook proxy's ``/notebook/*remainder`` above all)."""
    routes_first(config.registry, [name for name, _ in ROUTES])


def includeme(config):
    """The recipe routes and views, when anyone may have a shell or publish."""
    settings = config.get_settings()
    shell = parse_shell_principals(settings)
    publishers = parse_principals(settings.get(PREFIX + "recipe_principals")) or shell
    admins = parse_principals(settings.get(PREFIX + "admin_principals"))
    if not publishers:
        return
    readers = tuple(dict.fromkeys(shell + publishers + admins))
    # Opening launches the user's own notebook: shell and recipe principals, not admins as such.
    openers = tuple(dict.fromkeys(shell + publishers))
    factory = type("RecipesACL", (RecipesACL,), {"readers": readers, "openers": openers, "publishers": publishers,
                                                 "admins": admins})
    for name, pattern in ROUTES:
        config.add_route(name, pattern, factory=factory)
    anyone = NO_PERMISSION_REQUIRED
    # Each view checks intent itself (same-origin JSON, or the CSRF token of our forms).
    config.add_view(permission.guard(list_view, READ), route_name=LIST_ROUTE, request_method=("GET", "HEAD", "POST"),
                    permission=anyone, require_csrf=False)
    config.add_view(permission.guard(recipe_view, READ), route_name=RECIPE_ROUTE,
                    request_method=("GET", "HEAD", "DELETE"), permission=anyone, require_csrf=False)
    config.add_view(permission.guard(diff_view, READ), route_name=DIFF_ROUTE, request_method=("GET", "HEAD"),
                    permission=anyone)
    config.add_view(permission.guard(open_view, OPEN), route_name=OPEN_ROUTE, request_method="POST",
                    permission=anyone, require_csrf=False)
    config.add_view(permission.guard(delete_form_view, READ), route_name=DELETE_ROUTE, request_method="POST",
                    permission=anyone, require_csrf=False)
    config.add_exception_view(answer_view, context=Answer)
    for name, _ in ROUTES:  # only ours: other views decide themselves what an unwritable trail means
        config.add_exception_view(audit_failed_view, context=AuditError, route_name=name)
    config.add_exception_view(not_found_view, context=RecipeNotFound)
    config.add_exception_view(unavailable_view, context=LibraryUnavailable)
    config.action(("pyramid_notebook.recipes-first",), lambda: _routes_first(config), order=2)
