"""The notebook page's files fetched before the notebook page: while its server starts, at idle time.

A cold click spends its first second launching while the browser sits idle, then Notebook 7's page
asks for 3 MB of JavaScript, about sixty files in waves. The files named here are the page's first
bundles, known before any notebook server runs (:mod:`pyramid_notebook.web.bundles`), and every other
file notebook pages reported loading (:mod:`pyramid_notebook.web.pagefiles`, :func:`report_response`),
each by the very URL the page uses (below its ``fullStaticUrl``, ``<notebook_path>static/notebook/``,
or its lab extensions' folders), so the browser's cache serves the page.

* :func:`preload_tags` (the launch's progress page): ``<link rel=preload>``, fetched at once;
* :func:`preload_links` (site templates, e.g. next to the shell button): ``<link rel=prefetch>``,
  fetched at idle time for the next navigation;
* :func:`send_early_hints`: ``103 Early Hints`` with ``Link: rel=preload`` headers on the launch
  and on the notebook page's own request, where the server offers it (gunicorn's
  ``wsgi.early_hints``; waitress, uWSGI and uvicorn over HTTP/1.1 have no way to send it).

Never more bytes than a visit: only files that page loads, by its URLs (a learned file only when
most notebook pages loaded it); nothing for a user without
the shell permission, on the hub backend (its servers' files are not the site's), or when the
notebook lives on ``alternative_domain`` (the browser caches per site: a prefetch from the site's
own pages would not be reused there), nor in nginx accel mode (nginx sends static files only on a
running server's grant: left for later). Until the user's server runs, the site sends these files
itself (:func:`bundle_response`): a preload during the start is not a 502. At site start the first
bundles are compressed into the cache, then the rest of the static folder (:func:`includeme`,
``pyramid_notebook.precompress``).
"""
import html
import logging
import mimetypes
import os

from pyramid.httpexceptions import (HTTPBadRequest, HTTPMethodNotAllowed, HTTPNoContent,
                                    HTTPRequestEntityTooLarge)
from pyramid.interfaces import IRoutesMapper

from pyramid_notebook.core.origin import route_to_alt_domain
from pyramid_notebook.core.pages import error_page
from pyramid_notebook.core.routes import PROXY_ROUTE_NAME
from pyramid_notebook.core.context import STATIC_FILES_KEY
from pyramid_notebook.relays.compress import cache_for, compressible, precompress
from pyramid_notebook.relays.static import static_file_response
from pyramid_notebook.web.bundles import STATIC_PATH, notebook_bundles, site_package_folder, version_of
from pyramid_notebook.web.pagefiles import (MAX_BODY, PAGE_FOLDERS, REPORT_PATH, BadReport, TooLarge, checked_report,
                                            installation_folders, store_for)
from pyramid_notebook.web.permission import PolicyFailed, permits
from pyramid_notebook.web.sitestart import subscribe

logger = logging.getLogger(__name__)

#: The add-on's shell route and permission (web/routes.py), when the site uses them.
SHELL_ROUTE_NAME = "notebook_shell"
SHELL_PERMISSION = "shell"


def _page_files(registry):
    """The site's :class:`~pyramid_notebook.web.pagefiles.PageFiles` (kept in the compression cache's folder)."""
    cache = cache_for(registry)
    return store_for(registry, cache.folder if cache is not None else None)


def learned_files(registry) -> list:
    """The files notebook pages reported loading beyond the bundles (:mod:`pyramid_notebook.web.pagefiles`)."""
    version = version_of(registry)
    if version is None:
        return []
    first = {STATIC_PATH + b.name + b.query for b in notebook_bundles(registry)}
    return [f for f in _page_files(registry).listed(version) if f.url not in first]


def _notebook_base_path(request) -> str:
    """The notebook's base URL path (web.views' default ``notebook_path``)."""
    try:
        return request.route_path(PROXY_ROUTE_NAME, remainder="")
    except KeyError:
        return request.script_name + "/notebook/"


