"""Live shared sessions on the site (issue 31): the grants' JSON API and the shared link's page.

``config.include("pyramid_notebook")`` adds, when ``share_principals`` (default: the shell principals) is set:

* ``POST /notebook/shares`` ``{"with", "mode", "expires_in", "path"}`` → ``201 {"id", "url", "mode",
  "expires"}``: share the user's running notebook (``share_principals`` only; 409 when it is not running);
* ``GET /notebook/shares`` → ``{"given": [...], "received": [...]}``: anyone logged in;
* ``DELETE /notebook/shares/<id>`` → 204: the owner, the grantee (the user named, or a holder of the
  principal named) or an admin (``admin_principals``);
* ``GET /notebook/shared/<id>``: the link a grant's ``url`` names. A grant that is forged, expired,
  revoked, ended (the owner's notebook stopped) or not for the logged-in user gets a 403 page saying
  which and nothing about the owner's notebook. A valid one redirects its grantee into the owner's
  notebook, under the grant's prefix ``/notebook/shared/<id>/`` (:mod:`pyramid_notebook.web.joining`).

``collaborate`` needs the shell permission: a grant to someone who does not hold it is made ``watch``,
and the answer's ``mode`` says so (with a ``note``). Whether they hold it is known for a principal (the
principal alone against the shell's ACL) and for a user id when ``user_lookup`` returns their
principals; otherwise the grant keeps ``collaborate`` and the link's page checks the guest's own
request. The API acts on same-origin requests only (:func:`pyramid_notebook.web.intent.browser_intent`)
and takes ``Content-Type: application/json`` bodies only, which no HTML form of another site can send.
"""
import json
import logging
import math
from urllib.parse import quote

from pyramid.authorization import ALL_PERMISSIONS, ACLHelper, Allow, Authenticated, Deny, Everyone
from pyramid.httpexceptions import (
    HTTPBadRequest, HTTPConflict, HTTPCreated, HTTPForbidden, HTTPFound, HTTPNotFound, HTTPServiceUnavailable,
    HTTPUnsupportedMediaType,
)
from pyramid.interfaces import IRootFactory
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED

from pyramid_notebook.backends.base import BackendUnavailable
from pyramid_notebook.core.names import BadUsername
from pyramid_notebook.core.pages import Refusal, error_page
from pyramid_notebook.core.routes import routes_first
from pyramid_notebook.core.settings import PREFIX, get_notebook_settings, parse_principals, parse_shell_principals
from pyramid_notebook.core.shares import MODES, UNSHAREABLE, iso, is_principal, server_instance, share_store
from pyramid_notebook.web import guestcalls, permission
from pyramid_notebook.web.contents import BadPath, validate_path
from pyramid_notebook.web.intent import browser_intent
from pyramid_notebook.web.registry import get_notebook_manager
from pyramid_notebook.web.sitestart import subscribe

logger = logging.getLogger(__name__)

LIST_ROUTE, ITEM_ROUTE, SHARED_ROUTE = "notebook_shares", "notebook_share", "notebook_shared"
JOIN_ROUTE = "notebook_shared_in"  # everything under a grant's prefix (web/joining.py)
JOIN_SERVER_ROUTE = "notebook_shared_in_server"  # on a hub, under the owner's server's path (web/guestcalls.py)
ROUTES = ((ITEM_ROUTE, "/notebook/shares/{id}"), (LIST_ROUTE, "/notebook/shares"),
          (SHARED_ROUTE, "/notebook/shared/{id}"), (JOIN_ROUTE, "/notebook/shared/{id}/*remainder"),
          (JOIN_SERVER_ROUTE, "/notebook/user/{owner}/shared/{id}/*remainder"))
SHARE, ADMIN, RECEIVE, SHELL = "shares.give", "shares.admin", "shares.receive", "shell"
#: A grant without ``expires_in`` lasts an hour.
DEFAULT_SECONDS = 3600
#: Largest JSON body of a share request.
MAX_JSON_BODY = 16 * 1024
#: The fields ``POST /notebook/shares`` takes; ``with`` and ``mode`` are required.
FIELDS, REQUIRED = ("with", "mode", "expires_in", "path"), ("with", "mode")
#: The refusal page of a link, per reason: it names the reason and nothing of the owner's notebook.
REFUSALS = {
    "forged": ("This link is not valid", "No share has this address: it was mistyped or made up."),
    "expired": ("This link has expired", "The share it opened has expired. Ask for a new one."),
    "revoked": ("This link was revoked", "The share it opened was revoked."),
    "stopped": ("This session has ended", "The notebook it shared has stopped, which ended the share."),
    "not yours": ("This link is not for you", "It was shared with someone else: ask its owner to share with you."),
}


