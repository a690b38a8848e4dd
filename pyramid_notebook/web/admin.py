"""The operator console: every user's notebook on one page, actions to stop them, and metrics.

``pyramid_notebook.admin_principals = role:admin`` (principals of the site's security policy,
space separated) makes ``config.include("pyramid_notebook")`` add:

* ``/notebook-admin/`` (route ``notebook_admin``): a sortable table that refreshes itself, of
  every user's notebook on either backend (running or not, started, last activity, the shell it
  runs, its kernels busy or idle and their notebooks, memory, CPU, the log's end). With
  ``Accept: application/json`` the same rows as a JSON list (:meth:`NotebookBackend.notebook_inventory`);
* ``/notebook-admin/stop`` and ``/notebook-admin/stop-idle``: stop one user's notebook, or every
  running notebook none of whose kernels is busy. Only a POST with the site's CSRF token that no
  browser reports as cross-site acts (:mod:`pyramid_notebook.web.intent`); anything else gets the
  confirmation page, whose button makes that POST;
* ``/notebook-admin/metrics``: Prometheus text (:mod:`pyramid_notebook.web.metrics`), for the
  admin principals or a scraper sending ``Authorization: Bearer <pyramid_notebook.metrics_token>``.

The routes' context (``AdminRoot``, made per site by the include) grants the ``notebook-admin`` permission to exactly
those principals and denies everyone else, whatever the site's root ACL says; the site's own
forbidden view answers the others (the demo sends anonymous browsers to its login page).
A site that wants the console elsewhere, or under its own checks, calls :func:`admin_console`,
:func:`admin_stop` and :func:`admin_metrics` from its own views instead.
"""
import hmac
import json
import logging

from pyramid.authorization import DENY_ALL, Allow
from pyramid.httpexceptions import HTTPBadRequest, HTTPForbidden, HTTPSeeOther, HTTPServiceUnavailable
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED

from pyramid_notebook.backends.base import BackendUnavailable
from pyramid_notebook.core.names import BadUsername
from pyramid_notebook.core.settings import PREFIX, get_notebook_settings, parse_principals
from pyramid_notebook.web import metrics, permission
from pyramid_notebook.web.admin_page import console_html
from pyramid_notebook.web.intent import browser_intent, confirmation_page, get_csrf_token, has_valid_csrf_token
from pyramid_notebook.web.views import error_page, get_notebook_manager

logger = logging.getLogger(__name__)

#: The permission the console's routes require.
PERMISSION = "notebook-admin"
ROUTE = "notebook_admin"
STOP_ROUTE = "notebook_admin_stop"
STOP_IDLE_ROUTE = "notebook_admin_stop_idle"
METRICS_ROUTE = "notebook_admin_metrics"
#: The Watch action (:mod:`pyramid_notebook.web.supervision`), when sharing is on too.
WATCH_ROUTE = "notebook_admin_watch"
#: Where the console is mounted by ``admin_principals``.
BASE_PATH = "/notebook-admin/"


def admin_root_factory(principals):
    """A route factory whose context grants :data:`PERMISSION` to ``principals`` only."""
    acl = [(Allow, principal, PERMISSION) for principal in principals] + [DENY_ALL]

    class AdminRoot:
        """The console's context: its ACL names exactly the admin principals."""

        __acl__ = acl

        def __init__(self, request):
            self.request = request

    return AdminRoot


# --- what the page shows -----------------------------------------------------------------

def inventory(request) -> list:
    """The backend's rows for the console (raises the 503 page if the backend cannot answer)."""
    try:
        return get_notebook_manager(request).notebook_inventory()
    except BackendUnavailable as e:
        raise error_page(HTTPServiceUnavailable, "The notebook service is unavailable", str(e)) from None


def audit_section(request) -> str:
    """HTML of the audit trail under the table: the place where issue 22's audit shows.

    The audit review's link and counts (``pyramid_notebook.web.auditreview``, found through the
    registry: it imports this module), or "" without it.
    """
    section = getattr(request.registry, "pyramid_notebook_audit_section", None)
    return section(request) if section is not None else ""


def wants_json(request) -> bool:
    """True if the client asked for JSON (``Accept: application/json``) rather than the page."""
    offers = request.accept.acceptable_offers(["text/html", "application/json"])
    return bool(offers) and offers[0][0] == "application/json"


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    return response


def _route_url(request, name, fallback):
    try:
        return request.route_path(name)
    except KeyError:
        return fallback


def admin_console(request, message=""):
    """The console: the HTML page, or the JSON list for ``Accept: application/json``."""
    rows = inventory(request)
    if wants_json(request):
        return _no_store(Response(json.dumps(rows), content_type="application/json", charset="utf-8"))
    body = console_html(
        rows, get_csrf_token(request), stop_url=_route_url(request, STOP_ROUTE, request.path.rstrip("/") + "/stop"),
        stop_idle_url=_route_url(request, STOP_IDLE_ROUTE, request.path.rstrip("/") + "/stop-idle"),
        message=message, audit=audit_section(request), watch_url=_route_url(request, WATCH_ROUTE, ""),
        me=str(request.authenticated_userid or ""))
    return _no_store(Response(body, content_type="text/html", charset="utf-8"))