def bundle_urls(request, notebook_path=None) -> list:
    """``[(url, bundle)]``: the bundles by the notebook page's own URLs; empty if they would not be reused."""
    base = notebook_path or _notebook_base_path(request)
    if _accel_mode(request):
        return []  # nginx sends static files only on a running server's grant: a preload would get a 502
    if route_to_alt_domain(request, request.host_url) != request.host_url:
        return []  # the notebook is on another site: the browser's cache there is its own
    base = base.rstrip("/") + "/"
    first = [(base + STATIC_PATH + b.name + b.query, b) for b in notebook_bundles(request.registry)]
    return first + [(base + f.url, f) for f in learned_files(request.registry)]


def _accel_mode(request) -> bool:
    return bool(getattr(getattr(request.registry, "pyramid_notebook_settings", None), "accel_redirect", ""))


def _tags(request, rel: str, notebook_path=None) -> str:
    tags = []
    for url, bundle in bundle_urls(request, notebook_path):
        cors = " crossorigin" if bundle.crossorigin else ""
        tags.append(f'<link rel="{rel}" href="{html.escape(url)}" as="{bundle.kind}"{cors}>')
    return "\n".join(tags)


def preload_tags(request, notebook_path=None) -> str:
    """``<link rel="preload">`` tags for a page shown just before the notebook (the progress page).

    For callers that already checked the user may open a shell.
    """
    return _tags(request, "preload", notebook_path)


def may_open_shell(request, permission=SHELL_PERMISSION, context=None) -> bool:
    """Whether the request's user holds ``permission`` (on the add-on's shell route when the site
    uses it, else on ``context`` or the request's own context)."""
    if context is None:
        mapper = request.registry.queryUtility(IRoutesMapper)
        route = mapper.get_route(SHELL_ROUTE_NAME) if mapper is not None else None
        context = route.factory(request) if route is not None and route.factory else getattr(request, "context", None)
    try:
        return bool(permits(request, context, permission))
    except PolicyFailed:
        return False


def preload_links(request, permission=SHELL_PERMISSION, context=None) -> str:
    """``<link rel="prefetch">`` tags for a site's page with a shell button; empty for other users.

    The browser fetches the notebook page's bundles when it is idle, at the lowest priority, into
    its cache; a click on the shell then finds them there. Put the result in the page's ``<head>``
    (it is HTML: do not escape it again). ``permission`` is checked as the shell's views check it:
    on the add-on's ``/notebook/shell`` route when the site uses it, else on ``context`` (default:
    the request's context), with the site's security policy.
    """
    if not may_open_shell(request, permission, context):
        return ""
    return _tags(request, "prefetch")


def send_early_hints(request, notebook_path=None) -> bool:
    """Send ``103 Early Hints`` with the bundles as ``Link: rel=preload``, if the server can; True if sent.

    gunicorn (23 and later) offers ``environ["wsgi.early_hints"]``; other servers' requests have
    none and nothing happens. For callers that already checked the user may open a shell.
    """
    send = request.environ.get("wsgi.early_hints")
    if send is None or request.method != "GET":
        return False
    links = []
    for url, bundle in bundle_urls(request, notebook_path):
        links.append(f"<{url}>; rel=preload; as={bundle.kind}" + ("; crossorigin" if bundle.crossorigin else ""))
    if not links:
        return False
    try:
        send([("Link", ", ".join(links))])
    except Exception as e:  # noqa: BLE001 - a hint is a help: the answer goes on without it
        logger.warning("Could not send 103 Early Hints: %s", e)
        return False
    return True