class SharesACL:
    """Route context: who may share (``share_principals``) and who may revoke anyone's grant (admins)."""

    sharers: tuple = ()
    admins: tuple = ()

    def __init__(self, request):
        self.request = request
        self.__acl__ = [(Allow, p, SHARE) for p in self.sharers] + [(Allow, p, ADMIN) for p in self.admins] + \
            [(Deny, Everyone, ALL_PERMISSIONS)]


class _ACL:
    """A context with the given ACL, for asking the site's policy (or Pyramid's ACL helper) about it."""

    def __init__(self, acl):
        self.__acl__ = acl


def _refuse(status_class, message, field=None) -> Refusal:
    body = {"error": message}
    if field is not None:
        body["field"] = field
    return Refusal(status_class(json_body=body, headers={"Cache-Control": "no-store"}))


def _bad(field, message) -> Refusal:
    return _refuse(HTTPBadRequest, f"{field}: {message}", field)


def _store(request):
    return share_store(get_notebook_settings(request.registry).sqlalchemy_url)


def _user(request) -> str:
    user = request.authenticated_userid
    if user is None or user == "":
        raise _refuse(HTTPForbidden, "Log in first: shares belong to logged-in users.")
    return str(user)


def holds(request):
    """``holds(principal)``: whether the request's user holds ``principal``, as the site's policy says."""
    return lambda principal: bool(permission.permits(
        request, _ACL([(Allow, principal, RECEIVE), (Deny, Everyone, ALL_PERMISSIONS)]), RECEIVE))


def active_guests(request, grant) -> list:
    """The user ids with a websocket open through ``grant`` right now, as the owner's server says."""
    return guestcalls.connected(request, grant.owner).get(grant.id, [])


def _lookup(request, user_id):
    """What ``user_lookup`` says of ``user_id``: ``(known, name, principals or None)``."""
    hook = get_notebook_settings(request.registry).user_lookup
    if hook is None:
        return True, None, None
    try:
        found = hook(request, user_id)
    except Exception:  # noqa: BLE001 - a site's hook may raise anything: a 503 naming it, not a 500
        logger.exception("%suser_lookup failed for %r", PREFIX, user_id)
        raise _refuse(HTTPServiceUnavailable, f"The site's {PREFIX}user_lookup failed; try again later.") from None
    if found is None:
        return False, None, None
    if isinstance(found, dict):
        return True, found.get("name"), found.get("principals")
    return True, str(found), None


def _name(request, recipient):
    return None if is_principal(recipient) else _lookup(request, recipient)[1]


def _shell_context(request):
    """The context the shell permission is decided on: the INI-only routes' ACL, else the site's root."""
    principals = get_notebook_settings(request.registry).shell_principals
    if principals:
        return _ACL([(Allow, p, SHELL) for p in principals] + [(Deny, Everyone, ALL_PERMISSIONS)])
    factory = request.registry.queryUtility(IRootFactory)
    return factory(request) if factory is not None else None


def grantee_may_collaborate(request, recipient) -> bool:
    """Whether the grantee is known to hold the shell permission (a principal, or a user whose principals
    ``user_lookup`` gives); True when nothing is known (the link's page checks the guest then)."""
    principals = [Authenticated, recipient] if is_principal(recipient) else _lookup(request, recipient)[2]
    if principals is None:
        return True
    context = _shell_context(request)
    return context is not None and bool(ACLHelper().permits(context, [Everyone, *principals], SHELL))


def guest_may_collaborate(request) -> bool:
    """Whether the logged-in guest holds the shell permission themselves."""
    context = _shell_context(request)
    return context is not None and bool(permission.permits(request, context, SHELL))


def _running(request, owner):
    """The owner's running notebook's context, None if it is not running, ``...`` if it cannot be told."""
    try:
        return get_notebook_manager(request).get_notebook_status(owner)
    except (BackendUnavailable, BadUsername, OSError):
        return ...


def end_if_stopped(request, owner) -> None:
    """End the owner's grants given for a notebook server that no longer runs (stopped any way at all)."""
    running = _running(request, owner)
    if running is ...:
        return
    keep = server_instance(running) if running else None
    ended = _store(request).end_owner(owner, keep_server=keep)
    if ended:
        logger.info("Ended %d grant(s) of %r: the notebook they shared stopped", ended, owner)
        guestcalls.shares_changed(request, owner)


