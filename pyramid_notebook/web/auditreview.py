"""The audit review in the operator console (issue 32): auditors search, read, review and export sessions.

``pyramid_notebook.auditor_principals`` (default: the ``admin_principals``) may use:

* ``/notebook-admin/audit``: the sessions (a launch, or a shared guest's visit), newest first, filtered
  by ``user``, ``q`` (text in the code or typed into a terminal), ``since``/``until`` and ``status``
  (``pending``, ``reviewed``, ``flagged``), ``page`` by page; and every user's trail, verified or broken
  at which record (broken ones first). ``Accept: application/json``: ``{"sessions": [...], "trails": [...]}``;
* ``/notebook-admin/audit/<id>``: the session's timeline (cells highlighted by Pygments, terminal
  lines, refused actions) and its reviews; JSON ``{"records": [...], "reviews": [...]}``;
* ``POST /notebook-admin/audit/<id>/review`` (``status``, ``note``): 201 with the review, kept
  hash-chained in the grants' database (:mod:`pyramid_notebook.core.auditreviews`). A JSON request
  acts when the browser says it is same-origin and it is ``Content-Type: application/json`` (no other
  site's form can send that); the page's form carries the site's CSRF token. No one reviews their own
  sessions (403);
* ``/notebook-admin/audit/export?<filters>&format=csv|jsonl``: every record of the matching sessions.

Lists come from the index (:mod:`pyramid_notebook.core.auditindex`), which is brought up to date with
the streams at each request and in the background (:mod:`.audittrails`); timelines and exports are read
from the streams themselves. The pages need no script (forms and links), and their Content-Security-Policy
allows none: a cell holding ``<script>`` is shown escaped and could not run anyway.
"""
import contextlib
import json
import logging
import re

from pyramid.httpexceptions import (HTTPBadRequest, HTTPCreated, HTTPForbidden, HTTPNotFound, HTTPSeeOther,
                                    HTTPServiceUnavailable, HTTPUnsupportedMediaType)
from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED

from pyramid_notebook.core import auditquery
from pyramid_notebook.core.auditindex import audit_index
from pyramid_notebook.core.auditreviews import NOTE_MAX, REVIEW_STATUSES, review_store
from pyramid_notebook.core.pages import Refusal, error_page
from pyramid_notebook.core.settingaudit import parse_audit_review_settings
from pyramid_notebook.core.settings import PREFIX, get_notebook_settings, parse_principals
from pyramid_notebook.web import auditreview_pages as pages
from pyramid_notebook.web import permission
from pyramid_notebook.web.audittrails import ensure_refresher
from pyramid_notebook.web.admin import BASE_PATH, PERMISSION, admin_root_factory, wants_json
from pyramid_notebook.web.intent import browser_intent, has_valid_csrf_token

logger = logging.getLogger(__name__)

LIST_ROUTE, EXPORT_ROUTE = "notebook_audit", "notebook_audit_export"
SESSION_ROUTE, REVIEW_ROUTE = "notebook_audit_session", "notebook_audit_review"
#: Sessions per page of the list.
PAGE_SIZE = 50
#: The list's query parameters (the export's, plus ``format``).
FILTERS = ("user", "q", "since", "until", "status", "page")
#: Longest ``q`` and ``user`` taken.
MAX_TEXT = 500
#: Largest review body taken, in bytes.
MAX_BODY = 16 << 10
_SESSION_ID = re.compile(r"^[0-9a-f]{20}$")


class BadFilter(ValueError):
    """A query parameter or field that is wrong; ``field`` names it."""

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field


def refuse(request, status_class, title, message, field=None) -> Refusal:
    """The error as JSON (``{"error", "field"}``) for a JSON client, else the library's error page."""
    if wants_json(request) or request.content_type == "application/json":
        body = {"error": message, **({"field": field} if field else {})}
        return Refusal(status_class(json_body=body, headers={"Cache-Control": "no-store"}))
    return Refusal(error_page(status_class, title, message))


def parse_filters(params, allowed=FILTERS) -> dict:
    """The list's filters from the query string; raises :class:`BadFilter` naming the first wrong one."""
    for name in params:
        if name not in allowed:
            raise BadFilter(str(name)[:64], f"unknown parameter (the parameters are {', '.join(allowed)})")
    values = {}
    for name in allowed:
        found = params.getall(name) if hasattr(params, "getall") else [params[name]] if name in params else []
        if len(found) > 1:
            raise BadFilter(name, "given more than once")
        value = found[0].strip() if found else ""
        if len(value) > MAX_TEXT or any(ord(c) < 32 and c not in "\t" for c in value):
            raise BadFilter(name, f"too long or with control characters (at most {MAX_TEXT} characters)")
        values[name] = value
    for name in ("since", "until"):
        if values[name]:
            try:
                values[name] = auditquery.time_bound(values[name])
            except (ValueError, OverflowError):
                raise BadFilter(name, "must be an ISO date or time (2026-12-01, 2026-12-01T08:00Z) or an age "
                                      "such as 30m, 2h, 7d") from None
    if values["status"] and values["status"] not in auditquery.STATUSES:
        raise BadFilter("status", f"must be one of {', '.join(auditquery.STATUSES)}")
    if "page" in values:
        try:
            page = int(values["page"] or "1")
        except ValueError:
            raise BadFilter("page", "must be a whole number from 1") from None
        if page < 1 or page > 10 ** 6:
            raise BadFilter("page", "must be a whole number from 1")
        values["page"] = page
    return values


