"""The notebook page's bundles fetched before the notebook page: while its server starts, at idle time.

A cold click spends its first second launching while the browser sits idle, then Notebook 7's page
asks for 3 MB of JavaScript. The bundles that page surely loads are known before any notebook server
runs: ``notebook/templates/notebooks.html`` names ``main.<hash>.js?v=<hash>``, and that file's
webpack runtime starts by loading a fixed list of chunks (``Promise.all([t.e(1407), ...])``) whose
file names its chunk table gives (``notebook_core.<hash>.js`` and a few numbered ones). They are
read once per Jupyter version (the template's and the static folder's modification times) from
the notebook package the notebook servers run with (``pyramid_notebook.python``'s, asked once when
it is not the site's own interpreter), and named by the very URLs the notebook page uses (its
``fullStaticUrl``: ``<notebook_path>static/notebook/``), so the browser's cache serves the page.

* :func:`preload_tags` (the launch's progress page): ``<link rel=preload>``, fetched at once;
* :func:`preload_links` (site templates, e.g. next to the shell button): ``<link rel=prefetch>``,
  fetched at idle time for the next navigation;
* :func:`send_early_hints`: ``103 Early Hints`` with ``Link: rel=preload`` headers on the launch
  and on the notebook page's own request, where the server offers it (gunicorn's
  ``wsgi.early_hints``; waitress, uWSGI and uvicorn over HTTP/1.1 have no way to send it).

Never more bytes than a visit: only files that page loads, by its URLs; nothing for a user without
the shell permission, on the hub backend (its servers' files are not the site's), or when the
notebook lives on ``alternative_domain`` (the browser caches per site: a prefetch from the site's
own pages would not be reused there), nor in nginx accel mode (nginx sends static files only on a
running server's grant: left for later). Until the user's server runs, the site sends these files
itself (:func:`bundle_response`): a preload during the start is not a 502. At site start they are
compressed into the cache, then the rest of the static folder (:func:`includeme`,
``pyramid_notebook.precompress``).
"""
import dataclasses
import functools
import html
import importlib.util
import logging
import mimetypes
import os
import re
import subprocess
import sys

from pyramid.interfaces import IRoutesMapper

from pyramid_notebook.core.origin import route_to_alt_domain
from pyramid_notebook.core.routes import PROXY_ROUTE_NAME
from pyramid_notebook.core.context import STATIC_FILES_KEY
from pyramid_notebook.relays.compress import cache_for, compressible, precompress
from pyramid_notebook.relays.static import static_file_response
from pyramid_notebook.web.permission import PolicyFailed, permits
from pyramid_notebook.web.sitestart import subscribe

logger = logging.getLogger(__name__)

#: Where Notebook 7 serves its bundles, below the notebook's base URL (its ``fullStaticUrl``).
STATIC_PATH = "static/notebook/"
#: The notebook page's template, and what its tags load from the static folder.
TEMPLATE = os.path.join("templates", "notebooks.html")
_TEMPLATE_REF = re.compile(r'(?:src|href)="\{\{\s*page_config\.fullStaticUrl\s*\}\}/([\w.-]+)(\?[\w=&.-]*)?"')
#: The first chunks main.js's runtime loads, and its chunk file name table (rspack/webpack 5).
_ENTRY_CHUNKS = re.compile(r"Promise\.all\(\[((?:\w+\.e\(\d+\),?)+)\]\)\.then\(\w+\.bind\(")
_CHUNK_TABLE = re.compile(r'\.u=\w+=>""\+\(((?:\d+===\w+\?"[\w-]+":)*)\w+\)\+"\."\+\((\{[^{}]*\})\)\[\w+\]'
                          r'\+"\.js(?:\?v="\+\((\{[^{}]*\})\)\[\w+\])?')
#: ``as`` of a preload by file type; fonts are fetched in CORS mode, so their preload is ``crossorigin``.
KINDS = {".js": "script", ".css": "style", ".woff2": "font", ".woff": "font", ".ttf": "font"}
#: The add-on's shell route and permission (web/routes.py), when the site uses them.
SHELL_ROUTE_NAME = "notebook_shell"
SHELL_PERMISSION = "shell"


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A file the notebook page loads: its name in the static folder, the page's query, its ``as``."""

    name: str
    query: str
    kind: str
    path: str

    @property
    def crossorigin(self) -> bool:
        """Fonts are fetched in CORS mode; scripts and styles of this page without (no attribute)."""
        return self.kind == "font"


