"""What each person may do in the notebook server: a watcher looks, and changes nothing.

Jupyter asks ``ServerApp.authorizer_class`` before every handler's action (``read``, ``write`` or
``execute`` on ``contents``, ``kernels``, ``sessions``, ``terminals``, ...). The owner and a
collaborator may do everything, as before. A watcher (role ``watch``, vouched for by the site:
:mod:`.identity`) may only read: list and open files, sessions and kernels, subscribe to the
server's events, and open a kernel websocket, where every message that would run code, answer
input, talk to a comm, debug, interrupt or restart is refused by :mod:`.audit_kernel`. Everything
else is refused with 403 (terminals entirely, even their list: a terminal is a shell), and the
refusal is an audit record of kind ``refused``. Enforced here, in the server, whatever the page shows.
"""
import logging

from jupyter_server.auth.authorizer import Authorizer

from pyramid_notebook.core.audit import AuditError
from pyramid_notebook.core.person import WATCH
from pyramid_notebook.server import recorder
from pyramid_notebook.server.identity import role_of

log = logging.getLogger(__name__)

#: Resources a watcher may not use at all, not even to read (a terminal's list leads to its shell;
#: a language server can edit files).
WATCH_FORBIDDEN_RESOURCES = frozenset({"terminals", "lsp"})
#: ``execute`` actions a watcher may take: opening websockets that only show (the kernel's, whose
#: messages are filtered; the server's event stream).
WATCH_EXECUTE = frozenset({"kernels", "events"})


def watcher_may(handler, action: str, resource: str) -> bool:
    """True if a watcher may take ``action`` on ``resource`` through ``handler``."""
    if resource in WATCH_FORBIDDEN_RESOURCES:
        return False
    if action == "read" or _is_room_session(handler):
        return True
    if action == "execute" and resource in WATCH_EXECUTE:
        from tornado.websocket import WebSocketHandler

        # The kernel's REST actions (start, restart, interrupt) are "write"; only its websocket is
        # "execute", and there each message is judged.
        return isinstance(handler, WebSocketHandler)
    return False


def _is_room_session(handler) -> bool:
    """A collaboration room's session (``PUT api/collaboration/session/<path>``, a "write" on contents) only
    names the document's room; the room's websocket refuses a watcher's changes (:mod:`.collaboration`)."""
    try:
        from jupyter_server_ydoc.handlers import DocSessionHandler
    except ImportError:  # jupyter-collaboration is not installed
        return False
    return isinstance(handler, DocSessionHandler)


def _is_probe(handler) -> bool:
    """``api/me`` asks about permissions it does not use: not a refused request."""
    from jupyter_server.services.api.handlers import IdentityHandler

    return isinstance(handler, IdentityHandler)


class PersonAuthorizer(Authorizer):
    """Everything for the owner and collaborators; reading only for watchers (403 and a record otherwise)."""

    def is_authorized(self, handler, user, action, resource) -> bool:
        """See the module's docstring."""
        if role_of(user) != WATCH or watcher_may(handler, action, resource):
            return True
        if not _is_probe(handler):
            self._record_refusal(handler, user, action, resource)
        return False

    def _record_refusal(self, handler, user, action, resource) -> None:
        request = handler.request
        reason = f"you are watching this notebook: {action} on {resource} is not allowed"
        log.warning("pyramid_notebook: refused %s %s to watcher %r (%s on %s)", request.method, request.path,
                    getattr(user, "username", None), action, resource)
        try:
            auditor = recorder.AUDITOR or recorder.get_auditor(handler.settings["serverapp"])
            if auditor.enabled:
                auditor.record({"kind": "refused", "request": f"{request.method} {request.path}", "action": action,
                                "resource": resource, "refusal": reason, "peer": request.remote_ip}, user)
        except (AuditError, KeyError) as e:
            log.warning("pyramid_notebook: the refusal was not recorded: %s", e)