def _json_body(request) -> dict:
    if browser_intent(request) is not True:
        raise _refuse(HTTPForbidden, "Cross-site request refused: the shares API acts on this site's own pages' "
                                     "requests only.")
    if request.content_type != "application/json":
        raise _refuse(HTTPUnsupportedMediaType, "Send Content-Type: application/json.")
    if (request.content_length or 0) > MAX_JSON_BODY:
        raise _bad("body", "the request's body is too large")
    try:
        body = json.loads(request.body or b"")
    except ValueError:
        raise _bad("body", "the request's body is not JSON") from None
    if not isinstance(body, dict):
        raise _bad("body", "the request's body must be a JSON object")
    return body


def _checked(request, user, body) -> dict:
    """The share request's values, or a 400 naming the first field that is wrong."""
    settings = get_notebook_settings(request.registry)
    for field in body:
        if field not in FIELDS:
            raise _bad(str(field)[:64], f"unknown field (the fields are {', '.join(FIELDS)})")
    for field in REQUIRED:
        if field not in body:
            raise _bad(field, "missing")
    recipient = body["with"]
    if not isinstance(recipient, str):
        raise _bad("with", "must be text: a user id or a principal such as role:editor")
    if not recipient.strip():
        raise _bad("with", "empty: name a user id or a principal such as role:editor")
    recipient = recipient.strip()
    if len(recipient) > 255 or any(ord(c) < 32 or ord(c) == 127 for c in recipient):
        raise _bad("with", "not a user id or principal (too long, or control characters)")
    if recipient == user:
        raise _bad("with", "you cannot share with yourself")
    if recipient in UNSHAREABLE:
        raise _bad("with", f"{recipient} includes visitors who are not logged in; use system.Authenticated")
    if not is_principal(recipient) and not _lookup(request, recipient)[0]:
        raise _bad("with", "this site knows no such user")
    mode = body["mode"]
    if mode not in MODES:
        raise _bad("mode", f"must be one of {', '.join(MODES)}")
    seconds = body.get("expires_in", DEFAULT_SECONDS)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise _bad("expires_in", "must be a number of seconds")
    if seconds <= 0 or seconds > settings.share_max_seconds:
        raise _bad("expires_in", f"must be more than 0 and at most {settings.share_max_seconds} seconds")
    path = body.get("path")
    if path is not None:
        try:
            path = validate_path(path)
        except BadPath as e:
            raise _bad("path", str(e)) from None
    return {"recipient": recipient, "mode": mode, "seconds": seconds, "path": path}


def create_view(context, request):
    """``POST /notebook/shares``: share the user's running notebook (see the module)."""
    user = _user(request)
    body = _json_body(request)
    if not permission.permits(request, context, SHARE):
        raise _refuse(HTTPForbidden, "You may not share a notebook on this site.")
    values = _checked(request, user, body)
    running = _running(request, user)
    if running is ...:
        raise _refuse(HTTPServiceUnavailable, "What runs the notebooks cannot be reached; try again later.")
    if not running:
        raise _refuse(HTTPConflict, "Your notebook is not running: open your shell, then share it.")
    mode, note = values["mode"], None
    if mode == "collaborate" and not grantee_may_collaborate(request, values["recipient"]):
        mode, note = "watch", "collaborate needs the shell permission, which the grantee does not hold: watch only"
    store = _store(request)
    end_if_stopped(request, user)
    grant = store.create(user, values["recipient"], mode, values["seconds"],
                         path=values["path"] or running.get("notebook_name") or "", created_by=user,
                         server=server_instance(running))
    guestcalls.grant_made(request, grant)  # on a hub, a JupyterHub share (503 and no grant if it cannot be made)
    url = request.route_url(SHARED_ROUTE, id=grant.id)
    answer = {"id": grant.id, "url": url, "mode": grant.mode, "expires": iso(grant.expires), "with": grant.recipient,
              "path": grant.path}
    if note:
        answer["note"] = note
    return HTTPCreated(json_body=answer, headers={"Location": url, "Cache-Control": "no-store"})


def list_view(context, request):
    """``GET /notebook/shares``: the grants the user gave and received, live ones only."""
    user = _user(request)
    store = _store(request)
    if store.given(user):
        end_if_stopped(request, user)
    given = [{"id": g.id, "with": g.recipient, "with_name": _name(request, g.recipient), "mode": g.mode,
              "path": g.path, "created": iso(g.created), "expires": iso(g.expires),
              "url": request.route_url(SHARED_ROUTE, id=g.id), "active": active_guests(request, g),
              "supervision": g.supervision}
             for g in store.given(user)]
    received = store.received(user, holds(request))
    for owner in {g.owner for g in received}:
        end_if_stopped(request, owner)
    received = [{"id": g.id, "owner": g.owner, "owner_name": _name(request, g.owner), "mode": g.mode,
                 "path": g.path, "expires": iso(g.expires), "url": request.route_url(SHARED_ROUTE, id=g.id)}
                for g in store.received(user, holds(request))]
    return Response(json_body={"given": given, "received": received}, headers={"Cache-Control": "private, no-store"})