def _index(request):
    settings = get_notebook_settings(request.registry)
    ensure_refresher(request.registry)  # a pre-forked worker starts its own background verification
    return audit_index(settings.notebook_folder, settings.audit_sensitive)


def _reviews(request):
    return review_store(get_notebook_settings(request.registry).sqlalchemy_url)


def matching(request, filters):
    """``(sessions, statuses, trails)``: the sessions matching ``filters``, newest first, with their status."""
    with contextlib.closing(_index(request).connect()) as connection:
        found = auditquery.find_sessions(connection, user=filters["user"] or None, q=filters["q"] or None,
                                         since=filters["since"] or None, until=filters["until"] or None)
        trails = auditquery.trails(connection)
    statuses = _reviews(request).statuses()
    if filters["status"]:
        found = [s for s in found if auditquery.status_of(s, statuses) == filters["status"]]
    return found, statuses, trails


def list_view(context, request):
    """``/notebook-admin/audit``: the sessions and the trails (see the module)."""
    try:
        filters = parse_filters(request.GET)
    except BadFilter as e:
        raise refuse(request, HTTPBadRequest, "Bad filter", str(e), e.field) from None
    found, statuses, trails = matching(request, filters)
    start = (filters["page"] - 1) * PAGE_SIZE
    shown = found[start:start + PAGE_SIZE]
    if wants_json(request):
        body = {"sessions": [auditquery.public(s, statuses) for s in shown],
                "trails": [{k: t[k] for k in ("user", "verified", "broken_at")} for t in trails]}
        return _no_store(Response(json_body=body))
    return pages.list_page(request, filters, found, shown, statuses, trails, PAGE_SIZE)


def _session_or_404(request, connection):
    ident = request.matchdict["id"]
    session = auditquery.get_session(connection, ident) if _SESSION_ID.match(ident) else None
    if session is None:
        raise refuse(request, HTTPNotFound, "No such session", "There is no audited session with this id.", "id")
    return session


def session_records(request):
    """``(session, records)`` of the session the URL names, read from its stream (the index rebuilt when stale)."""
    index = _index(request)
    for attempt in (1, 2):
        connection = index.connect()
        try:
            session = _session_or_404(request, connection)
            return session, auditquery.session_records(connection, session["id"])
        except auditquery.StaleIndex as e:
            if attempt == 2:
                raise refuse(request, HTTPServiceUnavailable, "The trail changed",
                             f"The trail changed while it was read ({e}); try again.") from None
            logger.warning("The audit index was stale (%s): rebuilt", e)
            index.rebuild()
        finally:
            connection.close()


def session_view(context, request):
    """``/notebook-admin/audit/<id>``: the session's timeline and its reviews."""
    session, records = session_records(request)
    reviews = _reviews(request).of_session(session["id"])
    if wants_json(request):
        return _no_store(Response(json_body={"records": records, "reviews": reviews}))
    statuses = {session["id"]: reviews[-1]["status"]} if reviews else {}
    return pages.session_page(request, session, records, reviews, auditquery.status_of(session, statuses),
                              own=_is_own(request, session))


def _is_own(request, session) -> bool:
    user = request.authenticated_userid
    return user is not None and str(user) in (session.get("user"), session.get("owner"))


def _review_body(request) -> dict:
    """The review's fields from a same-origin JSON body or the page's form (CSRF token); refusals raised."""
    if request.content_type == "application/json":
        if browser_intent(request) is not True:
            raise refuse(request, HTTPForbidden, "Cross-site request refused",
                         "Reviews are taken from this site's own pages only.")
        if len(request.body or b"") > MAX_BODY:
            raise refuse(request, HTTPBadRequest, "Bad review", "the request's body is too large", "body")
        try:
            body = json.loads(request.body or b"")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise refuse(request, HTTPBadRequest, "Bad review", "the body must be a JSON object", "body")
        return body
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        if not has_valid_csrf_token(request) or browser_intent(request) is False:
            raise refuse(request, HTTPForbidden, "Form expired", "This form's token is not valid: reload the "
                                                                 "session's page and review again.")
        return {name: request.POST[name] for name in ("status", "note") if name in request.POST}
    raise refuse(request, HTTPUnsupportedMediaType, "Unsupported body",
                 "Send Content-Type: application/json (or the page's form).")


