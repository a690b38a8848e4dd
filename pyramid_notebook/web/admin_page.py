"""The operator console's page, rendered from ``admin_console.html`` (its table drawn by a small script).

The rows come embedded as JSON (``#notebook-admin-data``) and then every ``REFRESH_SECONDS`` from
the same URL with ``Accept: application/json``; clicking a column header sorts by it (again to
reverse), and the sort survives refreshes. Actions are forms that POST the site's CSRF token;
the script sends them with ``fetch`` and redraws, and without a script they still work (the
view redirects back here). Kept apart from :mod:`pyramid_notebook.web.admin` so the views stay short.
"""
import datetime

from markupsafe import Markup

from pyramid_notebook.core.sizes import format_size
from pyramid_notebook.core.templates import render

#: Seconds between refreshes of the table.
REFRESH_SECONDS = 5
#: The console's template (in ``pyramid_notebook/web/templates``, extending ``base.html``).
TEMPLATE = "admin_console.html"


def console_html(rows, csrf_token, stop_url, stop_idle_url, message="", audit="", watch_url="", me="") -> str:
    """The console's HTML for the inventory ``rows``; every value is escaped except ``audit``, the
    HTML of the audit section (:func:`pyramid_notebook.web.admin.audit_section`). With ``watch_url``, a
    running notebook's row but ``me``'s has a Watch button (:mod:`pyramid_notebook.web.supervision`)."""
    running = [r for r in rows if r.get("running")]
    memory = sum(r.get("memory") or 0 for r in running)
    return render(
        TEMPLATE, rows=rows, running=len(running), total=len(rows),
        kernels=sum(len(r.get("kernels") or []) for r in running), memory=format_size(memory) if memory else "0",
        updated=datetime.datetime.now().strftime("%H:%M:%S"), csrf_token=csrf_token, stop_url=stop_url,
        stop_idle_url=stop_idle_url, refresh=REFRESH_SECONDS, message=message, audit=Markup(audit),
        watch_url=watch_url, me=me)