def _package_folder_of(python: str):
    """The ``notebook`` package folder of the interpreter that runs the notebook servers, or None."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        spec = importlib.util.find_spec("notebook")  # finds, does not import Jupyter
        return os.path.dirname(spec.origin) if spec and spec.origin else None
    return _asked_package_folder(os.path.realpath(python))


@functools.lru_cache(maxsize=8)
def _asked_package_folder(python: str):
    code = "import importlib.util, os; s = importlib.util.find_spec('notebook'); print(os.path.dirname(s.origin))"
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        logger.warning("No preload links: %s does not say where its notebook package is (%s)", python, e)
        return None
    return out.strip() or None


def bundles_in(package_folder) -> tuple:
    """The :class:`Bundle` files the notebook page of the Notebook 7 in ``package_folder`` loads first."""
    try:
        key = (os.stat(os.path.join(package_folder, TEMPLATE)).st_mtime_ns,
               os.stat(os.path.join(package_folder, "static")).st_mtime_ns)
    except (OSError, TypeError):
        return ()
    return _read_bundles(package_folder, key)


@functools.lru_cache(maxsize=8)
def _read_bundles(package_folder: str, key) -> tuple:
    """Parse the template and main.js once per version (``key``: their folders' modification times)."""
    static = os.path.join(package_folder, "static")
    with open(os.path.join(package_folder, TEMPLATE), encoding="utf-8") as f:
        refs = _TEMPLATE_REF.findall(f.read())
    names = [(name, query or "") for name, query in refs]
    for name, _ in list(names):
        if name.startswith("main.") and name.endswith(".js"):
            names += _entry_chunk_files(os.path.join(static, name))
    found = []
    for name, query in dict.fromkeys(names):
        path = os.path.join(static, name)
        kind = KINDS.get(os.path.splitext(name)[1])
        if kind and os.path.isfile(path):  # a file the page would miss is no reason to fetch anything
            found.append(Bundle(name, query, kind, path))
    if not found:
        logger.warning("No preload links: no bundle found in %s (not Notebook 7's layout?)", package_folder)
    return tuple(found)


def _entry_chunk_files(main_js: str) -> list:
    """``[(file, query)]``: the chunks main.js loads before anything else, by the URLs it asks for
    (``?v=<hash>`` in Notebook 7.5+); none if its runtime is not as expected."""
    try:
        with open(main_js, encoding="utf-8") as f:
            source = f.read()
    except OSError:
        return []
    entry, table = _ENTRY_CHUNKS.search(source), _CHUNK_TABLE.search(source)
    if not entry or not table:
        return []
    named = dict(re.findall(r'(\d+)===\w+\?"([\w-]+)":', table.group(1)))
    hashes = dict(re.findall(r'(\d+):"([\w-]+)"', table.group(2)))
    versions = dict(re.findall(r'(\d+):"([\w-]+)"', table.group(3) or ""))
    files = []
    for chunk in re.findall(r"\((\d+)\)", entry.group(1)):
        if chunk in hashes:
            query = f"?v={versions[chunk]}" if table.group(3) is not None else ""
            if table.group(3) is None or chunk in versions:
                files.append((f"{named.get(chunk, chunk)}.{hashes[chunk]}.js", query))
    return files


def notebook_bundles(registry) -> tuple:
    """The site's :class:`Bundle` files: none for the hub backend or an unconfigured site."""
    settings = getattr(registry, "pyramid_notebook_settings", None)
    if settings is None or settings.backend == "jupyterhub":
        return ()
    folder = _package_folder_of(settings.python)
    return bundles_in(folder) if folder else ()


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
    prefix = base.rstrip("/") + "/" + STATIC_PATH
    return [(prefix + b.name + b.query, b) for b in notebook_bundles(request.registry)]


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
    if request.method not in ("GET", "HEAD") or not request.path.startswith(base + STATIC_PATH):
        return None
    name = request.path[len(base + STATIC_PATH):]
    bundles = {b.name: b for b in notebook_bundles(request.registry)}
    if name not in bundles:
        return None
    route = {"prefix": base + STATIC_PATH, "roots": [os.path.dirname(bundles[name].path)], "no_cache_paths": []}
    return static_file_response(request, {STATIC_FILES_KEY: {"routes": [route], "immutable": []}})


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
    """``[bundles, the rest]``: the files to compress at start, the page's first bundles first, then
    every other compressible file of the notebook's static folder (the chunks, styles and fonts the
    page loads later are among them; which ones depends on what the page does)."""
    bundles = [b.path for b in notebook_bundles(registry)]
    if not bundles:
        return []
    folder = os.path.dirname(bundles[0])
    rest = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if path not in bundles and os.path.isfile(path) and \
                compressible(mimetypes.guess_type(name)[0] or "", path):
            rest.append(path)
    return [bundles, rest]


def includeme(config):
    """At site start, :func:`_on_site_start`."""
    subscribe(config, _on_site_start)
