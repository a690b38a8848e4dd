"""The audit review's pages (Jinja2 templates, autoescaped), its console summary and its exports.

Code is highlighted by Pygments, which escapes it; every other value is escaped by the templates.
The pages carry the recipe pages' Content-Security-Policy (no script at all), so even markup that
slipped through could not run. Exports guard against spreadsheet formulas: a CSV cell starting with
``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading ``'``.
"""
import csv
import functools
import io
import json
from urllib.parse import urlencode

from markupsafe import Markup

from pyramid_notebook.core import auditquery
from pyramid.response import Response

from pyramid_notebook.core.framing import refuse_framing
from pyramid_notebook.core.templates import render
from pyramid_notebook.web.intent import get_csrf_token

#: Every page: no script at all, styles only inline (ours), forms to the site only.
CSP = ("default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
#: ``format`` values of the export and their content types.
EXPORT_FORMATS = {"csv": "text/csv", "jsonl": "application/x-ndjson"}
#: The export's columns, one row per record of each matching session.
EXPORT_COLUMNS = ("session", "status", "user", "owner", "shell", "reason", "time", "seq", "kind", "notebook",
                  "sensitive", "text")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


@functools.lru_cache(maxsize=1)
def _formatter():
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(cssclass="hl", wrapcode=True)


@functools.lru_cache(maxsize=1)
def highlight_css() -> Markup:
    """Pygments' style sheet for highlighted cells (our own text: trusted)."""
    return Markup(_formatter().get_style_defs(".hl"))


def highlight(code: str) -> Markup:
    """``code`` as highlighted, escaped HTML (Pygments escapes every character of it)."""
    from pygments import highlight as pygmentize
    from pygments.lexers import PythonLexer

    return Markup(pygmentize(code, PythonLexer(stripnl=False, ensurenl=False), _formatter()))


def visible(text: str) -> str:
    """Typed terminal text with its control characters spelled out (Enter shown as a line end)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(c if c.isprintable() or c == "\n" else f"\\x{ord(c):02x}" for c in text)


def _render(request, template, **values):
    values.setdefault("user", request.authenticated_userid or "")
    values.setdefault("home_url", request.route_path("notebook_audit"))
    values.setdefault("console_url", request.route_path("notebook_admin"))
    values.setdefault("css", highlight_css())
    response = Response(render(template, **values), content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return refuse_framing(response)


def list_page(request, filters, found, shown, statuses, trails, page_size):
    """The list of sessions and trails."""
    query = {k: request.GET.get(k, "") for k in ("user", "q", "since", "until", "status") if request.GET.get(k)}
    pages = max(1, -(-len(found) // page_size))
    number = filters["page"]

    def page_url(n):
        return request.route_path("notebook_audit") + "?" + urlencode(dict(query, page=n))

    export = {fmt: request.route_path("notebook_audit_export") + "?" + urlencode(dict(query, format=fmt))
              for fmt in EXPORT_FORMATS}
    sessions = [dict(s, status=auditquery.status_of(s, statuses),
                     url=request.route_path("notebook_audit_session", id=s["id"])) for s in shown]
    form = {k: request.GET.get(k, "") for k in ("user", "q", "since", "until", "status")}
    return _render(request, "audit_list.html", sessions=sessions, trails=trails, form=form, total=len(found),
                   page=number, pages=pages, previous_url=page_url(number - 1) if number > 1 else "",
                   next_url=page_url(number + 1) if number < pages else "", export=export,
                   statuses=auditquery.STATUSES)


def session_page(request, session, records, reviews, status, own):
    """One session's timeline and reviews, with the review form (unless it is the auditor's own)."""
    items = []
    for record in records:
        kind = record.get("kind")
        text = auditquery.record_text(record)
        items.append({"seq": record.get("seq"), "time": record.get("time"), "kind": kind,
                      "user": record.get("user"), "notebook": record.get("notebook") or record.get("terminal") or "",
                      "code": highlight(text) if kind in ("execute", "debug") else None,
                      "text": visible(text) if kind == "terminal-input" else text,
                      "sensitive": record.get("sensitive")})
    return _render(request, "audit_session.html", session=session, items=items, reviews=reviews, review_status=status,
                   own=own, token=get_csrf_token(request),
                   review_url=request.route_path("notebook_audit_review", id=session["id"]))


def summary(request, pending, flagged, broken) -> Markup:
    """The console's section: a link to the review and its counts (``None``: the counts are unavailable)."""
    return Markup(render("audit_summary.html",
        url=request.route_path("notebook_audit"), pending=pending, flagged=flagged, broken=broken,
        flagged_url=request.route_path("notebook_audit") + "?status=flagged",
        pending_url=request.route_path("notebook_audit") + "?status=pending"))


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def export_rows(connection, found, statuses):
    """``dict`` per record of each session in ``found`` (read from the streams), :data:`EXPORT_COLUMNS`."""
    for session in found:
        status = auditquery.status_of(session, statuses)
        for record in auditquery.session_records(connection, session["id"]):
            yield {"session": session["id"], "status": status, "user": record.get("user"),
                   "owner": record.get("owner"), "shell": record.get("launch_url") or record.get("shell"),
                   "reason": record.get("reason"), "time": record.get("time"), "seq": record.get("seq"),
                   "kind": record.get("kind"), "notebook": record.get("notebook"),
                   "sensitive": record.get("sensitive"), "text": auditquery.record_text(record)}


def export_body(fmt, connection, found, statuses) -> str:
    """The export as text (raises :class:`~pyramid_notebook.core.auditquery.StaleIndex` like the timeline)."""
    rows = list(export_rows(connection, found, statuses))
    if fmt == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[column]) for column in EXPORT_COLUMNS])
    return out.getvalue()
