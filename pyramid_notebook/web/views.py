"""The three things a site does with notebooks: launch one, shut it down, and proxy to it.

These are helpers called from the site's own views, which decide who the user
is and whether they may have a shell at all::

    @view_config(route_name="shell", permission="shell")
    def shell(request):
        nb = {}
        startup.make_startup(nb, config_file)
        return launch_notebook(request, request.user.username, notebook_context=nb)
"""
import errno
import html
import logging
from urllib.parse import quote, urljoin, urlsplit

from pyramid.httpexceptions import (
    HTTPBadGateway, HTTPBadRequest, HTTPForbidden, HTTPFound, HTTPInsufficientStorage, HTTPInternalServerError,
    HTTPNotFound,
    HTTPServiceUnavailable,
)

from pyramid_notebook.backends.base import BackendUnavailable
from pyramid_notebook.relays import accel
from pyramid_notebook.web.contents import BadPath, validate_path
from pyramid_notebook.core.framing import framing_context, refuse_framing
from pyramid_notebook.backends.local.manager import NotebookStartError, TooManyNotebooks
from pyramid_notebook.core.origin import is_cross_site_request, is_websocket_upgrade, normalize_origin
from pyramid_notebook.backends.local.ports import NoFreePort
from pyramid_notebook.web.progress import launch_with_progress, wants_progress_page
from pyramid_notebook.relays.http import UpstreamError, drop_pool, proxy_request
from pyramid_notebook.core.settings import get_notebook_settings
from pyramid_notebook.relays.static import static_file_plan, static_file_response
from pyramid_notebook.core.names import BadUsername, make_dict_hash, route_to_alt_domain
from pyramid_notebook.web.badinput import check_request_size, check_websocket_handshake
from pyramid_notebook.web.intent import require_intent
from pyramid_notebook.core.context import InvalidNotebookContext, validate_notebook_context

logger = logging.getLogger(__name__)

