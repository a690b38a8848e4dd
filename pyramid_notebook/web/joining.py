"""Joining a shared notebook (issue 31): the guest reaches the owner's running server under the grant's prefix.

``GET /notebook/shared/<id>`` (the grant's link, :mod:`pyramid_notebook.web.shares`) sends its grantee to
``<the owner's server's path>shared/<id>/notebooks/<path>``: ``/notebook/shared/<id>/`` for a local server,
``/notebook/user/<owner's hub user>/shared/<id>/`` on a hub. Everything under it is relayed to the
*owner's* server by :func:`join_view`, with the path as it came, and with the credentials the backend gives
the guest (``guest_context``: on a hub the guest's own token): the server serves that prefix as its
base URL for the guest (``server/guests.py``), so the page's scripts, API calls and websockets stay under
it in every relay mode, and the guest's own notebook (under ``/notebook/``) keeps working in another tab.

Each request re-checks the grant (``web.guestcalls.cached_grant``: SQL, a row at
most a second old): a grant that is forged, expired, revoked, ended or not for the logged-in user gets the
403 page naming why, and nothing of the owner's notebook. Then the relay signs the person
(:mod:`pyramid_notebook.core.person`) with the grant's id and expiry and the role the grant gives:
``watch``, or ``collaborate`` if the guest holds the shell permission themselves. The owner's secret,
token and cookies never reach the guest: the relays add the secret upstream only, and the server's login
cookie for the guest names the guest, under the prefix.
"""
import calendar
import logging

from pyramid.httpexceptions import HTTPForbidden, HTTPNotFound, HTTPServiceUnavailable
from pyramid.security import NO_PERMISSION_REQUIRED

from pyramid_notebook.backends.base import BackendUnavailable
from pyramid_notebook.core.contextparts import is_server_only_path
from pyramid_notebook.core.guests import split_guest_path
from pyramid_notebook.core.names import BadUsername
from pyramid_notebook.core.origin import is_cross_site_request, is_websocket_upgrade
from pyramid_notebook.core.pages import Refusal, error_page
from pyramid_notebook.core.person import PERSON_ENVIRON_KEY, Person, WATCH
from pyramid_notebook.core.shares import server_instance
from pyramid_notebook.relays.base import RELAY_KIND_KEY
from pyramid_notebook.web import metrics
from pyramid_notebook.web.guestcalls import cached_grant, forget
from pyramid_notebook.web.limits import check_request_size
from pyramid_notebook.web.registry import get_notebook_manager, get_relay
from pyramid_notebook.web.shares import (
    JOIN_SERVER_ROUTE, REFUSALS, _lookup, _running, _store, guest_may_collaborate, holds,
)

logger = logging.getLogger(__name__)

#: Route of everything under a grant's prefix.
JOIN_ROUTE = "notebook_shared_in"
JOIN_PATTERN = "/notebook/shared/{id}/*remainder"


def refusal(why):
    """The 403 page naming why the grant cannot be used, and nothing of the owner's notebook."""
    title, message = REFUSALS[why]
    response = error_page(HTTPForbidden, title, message)
    response.headers["Cache-Control"] = "no-store"
    return response


def checked_grant(request, grant_id, user):
    """``(grant, None)`` if ``user`` may use the grant now, else ``(grant or None, why)`` (see ``REFUSALS``)."""
    grant = cached_grant(_store(request), grant_id)
    if grant is None:
        return None, "forged"
    if not grant.is_for(user, holds(request)):  # before its state: others learn nothing of the grant
        return grant, "not yours"
    state = grant.state()
    return grant, (None if state == "live" else state)


def guest_mode(request, grant) -> str:
    """The role the guest gets: the grant's mode, but ``watch`` without the shell permission of their own."""
    return grant.mode if grant.mode == WATCH or guest_may_collaborate(request) else WATCH


def _owner_server(request, grant):
    """The owner's running server's context; :class:`Refusal` with the refusal page when it stopped (which
    ends the grant)."""
    running = _running(request, grant.owner)
    if running is ...:
        raise error_page(HTTPServiceUnavailable, "Notebooks are unavailable",
                         "What runs the notebooks cannot be reached; try again later.")
    if not running or not running.get("http_port") or not running.get("token") or \
            server_instance(running) != grant.server:
        _store(request).end_owner(grant.owner, keep_server=server_instance(running) if running else None)
        forget(grant.id)
        raise Refusal(refusal("stopped"))  # as it is: a raised 403 would get the site's forbidden view (its login page)
    return running


def join_view(context, request):
    """Relay a guest's request under ``/notebook/shared/<id>/`` to the owner's server (see the module)."""
    if request.authenticated_userid is None or request.authenticated_userid == "":
        raise HTTPForbidden()  # the site's forbidden view: its login page, in most sites
    user = str(request.authenticated_userid)
    grant, why = checked_grant(request, request.matchdict["id"], user)
    if why is not None:
        return refusal(why)
    check_request_size(request)
    if is_cross_site_request(request):
        raise error_page(HTTPForbidden, "Cross-origin request refused",
                         "This request to a shared notebook came from another web site and was refused.")
    running = _owner_server(request, grant)
    base = running.get("notebook_path") or "/notebook/"
    shared_grant, path = split_guest_path(base, request.script_name + request.path_info)
    if shared_grant != grant.id:
        raise error_page(HTTPNotFound, "Not part of this shared notebook",
                         "This address is not under the shared notebook's own.")
    if is_server_only_path(path, base):
        raise error_page(HTTPNotFound, "Not part of this shared notebook",
                         "This address is used by the web site itself and is not reachable from a browser.")
    name = _lookup(request, user)[1]
    request.environ[PERSON_ENVIRON_KEY] = Person(
        id=user, name=str(name or user), role=guest_mode(request, grant), grant=grant.id,
        until=calendar.timegm(grant.expires.timetuple()) + grant.expires.microsecond / 1e6,
        supervisor=grant.supervision)
    try:  # the backend's credentials for this guest (on a hub: the guest's own token, never the owner's)
        upstream = get_notebook_manager(request).guest_context(grant.owner, user, grant, running)
    except (BackendUnavailable, BadUsername) as e:
        logger.warning("No way into %r's notebook for guest %r: %s", grant.owner, user, e)
        raise error_page(HTTPServiceUnavailable, "Notebooks are unavailable",
                         "The shared notebook cannot be reached right now; try again later.") from None
    relay = get_relay(request)
    response = relay.websocket(request, upstream) if is_websocket_upgrade(request) else relay.http(request, upstream)
    metrics.count_proxied(request.registry, request.environ.get(RELAY_KIND_KEY, "http"))
    return response


def includeme(config):
    """The view under every grant's prefix (its route: :mod:`pyramid_notebook.web.shares`' ``includeme``)."""
    # Jupyter checks its own XSRF token on the guest's writes, as on the owner's.
    for route in (JOIN_ROUTE, JOIN_SERVER_ROUTE):
        config.add_view(join_view, route_name=route, permission=NO_PERMISSION_REQUIRED, require_csrf=False)
