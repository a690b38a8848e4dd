"""The web site's half of the audit trail: who launches, from where, from which shell, and why.

The notebook server records every cell and terminal line (:mod:`pyramid_notebook.server.audit`),
but only the site knows the user, the client address it saw and the shell the launch came
from. At each launch this module puts them in the notebook's context under ``audit``
(the browser never supplies them), and with ``pyramid_notebook.audit_reason`` set it first
asks the user why: a small form whose POST carries the site's CSRF token. The reason is
recorded with every following record. ``audit`` is added after the context's hash is
taken, so a new launch (or a new reason) never restarts a running notebook; a running one
gets the new information through :meth:`~pyramid_notebook.backends.base.NotebookBackend.update_audit`.
"""
import logging
import secrets

from pyramid.httpexceptions import HTTPOk

from pyramid_notebook.core.audit import LOGGER_NAME, utc_now
from pyramid_notebook.core.audit import log as audit_log
from pyramid_notebook.core.settings import get_notebook_settings
from pyramid_notebook.core.templates import render
from pyramid_notebook.web.intent import CSRF_FIELD, get_csrf_token, has_valid_csrf_token

#: Form field carrying the reason.
REASON_FIELD = "reason"
#: Longest reason kept, in characters.
REASON_MAX = 2000
#: What makes a launch of a running notebook a new session in the trail.
CHANGES = ("enabled", "user", "client", "shell", "reason", "log_config", "debugger", "sensitive", "sensitive_reason")

logger = logging.getLogger(LOGGER_NAME)

#: The reason form's template (``pyramid_notebook/web/templates``).
REASON_TEMPLATE = "reason.html"


class ReasonRequired(HTTPOk):
    """The 200 page asking why the user opens the shell (``pyramid_notebook.audit_reason``).

    Raised by :func:`~pyramid_notebook.web.views.launch_notebook` and
    :func:`~pyramid_notebook.web.views.notebook_url`; its form POSTs back to the same URL.
    """


def reason_page(request, required: bool, error: str = "") -> ReasonRequired:
    """The reason form for ``request``."""
    body = render(REASON_TEMPLATE, error=error, action=request.path_qs, csrf_field=CSRF_FIELD,
                  csrf_token=get_csrf_token(request), reason_field=REASON_FIELD, maximum=REASON_MAX,
                  required=required, cancel=request.application_url + "/")
    response = ReasonRequired(body=body, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    return response


def launch_reason(request, mode: str):
    """The reason the user gave on the form, ``None`` when not asked; raises the form until answered."""
    if mode == "off":
        return None
    try:
        reason = request.POST.get(REASON_FIELD) if has_valid_csrf_token(request) else None
    except Exception:  # an unparsable body carries no reason
        reason = None
    if reason is None:  # not this form's POST (a plain launch, or the restart confirmation's)
        raise reason_page(request, required=(mode == "required"))
    reason = " ".join(reason.split()) if isinstance(reason, str) else ""
    if len(reason) > REASON_MAX:
        raise reason_page(request, mode == "required", f"Please keep it under {REASON_MAX} characters.")
    if not reason and mode == "required":
        raise reason_page(request, required=True, error="Please say why you open the shell.")
    return reason or None


def attach_audit(request, username, context, manager) -> dict:
    """Put this launch's ``audit`` information in ``context`` (asking the reason first if the
    site wants one) and hand it to a notebook that already runs with the same context."""
    settings = get_notebook_settings(request.registry)
    if not settings.audit:
        context["audit"] = {"enabled": False}
        return context
    reason = launch_reason(request, settings.audit_reason)
    info = {
        # getattr: test doubles and some embedding frameworks' requests lack WebOb's address helpers.
        "enabled": True, "user": username, "client": getattr(request, "client_addr", None),
        "remote_addr": getattr(request, "remote_addr", None),
        "shell": context.get("context_hash"), "launch_url": request.path, "reason": reason,
        "launch_id": secrets.token_hex(8), "launched_at": utc_now(), "log_config": settings.audit_log_config,
        "debugger": settings.audit_debugger,
        # With audit_sensitive_reason = required, the notebook server refuses a cell matching these
        # without a reason on its first line (server/kernel_messages.py).
        "sensitive": list(settings.audit_sensitive), "sensitive_reason": settings.audit_sensitive_reason,
    }
    try:
        running = manager.get_notebook_status(username)
    except Exception:  # noqa: BLE001 - the launch that follows reports it properly
        running = None
    if running and running.get("context_hash") == context.get("context_hash"):
        previous = running.get("audit") or {}
        if all(previous.get(k) == info[k] for k in CHANGES):
            # The same user, address, shell and reason (a reload, a progress page's poll): the
            # running notebook's launch stands, no new session record.
            context["audit"] = previous
            return context
        manager.update_audit(username, info)
    context["audit"] = info
    audit_log(dict({k: v for k, v in info.items() if k != "log_config"}, kind="launch"))
    return context