def review_view(context, request):
    """``POST /notebook-admin/audit/<id>/review``: record a review (see the module)."""
    body = _review_body(request)
    for name in body:
        if name not in ("status", "note"):
            raise refuse(request, HTTPBadRequest, "Bad review", "unknown field (the fields are status, note)",
                         str(name)[:64])
    status, note = body.get("status"), body.get("note", "")
    if status not in REVIEW_STATUSES:
        raise refuse(request, HTTPBadRequest, "Bad review", f"must be one of {', '.join(REVIEW_STATUSES)}", "status")
    if not isinstance(note, str) or len(note) > NOTE_MAX:
        raise refuse(request, HTTPBadRequest, "Bad review", f"must be text of at most {NOTE_MAX} characters", "note")
    with contextlib.closing(_index(request).connect()) as connection:
        session = _session_or_404(request, connection)
    if _is_own(request, session):
        raise refuse(request, HTTPForbidden, "Not your review",
                     "An auditor never reviews their own sessions: another auditor does.")
    review = _reviews(request).add(session["id"], status, note.strip(), str(request.authenticated_userid))
    logger.info("Audit review: %s marked session %s %s", review["reviewer"], session["id"], status)
    review["created"] = review["created"].strftime("%Y-%m-%dT%H:%M:%SZ")
    url = request.route_path(SESSION_ROUTE, id=session["id"])
    if request.content_type == "application/json":
        return HTTPCreated(json_body=review, headers={"Location": url, "Cache-Control": "no-store"})
    return HTTPSeeOther(url)


def export_view(context, request):
    """``/notebook-admin/audit/export``: every record of the matching sessions, as CSV or JSON lines."""
    params = request.GET.copy()
    fmt = params.pop("format", "")
    try:
        filters = parse_filters(params, tuple(name for name in FILTERS if name != "page"))
        if fmt not in pages.EXPORT_FORMATS:
            raise BadFilter("format", f"must be one of {', '.join(pages.EXPORT_FORMATS)}")
    except BadFilter as e:
        raise refuse(request, HTTPBadRequest, "Bad filter", str(e), e.field) from None
    found, statuses, _ = matching(request, filters)
    index = _index(request)
    try:
        with contextlib.closing(index.connect()) as connection:
            body = pages.export_body(fmt, connection, found, statuses)
    except auditquery.StaleIndex:
        index.rebuild()
        with contextlib.closing(index.connect()) as connection:
            body = pages.export_body(fmt, connection, found, statuses)
    response = Response(body, content_type=pages.EXPORT_FORMATS[fmt], charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="audit-sessions.{fmt}"'
    return _no_store(response)


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def console_summary(request) -> str:
    """The console's link to the review, with how many sessions are pending and flagged (HTML), or "" for
    someone who may not review."""
    root = request.registry.pyramid_notebook_audit_root(request)
    if not permission.permits(request, root, PERMISSION):
        return ""
    try:
        found, statuses, trails = matching(request, dict.fromkeys(FILTERS, ""))
    except Exception:  # noqa: BLE001 - the console works without the review
        logger.exception("The audit review's counts could not be read")
        return pages.summary(request, None, None, None)
    counts = [auditquery.status_of(s, statuses) for s in found]
    return pages.summary(request, counts.count("pending"), counts.count("flagged"),
                         sum(1 for t in trails if not t["verified"]))


def includeme(config):
    """The review's routes, for ``auditor_principals`` (default: the admin principals)."""
    settings = config.get_settings()
    auditors = parse_audit_review_settings(settings, parse_principals(settings.get(PREFIX + "admin_principals")))
    if not auditors["auditor_principals"]:
        return
    factory = admin_root_factory(auditors["auditor_principals"])
    config.registry.pyramid_notebook_audit_root = factory
    config.registry.pyramid_notebook_audit_section = console_summary
    base = BASE_PATH + "audit"
    config.add_route(LIST_ROUTE, base, factory=factory)
    config.add_route(EXPORT_ROUTE, base + "/export", factory=factory)
    config.add_route(SESSION_ROUTE, base + "/{id}", factory=factory)
    config.add_route(REVIEW_ROUTE, base + "/{id}/review", factory=factory)
    anyone = NO_PERMISSION_REQUIRED
    for view, route in ((list_view, LIST_ROUTE), (export_view, EXPORT_ROUTE), (session_view, SESSION_ROUTE)):
        config.add_view(permission.guard(view, PERMISSION), route_name=route, permission=anyone,
                        request_method=("GET", "HEAD"))
    # The review checks intent itself (same-origin JSON, or the form's CSRF token), to answer JSON refusals.
    config.add_view(permission.guard(review_view, PERMISSION), route_name=REVIEW_ROUTE, permission=anyone,
                    request_method="POST", require_csrf=False)
    config.include("pyramid_notebook.web.audittrails")  # every trail verified in the background
    from sqlalchemy.exc import SQLAlchemyError

    for route in (LIST_ROUTE, EXPORT_ROUTE, SESSION_ROUTE, REVIEW_ROUTE):
        config.add_exception_view(unavailable_view, context=SQLAlchemyError, route_name=route)


def unavailable_view(exc, request):
    """The reviews' database cannot be reached: 503 (the console and the notebooks work)."""
    logger.error("The audit reviews' database is unavailable: %s", exc)
    return refuse(request, HTTPServiceUnavailable, "The reviews' database is unavailable",
                  f"The audit review cannot read its database; the site's administrator checks {PREFIX}sqlalchemy_url."
                  ).response
