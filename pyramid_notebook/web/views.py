"""The three things a site does with notebooks: launch one, shut it down, and proxy to it.

These are helpers called from the site's own views, which decide who the user
is and whether they may have a shell at all::

    @view_config(route_name="shell", permission="shell")
    def shell(request):
        nb = {}
        startup.make_startup(nb, config_file)
        return launch_notebook(request, request.user.username, notebook_context=nb)
"""
import logging
import time
from urllib.parse import quote, urljoin, urlsplit

from pyramid.httpexceptions import (
    HTTPBadGateway, HTTPBadRequest, HTTPForbidden, HTTPFound, HTTPInternalServerError, HTTPNotFound,
)

from pyramid_notebook.backends.base import (
    BackendUnavailable, NoFreePort, NotebookStartError, TooManyNotebooks,
)
from pyramid_notebook.core.context import InvalidNotebookContext, validate_notebook_context
from pyramid_notebook.core.contextparts import HASH_KEYS, SERVER_HASH_KEY, is_server_only_path, same_server, server_hash
from pyramid_notebook.core.framing import framing_context
from pyramid_notebook.core.names import BadUsername, make_dict_hash, normalize_username
from pyramid_notebook.core.origin import is_cross_site_request, is_websocket_upgrade, normalize_origin, \
    route_to_alt_domain
from pyramid_notebook.core.pages import error_page
from pyramid_notebook.core.person import OWNER, PERSON_ENVIRON_KEY, Person
from pyramid_notebook.core.recipes import team_folder
from pyramid_notebook.core.settings import get_notebook_settings
from pyramid_notebook.core.shares import end_owner_grants
from pyramid_notebook.relays.base import RELAY_KIND_KEY
from pyramid_notebook.relays.http import drop_pool
from pyramid_notebook.relays.websocket import CONTEXT_ENVIRON_KEY  # noqa: F401 (part of this module's API)
from pyramid_notebook.web.badurl import PROXY_ROUTE_NAME, SHUTDOWN_ROUTE_NAME
from pyramid_notebook.web.contents import BadPath, validate_path
from pyramid_notebook.web.errors import describe_launch_error, launch_error_page
from pyramid_notebook.web.audit import attach_audit
from pyramid_notebook.web import metrics
from pyramid_notebook.web.intent import require_intent
from pyramid_notebook.web.limits import check_request_size
from pyramid_notebook.web.progress import launch_with_progress, wants_progress_page
from pyramid_notebook.web.preload import (bundle_response, learns_page_files, report_path, report_response,
                                          send_early_hints)
from pyramid_notebook.web.registry import get_notebook_manager, get_relay

logger = logging.getLogger(__name__)

__all__ = ["launch_notebook", "shutdown_notebook", "notebook_proxy", "notebook_url", "get_notebook_manager",
           "get_relay", "fill_context_defaults", "launch_on_demand", "error_page", "describe_launch_error",
           "launch_error_page", "PROXY_ROUTE_NAME", "SHUTDOWN_ROUTE_NAME", "CONTEXT_ENVIRON_KEY"]


def _require_user(username) -> str:
    """The username as text (``str()`` of an integer or UUID user id); 403 if there is none."""
    try:
        username = normalize_username(username)
    except BadUsername as e:
        raise error_page(HTTPBadRequest, "Unusable username", str(e)) from None
    if not username:
        raise error_page(HTTPForbidden, "No user for this notebook",
                         "A notebook belongs to one logged-in user, and this request has none: the site's "
                         "request.authenticated_userid is empty (None or \"\"). Log in; if you are logged in, "
                         "the site's security policy does not give an identity for this request.")
    return username


def _notebook_base_path(request) -> str:
    try:
        return request.route_path(PROXY_ROUTE_NAME, remainder="")
    except KeyError:
        return request.script_name + "/notebook/"


def _shutdown_url(request, settings) -> str:
    if settings.shutdown_url:
        return urljoin(request.host_url + "/", settings.shutdown_url)
    try:
        return request.route_url(SHUTDOWN_ROUTE_NAME)
    except KeyError:
        return ""