def delete_view(context, request):
    """``DELETE /notebook/shares/<id>``: revoke a live grant (its owner, its grantee or an admin) → 204."""
    user = _user(request)
    if browser_intent(request) is not True:
        raise _refuse(HTTPForbidden, "Cross-site request refused: the shares API acts on this site's own pages' "
                                     "requests only.")
    store = _store(request)
    grant = store.get(request.matchdict["id"])
    if grant is None or grant.state() != "live":
        raise _refuse(HTTPNotFound, "No such share, or it has already ended.")
    if grant.owner != user and not grant.is_for(user, holds(request)) and \
            not permission.permits(request, context, ADMIN):
        raise _refuse(HTTPForbidden, "Only the share's owner, its grantee or an administrator may revoke it.")
    if grant.supervision and user == grant.owner and not permission.permits(request, context, ADMIN):
        raise _refuse(HTTPForbidden, "An administrator is watching: only an administrator may end it.")
    store.revoke(grant.id)
    guestcalls.notify_ended(request, grant)  # the guest's open websockets close now
    logger.info("Share %s of %r revoked by %r", grant.id[:6], grant.owner, user)
    return Response(status=204)


def shared_view(context, request):
    """``GET /notebook/shared/<id>``: check the grant for the logged-in user (see the module)."""
    if request.authenticated_userid is None or request.authenticated_userid == "":
        raise HTTPForbidden()  # the site's forbidden view: its login page, in most sites
    user, store = str(request.authenticated_userid), _store(request)
    grant, why = store.valid_for(request.matchdict["id"], user, holds(request))
    if why is None:
        end_if_stopped(request, grant.owner)
        grant, why = store.valid_for(grant.id, user, holds(request))
    if why is not None:
        title, message = REFUSALS[why]
        response = error_page(HTTPForbidden, title, message)
        response.headers["Cache-Control"] = "no-store"
        return response
    target = "notebooks/" + quote(grant.path) if grant.path else "tree"
    return HTTPFound(guestcalls.join_url(request, grant) + target,
                     headers={"Cache-Control": "no-store"})


def unavailable_view(exc, request):
    """The grants' database cannot be reached: 503 (the rest of the site works)."""
    logger.error("The grants' database is unavailable: %s", exc)
    return Response(status=503, json_body={"error": f"The shares' database is unavailable; the rest of the site "
                                                    f"works. The site's administrator checks {PREFIX}sqlalchemy_url."})


def _routes_first(config):
    """Our routes before every other (the notebook proxy's ``/notebook/*remainder`` above all)."""
    routes_first(config.registry, [name for name, _ in ROUTES])


def _on_site_start(event):
    """Create the grants' table at start, if missing (else at first use)."""
    settings = getattr(event.app.registry, "pyramid_notebook_settings", None)
    if settings is None or not settings.share_principals:
        return
    try:
        share_store(settings.sqlalchemy_url).engine()
    except Exception as e:  # noqa: BLE001 - a database that is down must not stop the site
        logger.warning("The grants' database is unavailable at start (%s); sharing answers 503 until it is", e)


def includeme(config):
    """The shares' routes and views, when anyone may share."""
    from sqlalchemy.exc import SQLAlchemyError

    settings = config.get_settings()
    sharers = parse_principals(settings.get(PREFIX + "share_principals")) or parse_shell_principals(settings)
    if not sharers:
        return
    factory = type("SharesACL", (SharesACL,), {"sharers": sharers,
                                               "admins": parse_principals(settings.get(PREFIX + "admin_principals"))})
    for name, pattern in ROUTES:
        config.add_route(name, pattern, factory=factory)
    anyone = NO_PERMISSION_REQUIRED
    # Each view checks intent itself (same-origin JSON); the link's page only reads.
    config.add_view(create_view, route_name=LIST_ROUTE, request_method="POST", permission=anyone, require_csrf=False)
    config.add_view(list_view, route_name=LIST_ROUTE, request_method=("GET", "HEAD"), permission=anyone)
    config.add_view(delete_view, route_name=ITEM_ROUTE, request_method="DELETE", permission=anyone,
                    require_csrf=False)
    config.add_view(shared_view, route_name=SHARED_ROUTE, request_method=("GET", "HEAD"), permission=anyone)
    for name, _ in ROUTES:
        config.add_exception_view(unavailable_view, context=SQLAlchemyError, route_name=name)
    config.include("pyramid_notebook.web.joining")
    subscribe(config, _on_site_start)
    config.action(("pyramid_notebook.shares-first",), lambda: _routes_first(config), order=3)