def bundle_response(request, notebook_path=None):
    """The answer to a bundle's URL while the user's server is not up yet (a preload from the
    progress page), from the same files, as :mod:`pyramid_notebook.relays.static` sends them once
    it is; None for any other request. The caller (the notebook's proxy view) checked the user.

    Not in nginx accel mode (:func:`bundle_urls` names none there).
    """
    if _accel_mode(request):
        return None
    base = (notebook_path or _notebook_base_path(request)).rstrip("/") + "/"
    if request.method not in ("GET", "HEAD") or not request.path.startswith(tuple(base + f for f in PAGE_FOLDERS)):
        return None
    name = request.path[len(base):]
    bundles = {STATIC_PATH + b.name: b.path for b in notebook_bundles(request.registry)}
    learned = {f.url.partition("?")[0]: f for f in learned_files(request.registry)}
    if name in bundles:
        path, immutable = bundles[name], False
    elif name in learned:
        path, immutable = learned[name].path, learned[name].immutable
    else:
        return None
    prefix = base + name.rpartition("/")[0] + "/"
    route = {"prefix": prefix, "roots": [os.path.dirname(path)], "no_cache_paths": []}
    published = {"routes": [route], "immutable": [prefix] if immutable else []}
    return static_file_response(request, {STATIC_FILES_KEY: published})


def report_path(notebook_path) -> str:
    """Where a notebook page posts the files it loaded, below the notebook's base URL."""
    return (notebook_path or "/").rstrip("/") + "/" + REPORT_PATH


def learns_page_files(request) -> bool:
    """Whether the site learns what its notebook pages load: as it preloads (not on the hub backend,
    in nginx accel mode, or with the notebook on ``alternative_domain``)."""
    return bool(version_of(request.registry)) and not _accel_mode(request) and \
        route_to_alt_domain(request, request.host_url) == request.host_url


def report_response(request, context, username):
    """The answer to a notebook page's report of the files it loaded (``POST`` to :func:`report_path`),
    or None for any other request. The caller (the notebook's proxy view) checked ``username`` owns
    the running server ``context`` is of."""
    base = context.get("notebook_path") or "/"
    if request.path != report_path(base) or not learns_page_files(request):
        return None
    if request.method != "POST":
        raise error_page(HTTPMethodNotAllowed, "Not allowed", "A notebook page posts the files it loaded here.")
    if not context.get(STATIC_FILES_KEY):
        return HTTPNoContent()  # the server publishes no static routes: nothing can be judged, nothing learned
    settings = request.registry.pyramid_notebook_settings
    try:
        allowed = installation_folders(site_package_folder(request.registry))
        found = checked_report(request.body_file.read(MAX_BODY + 1), context, allowed,
                               (os.path.realpath(settings.notebook_folder),))
    except BadReport as e:
        status = HTTPRequestEntityTooLarge if isinstance(e, TooLarge) else HTTPBadRequest
        raise error_page(status, "Unusable report", str(e)) from None
    if found:
        _page_files(request.registry).add(version_of(request.registry), found)
    logger.debug("%s's notebook page loaded %d files that may be preloaded", username, len(found))
    return HTTPNoContent()


def _on_site_start(event):
    """Compress the notebook page's bundles into the cache in the background (never delaying start-up)."""
    registry = event.app.registry
    settings = getattr(registry, "pyramid_notebook_settings", None)
    if settings is None or not settings.precompress:
        return
    cache = cache_for(registry)
    if cache is None:
        return
    registry.pyramid_notebook_precompress = precompress(cache, lambda: page_files(registry))


def page_files(registry) -> list:
    """``[bundles, the rest]``: the files to compress at start, the page's first bundles and the files
    pages reported loading first (the lab extensions' among them), then every other compressible file
    of the notebook's static folder (what a page loads only on some action)."""
    bundles = [b.path for b in notebook_bundles(registry)]
    if not bundles:
        return []
    first = list(dict.fromkeys(bundles + [f.path for f in learned_files(registry)
                                          if compressible(mimetypes.guess_type(f.path)[0] or "", f.path)]))
    folder = os.path.dirname(bundles[0])
    rest = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if path not in first and os.path.isfile(path) and \
                compressible(mimetypes.guess_type(name)[0] or "", path):
            rest.append(path)
    return [first, rest]


def includeme(config):
    """At site start, :func:`_on_site_start`."""
    subscribe(config, _on_site_start)