def fill_context_defaults(request, notebook_context) -> dict:
    """Return a copy of ``notebook_context`` with every key the daemon needs filled in."""
    settings = get_notebook_settings(request.registry)
    context = validate_notebook_context(notebook_context)
    context.setdefault("startup", "")
    context.setdefault("greeting", "")
    context.setdefault("extra_template_paths", [])
    context.setdefault("notebook_path", _notebook_base_path(request))
    context.setdefault("kill_timeout", settings.kill_timeout)
    context.setdefault("idle_timeout", settings.idle_timeout)
    context.setdefault("kernel_idle_timeout", settings.kernel_idle_timeout)
    context.setdefault("spare_kernel", settings.spare_kernel)
    context.setdefault("shutdown_url", _shutdown_url(request, settings))
    if team_folder(settings):  # the team's recipes: read-only in the file browser, the File menu's publish
        context.setdefault("team_recipes", team_folder(settings))
        context.setdefault("recipes_url", request.route_path("notebook_recipes"))
    context.setdefault("collaboration", settings.collaboration)  # real-time co-editing (server/collaboration.py)
    if settings.share_principals:  # the File menu's "Share…" (labextension), when the shares' routes exist
        try:
            context.setdefault("shares_url", request.route_path("notebook_shares"))
        except KeyError:
            pass
    if learns_page_files(request):  # the page posts what it loaded, preloaded on the next cold click
        context.setdefault("page_files_url", report_path(context["notebook_path"]))
    if settings.disabled_extensions:  # left out of the notebook's pages (server/page_config.py)
        context.setdefault("disabled_extensions", list(settings.disabled_extensions))
    if settings.memory_limit:  # enforced on the user's kernels (server/kernel_limits.py)
        context.setdefault("memory_limit", settings.memory_limit)
        context.setdefault("memory_cgroup", settings.memory_cgroup)
    site_origin = normalize_origin(route_to_alt_domain(request, request.host_url))
    context.setdefault("allow_origin", site_origin)
    # Embedding: who may frame notebook pages, and whom the save bridge answers.
    for key, value in framing_context(settings.frame_ancestors, request.host_url, site_origin).items():
        context.setdefault(key, value)
    if "websocket_url" not in context:
        if settings.websocket_proxy or settings.accel_redirect:
            context["websocket_url"] = ""  # same origin: websockets come through the proxy
        else:
            # pserve mode: the browser opens websockets straight to the notebook's port.
            # Notebook 7 appends "api/..." to this URL, so it carries the base path too.
            host = urlsplit(site_origin).hostname or "localhost"
            context["websocket_url"] = f"ws://{host}:{{port}}{context['notebook_path']}"
    for key in HASH_KEYS:
        context.pop(key, None)
    context["context_hash"] = make_dict_hash(context)
    # What a restart is needed for; the startup script and greeting are not (core/contextparts.py).
    context[SERVER_HASH_KEY] = server_hash(context)
    return context


# --- hardening: intent, malformed contexts, unwritable folders (issue 10) -------------

def _folder_error_page(username, e: OSError):
    """The notebook folder could not be written (read-only, full): say so, log it."""
    logger.error("Notebook folder unusable for %r", username)
    return launch_error_page(*describe_launch_error(e))


def _checked_context(request, notebook_context):
    try:
        return fill_context_defaults(request, notebook_context)
    except InvalidNotebookContext as e:
        logger.error("Invalid notebook context from the site's view: %s", e)
        raise error_page(HTTPInternalServerError, "Invalid notebook context",
                         f"The site asked for a notebook it cannot describe: {e}") from None


def _require_restart_intent(request, manager, username, context):
    """A launch that would restart a running notebook with another context needs intent."""
    try:
        running = manager.get_notebook_status(username)
    except (BadUsername, BackendUnavailable, OSError) as e:
        raise launch_error_page(*describe_launch_error(e)) from None
    if running and running.get("context_hash") != context["context_hash"] and not same_server(running, context):
        require_intent(request, "Restart your notebook?",
                       "Your notebook is running with another set-up. Opening this shell restarts it: "
                       "every kernel stops and unsaved work in open notebooks is lost. Your files stay.",
                       "Restart my notebook", cancel_url=request.application_url + "/")


# --- end hardening ----------------------------------------------------------------------