#: Route the site maps to ``notebook_proxy``; its path is the notebooks' base URL.
PROXY_ROUTE_NAME = "notebook_proxy"
#: Route whose URL the notebook's "Shut down and return to site" control opens by default.
SHUTDOWN_ROUTE_NAME = "shutdown_notebook"
#: Key in ``request.environ`` under which the websocket proxy finds the notebook's context.
CONTEXT_ENVIRON_KEY = "pyramid_notebook.context"

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>{message}</p>{details}</body></html>
"""


def error_page(exc_class, title, message, details=""):
    """An HTTP exception of ``exc_class`` with a small, escaped HTML page."""
    extra = f"<pre>{html.escape(details)}</pre>" if details else ""
    body = PAGE.format(title=html.escape(title), message=html.escape(message), details=extra)
    return refuse_framing(exc_class(body=body, content_type="text/html", charset="utf-8"), others_only=True)


def get_notebook_manager(request):
    """The notebook backend of this site (:class:`~pyramid_notebook.backends.base.NotebookBackend`):
    a :class:`~pyramid_notebook.backends.local.manager.NotebookManager` or a
    :class:`~pyramid_notebook.backends.hub.backend.HubBackend`, as ``pyramid_notebook.backend`` says."""
    get_notebook_settings(request.registry)  # a clear error if includeme was not called
    return request.registry.pyramid_notebook_manager


def _require_user(username):
    if not username:
        raise error_page(HTTPForbidden, "Forbidden", "You must be logged in to use a notebook.")


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
    context.setdefault("shutdown_url", _shutdown_url(request, settings))
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
    context.pop("context_hash", None)
    context["context_hash"] = make_dict_hash(context)
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
    if running and running.get("context_hash") != context["context_hash"]:
        require_intent(request, "Restart your notebook?",
                       "Your notebook is running with another set-up. Opening this shell restarts it: "
                       "every kernel stops and unsaved work in open notebooks is lost. Your files stay.",
                       "Restart my notebook", cancel_url=request.application_url + "/")


# --- end hardening ----------------------------------------------------------------------


def describe_launch_error(e):
    """``(status, title, message, details)`` of the error page for a failed launch; re-raises others."""
    if isinstance(e, BadUsername):
        return 400, "Unusable username", str(e), ""
    if isinstance(e, OSError):  # the notebook folder is read-only or full
        logger.error("Notebook folder unusable: %s", e)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            return 507, "The notebook folder is full", \
                "There is no space left for your notebook's files. Ask the site's administrator.", ""
        return 503, "The notebook folder cannot be written", \
            f"Your notebook cannot be started or stopped right now ({e.strerror or e}). " \
            "Ask the site's administrator.", ""
    if isinstance(e, (NoFreePort, TooManyNotebooks)):
        return 503, "No notebook slot free", str(e), ""
    if isinstance(e, BackendUnavailable):
        logger.error("Notebook service unavailable: %s", e)
        return 503, "The notebook service is unavailable", f"{e} Try again in a few minutes.", ""
    if isinstance(e, NotebookStartError):
        logger.error("Notebook failed to start: %s\n%s", e, e.log_tail)
        return 500, "The notebook failed to start", str(e) + (" The end of its log follows." if e.log_tail else ""), \
            e.log_tail
    logger.exception("Notebook failed to start", exc_info=e)
    return 500, "The notebook failed to start", "An unexpected error occurred; the site's log has the details.", ""


def launch_error_page(status, title, message, details=""):
    """The error page (an HTTP exception) for a launch that failed with ``status``."""
    exc_class = {400: HTTPBadRequest, 503: HTTPServiceUnavailable, 507: HTTPInsufficientStorage}.get(
        status, HTTPInternalServerError)
    return error_page(exc_class, title, message, details)


def launch_on_demand(request, username, notebook_context):
    """Start the user's notebook unless it already runs with the same context; return its context.

    Restarting a running notebook with a different context needs the user's intent
    (:mod:`pyramid_notebook.web.intent`); without it, the confirmation page is raised.
    """
    _require_user(username)
    context = _checked_context(request, notebook_context)
    manager = get_notebook_manager(request)
    _require_restart_intent(request, manager, username, context)
    try:
        context, created = manager.start_notebook_on_demand(username, context)
    except (BadUsername, OSError, NoFreePort, TooManyNotebooks, BackendUnavailable, NotebookStartError) as e:
        raise launch_error_page(*describe_launch_error(e)) from None
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
    if progress and wants_progress_page(request) and get_notebook_manager(request).progress_pages:
        _require_user(username)
        path = _checked_path(path)
        context = _checked_context(request, notebook_context)
        manager = get_notebook_manager(request)
        _require_restart_intent(request, manager, username, context)
        try:
            return launch_with_progress(request, username, context, manager,
                                        lambda running: _notebook_page_url(request, running, path),
                                        describe_launch_error, launch_error_page)
        except BadUsername as e:
            raise launch_error_page(*describe_launch_error(e)) from None
    return HTTPFound(notebook_url(request, username, notebook_context, path=path))


def shutdown_notebook(request, username):
    """Stop the user's notebook if it runs. Returns True if one was stopped.

    The user's files stay in their folder for the next launch. Only a request that
    shows the user's intent stops it (a click on the site or in the notebook, or a
    POST with the site's CSRF token; see :mod:`pyramid_notebook.web.intent`); any other
    raises :class:`~pyramid_notebook.web.intent.ConfirmationRequired`, a 200 page whose
    button POSTs back to this URL. The site's view returns whatever comes next.
    """
    _require_user(username)
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
    if running and running.get("http_port") and not running.get("http_host"):
        # A local notebook's own port: its pooled sockets would linger in CLOSE_WAIT. (A hub's
        # proxy stays up for the other users; the sweeper in relays/http.py covers the rest.)
        drop_pool("127.0.0.1", running["http_port"])
    return stopped


def notebook_proxy(request, username):
    """Proxy ``request`` to the user's own notebook.

    Cross-origin state-changing requests and websocket handshakes are refused
    with 403. A websocket handshake goes to the ``pyramid_notebook.websocket_proxy``
    callable as ``websocket_proxy(request, port)``, with the notebook's context in
    ``request.environ["pyramid_notebook.context"]``. With ``pyramid_notebook.accel_redirect``
    set, every request that passes these checks gets an empty answer with ``X-Accel-Redirect``
    instead and nginx relays it (:mod:`pyramid_notebook.relays.accel`).
    """
    _require_user(username)
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
    if not context or not context.get("http_port") or not context.get("token"):
        raise error_page(HTTPBadGateway, "Your notebook is not running",
                         "It may have been shut down or timed out. Launch it again from the site.")
    port = context["http_port"]
    # Only the user's own server's paths go upstream: on a hub, others' servers and the hub's
    # own pages share the upstream address (the user's token is refused there as well).
    if not request.path.startswith(context.get("notebook_path") or "/"):
        raise error_page(HTTPNotFound, "Not your notebook", "This address is not part of your notebook.")

    # nginx accel mode: nginx relays HTTP and websockets itself once the site says yes.
    accel_prefix = get_notebook_settings(request.registry).accel_redirect
    if accel_prefix:
        if accel.is_fallback(request):  # nginx could not reach the notebook
            logger.warning("Notebook of %r on port %s did not answer nginx", username, port)
            raise error_page(HTTPBadGateway, "Your notebook does not answer",
                             "The notebook server could not be reached. Launch it again from the site.")
        static = None if is_websocket_upgrade(request) else static_file_plan(request, context)
        return accel.grant_response(request, context, accel_prefix, static)

    if is_websocket_upgrade(request):
        check_websocket_handshake(request)
        websocket_proxy = get_notebook_settings(request.registry).websocket_proxy
        if websocket_proxy is None:
            raise error_page(HTTPBadRequest, "Websockets are not proxied here",
                             "pyramid_notebook.websocket_proxy is not set, so the notebook page connects its "
                             "websockets straight to the notebook's own port.")
        request.environ[CONTEXT_ENVIRON_KEY] = context
        return websocket_proxy(request, port)

    # Static files straight from disk when the notebook has said where they are.
    response = static_file_response(request, context)
    if response is not None:
        return response
    try:
        return proxy_request(request, port, context["token"], host=context.get("http_host") or "127.0.0.1")
    except UpstreamError as e:
        logger.warning("Notebook of %r on port %s did not answer: %s", username, port, e)
        raise error_page(HTTPBadGateway, "Your notebook does not answer",
                         "The notebook server could not be reached. Launch it again from the site.") from None
