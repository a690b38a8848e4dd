"""An administrator watching a notebook (issue 31, supervision): recorded, and shown to its owner.

The operator console's Watch gives an administrator a ``watch`` grant to someone's running notebook
(``web/supervision.py``); the site signs them as a *supervisor* (:attr:`~pyramid_notebook.core.person.Person.supervisor`).
Here, in the owner's server, a watch lasts while the supervisor has a websocket open under their grant
(every page of the notebook keeps the server's event stream open, so a page open is a watch going on):

* its start and its end are audit records in the owner's stream, kind ``watch``, ``event`` ``start`` or
  ``end`` (the end says ``why``: ``left``, ``revoked`` or ``expired``), ``user`` the administrator;
* each is also an event on the server's event bus (:data:`SCHEMA_ID`), which every page of the server
  receives on its event websocket: the owner's page shows who is watching now (the labextension), and a
  page opened during a watch learns it from its page config (``pyramidNotebookWatchers``).

The end is noticed by the guests' sweep (``server/guests.py``, every half second). A Jupyter server
extension of its own, enabled beside ``server/guests.py``.
"""
import logging

from pyramid_notebook.server import guests
from pyramid_notebook.server.page_config import chain_page_config

log = logging.getLogger(__name__)

#: The event's schema on Jupyter's event bus.
SCHEMA_ID = "https://pyramid-notebook.readthedocs.io/events/supervision"
SCHEMA = {
    "$id": SCHEMA_ID,
    "version": "1",
    "title": "An administrator started or ended watching this notebook",
    "personal-data": True,
    "description": "Sent when a site administrator starts or stops watching this notebook from the operator "
                   "console; 'watching' lists everyone watching now.",
    "type": "object",
    "required": ["event", "user", "watching"],
    "properties": {
        "event": {"enum": ["start", "end"], "description": "The watch started or ended."},
        "user": {"type": "string", "description": "The administrator's site user id."},
        "name": {"type": "string", "description": "The administrator's display name."},
        "watching": {"type": "array", "items": {"type": "string"},
                     "description": "Display names of everyone watching now."},
    },
}
#: Page config key listing who watches now, for a page opened during a watch.
PAGE_CONFIG_KEY = "pyramidNotebookWatchers"

#: Watches going on: (grant id, user id) -> the supervisor (a :class:`.identity.PersonUser`).
WATCHING = {}
_SERVERAPP = []


def watchers() -> list:
    """Display names of the administrators watching now, sorted."""
    return sorted({person.display_name or person.username for person in WATCHING.values()})


def _record_and_tell(person, event: str, why: str = "") -> None:
    from pyramid_notebook.core.audit import AuditError
    from pyramid_notebook.server import recorder

    record = {"kind": "watch", "event": event, "grant": person.grant[:8]}
    if why:
        record["why"] = why
    if not _SERVERAPP:
        return
    serverapp = _SERVERAPP[0]
    try:
        auditor = recorder.get_auditor(serverapp)
        if auditor.enabled:
            auditor.record(record, person)
    except AuditError as e:  # the watch goes on (it changes nothing); the log keeps what was lost
        log.warning("pyramid_notebook: the watch's %s by %r was not recorded: %s", event, person.username, e)
    try:
        serverapp.event_logger.emit(schema_id=SCHEMA_ID, data={
            "event": event, "user": person.username, "name": person.display_name or person.username,
            "watching": watchers()})
    except Exception:  # noqa: BLE001 - a page not told must not break the server; logged
        log.exception("pyramid_notebook: could not tell the pages about the watch")


def opened(person) -> None:
    """A guest's websocket was admitted: a supervisor's watch starts, unless it goes on already."""
    if not getattr(person, "supervisor", False):
        return
    key = (person.grant, person.username)
    if key not in WATCHING:
        WATCHING[key] = person
        log.info("pyramid_notebook: %r started watching", person.username)
        _record_and_tell(person, "start")


def sweep(open_people, ended) -> None:
    """End the watches of supervisors with no open websocket left (``open_people``: the (grant, user id) of
    every open guest websocket); ``ended(person)`` says ``revoked`` or ``expired`` for an ended grant."""
    for key, person in list(WATCHING.items()):
        if key not in open_people:
            del WATCHING[key]
            log.info("pyramid_notebook: %r stopped watching", person.username)
            _record_and_tell(person, "end", ended(person) or "left")


def page_config(handler, page_config: dict) -> dict:
    """Who watches now, for the owner's page (a guest's page is not told)."""
    if not guests.request_grant(handler.request):
        page_config[PAGE_CONFIG_KEY] = watchers()
    return page_config


def _jupyter_server_extension_points():
    return [{"module": __name__}]


def _load_jupyter_server_extension(serverapp):
    """Register the event's schema, hook into the guests' admission and sweep, and the pages' config."""
    _SERVERAPP[:] = [serverapp]
    try:
        serverapp.event_logger.register_event_schema(SCHEMA)
    except Exception:  # noqa: BLE001 - an older jupyter_events: the audit records still happen
        log.exception("pyramid_notebook: could not register the supervision event schema")
    if opened not in guests.ADMITTED_HOOKS:
        guests.ADMITTED_HOOKS.append(opened)
        guests.SWEEP_HOOKS.append(sweep)
    chain_page_config(serverapp, page_config)