def launch_on_demand(request, username, notebook_context):
    """Start the user's notebook unless it already runs with the same context; return its context.

    Restarting a running notebook with a different context needs the user's intent
    (:mod:`pyramid_notebook.web.intent`); without it, the confirmation page is raised.
    """
    username = _require_user(username)
    context = _checked_context(request, notebook_context)
    manager = get_notebook_manager(request)
    _require_restart_intent(request, manager, username, context)
    started_at = time.monotonic()
    try:
        attach_audit(request, username, context, manager)
        context, created = manager.start_notebook_on_demand(username, context)
    except (BadUsername, OSError, NoFreePort, TooManyNotebooks, BackendUnavailable, NotebookStartError) as e:
        metrics.count_launch_failure(request.registry, e)
        raise launch_error_page(*describe_launch_error(e)) from None
    metrics.count_launch(request.registry, started_at, created)
    if created:
        logger.info("Started notebook for %r on port %s", username, context.get("http_port"))
    return context


def _checked_path(path):
    if path is None:
        return None
    try:
        return validate_path(path)
    except BadPath as e:
        raise error_page(HTTPBadRequest, "Unusable notebook path", str(e)) from None


def _notebook_page_url(request, context, path=None) -> str:
    target = quote(path) if path is not None else context["notebook_name"]
    url_path = context["notebook_path"].rstrip("/") + "/notebooks/" + target
    return route_to_alt_domain(request, request.host_url + url_path)


def _unavailable(username, e):
    logger.error("Notebook service unavailable for %r", username)
    return launch_error_page(*describe_launch_error(e))


def notebook_url(request, username, notebook_context, path=None) -> str:
    """Start (or reuse) the user's notebook and return the URL of one of its notebooks.

    For an iframe in the site's own page (see ``pyramid_notebook.frame_ancestors``).

    :param path: a notebook path relative to the user's folder, such as
        ``"analyses/report.ipynb"``; ``None`` for the default notebook. Paths that
        are absolute, contain ``..`` or name hidden or state files are refused with 400.
    :return: an absolute URL on the site (or on ``alternative_domain``).
    """
    path = _checked_path(path)
    context = launch_on_demand(request, username, notebook_context)
    return _notebook_page_url(request, context, path)


def launch_notebook(request, username, notebook_context, path=None, progress=None):
    """Start (or reuse) the user's notebook and redirect to its default notebook page.

    :param username: the authenticated user's name; each user has their own notebook.
    :param notebook_context: dict of context keys (``startup``, ``greeting``, ...),
        usually built with :mod:`pyramid_notebook.core.startup`.
    :param path: open this notebook (relative to the user's folder) instead of the
        default one; see :func:`notebook_url`.
    :param progress: answer a browser's cold launch at once with a progress page that moves
        on to the notebook when it answers (see :mod:`pyramid_notebook.web.progress`); ``None``
        (default) follows the ``pyramid_notebook.progress_page`` setting. Non-browser
        clients, and launches of a notebook that already runs, always get the redirect.
    :return: :class:`pyramid.httpexceptions.HTTPFound`, or the progress page's response
    """
    if progress is None:
        progress = get_notebook_settings(request.registry).progress_page
    # A reason form POSTs, and must answer before the start: no progress page then (its polls
    # would meet the form again).
    if progress and wants_progress_page(request) and get_notebook_manager(request).progress_pages and \
            get_notebook_settings(request.registry).audit_reason == "off":
        username = _require_user(username)
        path = _checked_path(path)
        context = _checked_context(request, notebook_context)
        manager = get_notebook_manager(request)
        _require_restart_intent(request, manager, username, context)
        try:
            attach_audit(request, username, context, manager)
            return launch_with_progress(request, username, context, manager,
                                        lambda running: _notebook_page_url(request, running, path),
                                        describe_launch_error, launch_error_page)
        except (BadUsername, OSError, BackendUnavailable) as e:
            raise launch_error_page(*describe_launch_error(e)) from None
    if username and "text/html" in (request.headers.get("Accept") or ""):
        send_early_hints(request)  # the page's bundles while the server starts (gunicorn: web/preload.py)
    return HTTPFound(notebook_url(request, username, notebook_context, path=path))


