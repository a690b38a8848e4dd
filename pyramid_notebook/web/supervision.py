"""An administrator watches any running notebook from the operator console (issue 31, supervision).

``POST /notebook-admin/watch`` (route ``notebook_admin_watch``, field ``user``), for the admin principals
with the site's CSRF token (anything else gets the confirmation page, as the console's Stop), gives the
administrator a ``watch`` grant to that user's running notebook (:mod:`pyramid_notebook.core.shares`;
``created_by`` the administrator, which is what makes it a *supervision*) and sends them to its link.
From there it is a watch like any other (:mod:`pyramid_notebook.web.joining`: read only, enforced in the
notebook server), except that the site signs the administrator as a supervisor: the owner's server
records the watch's start and end in the owner's audit stream and shows the owner who is watching
(``server/supervision.py``). The owner cannot revoke an administrator's watch; it ends when the
administrator closes the notebook's pages, at its expiry (an hour, at most ``share_max_seconds``) or
when the notebook stops. Watching again while a watch's grant lasts reuses it.

Mounted when both the console (``admin_principals``) and sharing (``share_principals``, by default the
shell principals: the guest routes the watch uses) are on.
"""
import logging

from pyramid.httpexceptions import HTTPBadRequest, HTTPConflict, HTTPSeeOther, HTTPServiceUnavailable
from pyramid.security import NO_PERMISSION_REQUIRED

from pyramid_notebook.core.pages import error_page
from pyramid_notebook.core.settings import PREFIX, get_notebook_settings, parse_principals, parse_shell_principals
from pyramid_notebook.core.shares import server_instance
from pyramid_notebook.web import permission
from pyramid_notebook.web.admin import BASE_PATH, PERMISSION, ROUTE, WATCH_ROUTE, admin_root_factory
from pyramid_notebook.web.intent import browser_intent, confirmation_page, has_valid_csrf_token
from pyramid_notebook.web.shares import SHARED_ROUTE, _running, _store, end_if_stopped

logger = logging.getLogger(__name__)

#: How long a watch's grant lasts, in seconds (at most ``share_max_seconds``).
WATCH_SECONDS = 3600


def _live_watch(store, owner, admin, server):
    """The administrator's live watch of that server, to reuse, or None."""
    for grant in store.given(owner):
        if grant.supervision and grant.recipient == admin and grant.created_by == admin and grant.server == server:
            return grant
    return None


def admin_watch(context, request):
    """Give the administrator a watch of the ``user`` field's running notebook, and go there."""
    admin = str(request.authenticated_userid)
    username = (request.params.get("user") or "").strip()
    if not username:
        raise error_page(HTTPBadRequest, "No user", "Say whose notebook to watch.")
    if username == admin:
        raise error_page(HTTPBadRequest, "Your own notebook", "Open your own notebook from your shell instead.")
    if not (request.method == "POST" and has_valid_csrf_token(request) and browser_intent(request) is not False):
        cancel = request.route_url(ROUTE)
        raise confirmation_page(
            request, "Watch this notebook?",
            f"You will see the notebook of {username} live, its cells and outputs, and change nothing. {username} "
            "sees that you are watching, and the watch's start and end go into the audit trail.", "Watch",
            cancel_url=cancel)
    running = _running(request, username)
    if running is ...:
        raise error_page(HTTPServiceUnavailable, "The notebook service is unavailable",
                         "What runs the notebooks cannot be reached; try again later.")
    if not running or not running.get("http_port"):
        raise error_page(HTTPConflict, "Not running", f"{username} has no notebook running to watch.")
    store = _store(request)
    end_if_stopped(request, username)
    server = server_instance(running)
    grant = _live_watch(store, username, admin, server)
    if grant is None:
        seconds = min(WATCH_SECONDS, get_notebook_settings(request.registry).share_max_seconds)
        grant = store.create(username, admin, "watch", seconds, path=running.get("notebook_name") or "",
                             created_by=admin, server=server)
    logger.info("Operator console: %r watches the notebook of %r", admin, username)
    return HTTPSeeOther(request.route_url(SHARED_ROUTE, id=grant.id), headers={"Cache-Control": "no-store"})


def includeme(config):
    """The Watch action, when the console and sharing are both on."""
    settings = config.get_settings()
    admins = parse_principals(settings.get(PREFIX + "admin_principals"))
    sharers = parse_principals(settings.get(PREFIX + "share_principals")) or parse_shell_principals(settings)
    if not admins or not sharers:
        return
    config.add_route(WATCH_ROUTE, BASE_PATH + "watch", factory=admin_root_factory(admins))
    # The view checks the CSRF token itself, to answer with the confirmation page, not a 400.
    config.add_view(permission.guard(admin_watch, PERMISSION), route_name=WATCH_ROUTE,
                    permission=NO_PERMISSION_REQUIRED, require_csrf=False)