# --- actions -----------------------------------------------------------------------------

def _require_action_intent(request, title, message, button):
    """Act only on a POST with the CSRF token that no browser says came from another site."""
    if request.method == "POST" and has_valid_csrf_token(request) and browser_intent(request) is not False:
        return
    raise confirmation_page(request, title, message, button, cancel_url=_route_url(request, ROUTE, BASE_PATH))


def _done(request, message, stopped):
    logger.info("Operator console: %s", message)
    if wants_json(request):
        return _no_store(Response(json.dumps({"message": message, "stopped": stopped}),
                                  content_type="application/json", charset="utf-8"))
    return HTTPSeeOther(_route_url(request, ROUTE, BASE_PATH))


def admin_stop(request, username=None):
    """Stop ``username``'s notebook (default: the ``user`` form field) for an administrator."""
    username = username or request.params.get("user") or ""
    if not username:
        raise error_page(HTTPBadRequest, "No user", "Say whose notebook to stop.")
    _require_action_intent(request, "Stop this notebook?",
                           f"This stops the notebook of {username} and every kernel in it; unsaved work in its "
                           "open notebooks is lost. Their files stay.", "Stop the notebook")
    try:
        stopped = get_notebook_manager(request).stop_notebook(username)
    except BadUsername as e:
        raise error_page(HTTPBadRequest, "Unusable username", str(e)) from None
    except BackendUnavailable as e:
        raise error_page(HTTPServiceUnavailable, "The notebook service is unavailable", str(e)) from None
    return _done(request, f"Stopped the notebook of {username}." if stopped else f"{username} had no notebook running.",
                 [username] if stopped else [])


def is_idle(row) -> bool:
    """A running notebook none of whose kernels is busy (running code)."""
    return bool(row.get("running")) and not any(k.get("execution_state") == "busy" for k in row.get("kernels") or [])


def admin_stop_idle(request):
    """Stop every running notebook whose kernels are all idle."""
    _require_action_intent(request, "Stop all idle notebooks?",
                           "This stops every notebook none of whose kernels is running code. Unsaved work in "
                           "their open notebooks is lost; files stay.", "Stop all idle")
    manager = get_notebook_manager(request)
    stopped = []
    for row in inventory(request):
        if is_idle(row):
            try:
                if manager.stop_notebook(row["user"]):
                    stopped.append(row["user"])
            except (BadUsername, BackendUnavailable, OSError) as e:
                logger.warning("Could not stop the notebook of %r: %s", row["user"], e)
    return _done(request, f"Stopped {len(stopped)} idle notebook(s): {', '.join(stopped) or 'none'}.", stopped)


# --- metrics -----------------------------------------------------------------------------

def bearer_token_ok(request) -> bool:
    """True if the request carries ``Authorization: Bearer <pyramid_notebook.metrics_token>``."""
    expected = get_notebook_settings(request.registry).metrics_token
    supplied = request.headers.get("Authorization") or ""
    if not expected or not supplied.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(supplied[7:].strip().encode(), expected.encode())


def admin_metrics(request):
    """The Prometheus text page (the caller has checked who may read it)."""
    response = Response(metrics.get_metrics(request.registry).exposition())
    response.headers["Content-Type"] = metrics.CONTENT_TYPE_LATEST
    response.headers["Cache-Control"] = "no-store"
    return response


# --- mounted by admin_principals ---------------------------------------------------------

def _console_view(context, request):
    return admin_console(request)


def _stop_view(context, request):
    return admin_stop(request)


def _stop_idle_view(context, request):
    return admin_stop_idle(request)


def _metrics_view(context, request):
    if bearer_token_ok(request) or permission.permits(request, context, PERMISSION):
        return admin_metrics(request)
    raise HTTPForbidden()


def includeme(config):
    """Add the console's routes and views for ``pyramid_notebook.admin_principals``."""
    principals = parse_principals(config.get_settings().get(PREFIX + "admin_principals"))
    if not principals:
        return
    factory = admin_root_factory(principals)
    config.add_route(ROUTE, BASE_PATH, factory=factory)
    config.add_route(STOP_ROUTE, BASE_PATH + "stop", factory=factory)
    config.add_route(STOP_IDLE_ROUTE, BASE_PATH + "stop-idle", factory=factory)
    config.add_route(METRICS_ROUTE, BASE_PATH + "metrics", factory=factory)
    # The actions check the CSRF token themselves, to answer with the confirmation page, not a 400.
    # The add-on checks the permission itself, whatever the site's policy (pyramid_notebook.web.permission).
    anyone = NO_PERMISSION_REQUIRED
    config.add_view(permission.guard(_console_view, PERMISSION), route_name=ROUTE, permission=anyone,
                    request_method="GET")
    config.add_view(permission.guard(_stop_view, PERMISSION), route_name=STOP_ROUTE, permission=anyone,
                    require_csrf=False)
    config.add_view(permission.guard(_stop_idle_view, PERMISSION), route_name=STOP_IDLE_ROUTE,
                    permission=anyone, require_csrf=False)
    config.add_view(_metrics_view, route_name=METRICS_ROUTE, request_method="GET", permission=anyone,
                    require_csrf=False)