def shutdown_notebook(request, username):
    """Stop the user's notebook if it runs. Returns True if one was stopped.

    The user's files stay in their folder for the next launch. Only a request that
    shows the user's intent stops it (a click on the site or in the notebook, or a
    POST with the site's CSRF token; see :mod:`pyramid_notebook.web.intent`); any other
    raises :class:`~pyramid_notebook.web.intent.ConfirmationRequired`, a 200 page whose
    button POSTs back to this URL. The site's view returns whatever comes next.
    """
    username = _require_user(username)
    require_intent(request, "Shut down your notebook?",
                   "This stops your notebook server and every kernel in it; unsaved work in open notebooks is "
                   "lost. Your files stay.", "Shut down", cancel_url=request.application_url + "/")
    manager = get_notebook_manager(request)
    try:
        running = manager.get_notebook_status(username)
        stopped = manager.stop_notebook(username)
    except BadUsername as e:
        raise error_page(HTTPBadRequest, "Unusable username", str(e)) from None
    except OSError as e:
        raise _folder_error_page(username, e) from None
    except BackendUnavailable as e:
        raise _unavailable(username, e) from None
    end_owner_grants(get_notebook_settings(request.registry), username)  # a stopped notebook is shared no more
    if running and running.get("http_port") and not running.get("http_host"):
        # A local notebook's own port: its pooled sockets would linger in CLOSE_WAIT. (A hub's
        # proxy stays up for the other users; the sweeper in relays/http.py covers the rest.)
        drop_pool("127.0.0.1", running["http_port"])
    return stopped


def notebook_proxy(request, username):
    """Proxy ``request`` to the user's own notebook.

    Cross-origin state-changing requests and websocket handshakes are refused
    with 403. What passes goes to the site's relay (:mod:`pyramid_notebook.relays.base`): a
    websocket handshake to the ``pyramid_notebook.websocket_proxy`` callable as
    ``websocket_proxy(request, port)``, with the notebook's context in
    ``request.environ["pyramid_notebook.context"]``; with ``pyramid_notebook.accel_redirect``
    set, every request gets an empty answer with ``X-Accel-Redirect`` instead and nginx relays
    it (:mod:`pyramid_notebook.relays.accel`).
    """
    username = _require_user(username)
    check_request_size(request)
    if is_cross_site_request(request):
        raise error_page(HTTPForbidden, "Cross-origin request refused",
                         "This request to your notebook came from another web site and was refused.")
    manager = get_notebook_manager(request)
    try:
        context = manager.get_notebook_status(username)
    except BadUsername as e:
        raise error_page(HTTPBadRequest, "Unusable username", str(e)) from None
    except BackendUnavailable as e:
        raise _unavailable(username, e) from None
    if not context or not context.get("static_files"):
        # The page's bundles, preloaded while the server starts (web/preload.py), from the same files.
        bundle = bundle_response(request, (context or {}).get("notebook_path"))
        if bundle is not None:
            return bundle
    if not context or not context.get("http_port") or not context.get("token"):
        raise error_page(HTTPBadGateway, "Your notebook is not running",
                         "It may have been shut down or timed out. Launch it again from the site.")
    # Only the user's own server's paths go upstream: on a hub, others' servers and the hub's
    # own pages share the upstream address (the user's token is refused there as well).
    if not request.path.startswith(context.get("notebook_path") or "/"):
        raise error_page(HTTPNotFound, "Not your notebook", "This address is not part of your notebook.")
    # The library's own endpoints in the server answer the site's calls, never a browser's: every relay
    # mode (site, uWSGI, ASGI, nginx accel's auth_request) decides here.
    if is_server_only_path(request.script_name + request.path_info, context.get("notebook_path") or "/"):
        raise error_page(HTTPNotFound, "Not part of your notebook",
                         "This address is used by the web site itself and is not reachable from a browser.")
    # What the page loaded, reported by the page for the next cold click's preload (web/pagefiles.py).
    report = report_response(request, context, username)
    if report is not None:
        return report
    # Who is asking, as the site vouches for it: every relay signs it for the notebook server (the
    # browser's own X-Pyramid-Notebook-Person is never relayed). Today the owner is the only person.
    request.environ[PERSON_ENVIRON_KEY] = Person(id=username, name=username, role=OWNER)
    relay = get_relay(request)
    if request.path.startswith((context.get("notebook_path") or "/") + "notebooks/") and \
            "text/html" in (request.headers.get("Accept") or ""):
        send_early_hints(request, context.get("notebook_path"))  # while Jupyter renders the page
    response = relay.websocket(request, context) if is_websocket_upgrade(request) else relay.http(request, context)
    metrics.count_proxied(request.registry, request.environ.get(RELAY_KIND_KEY, "http"))
    return response
