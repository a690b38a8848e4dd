"""A watcher's document websocket, and who made the saves of real-time collaboration's rooms.

Hooked into jupyter-collaboration by :mod:`.collaboration` when it is loaded:

- :func:`guard_document_websocket`: a watcher's messages that would change a document never reach its
  room (see "Watchers" in ``docs/sharing.rst``), and who edits each document is noted;
- :func:`attribute_room_saves`: a room's save is recorded by :mod:`.audit_files` with ``via:
  collaboration``, the last editor as ``user`` and everyone who edited since the previous save.
"""
import contextvars
import logging
import threading

log = logging.getLogger(__name__)

#: The Y protocol's message types (first var-uint of each websocket message) and sync steps.
SYNC, AWARENESS = 0, 1
SYNC_STEP1, SYNC_STEP2 = 0, 1
#: An update with no change: what a fresh client's sync step 2 carries (no structs, no deletions).
EMPTY_UPDATES = (b"\x00\x00",)


class _Edits:
    """Who edited each document since its room's last save (one per process)."""

    def __init__(self):
        self.lock = threading.Lock()
        #: file id -> site user ids who sent updates since the room's last save (in order).
        self.editors = {}
        #: file id -> the PersonUser who sent the last update.
        self.last_editor = {}


EDITS = _Edits()


# --- a watcher's document websocket ----------------------------------------------------------

def watcher_message_allowed(message: bytes) -> bool:
    """True if a watcher may send ``message`` on a document websocket: it reads and changes nothing."""
    from pycrdt import Decoder

    if not message:
        return False
    try:
        decoder = Decoder(message)
        kind = decoder.read_var_uint()
        if kind == AWARENESS:
            return True
        if kind != SYNC:
            return False  # RAW (a save), CHAT, anything else
        step = decoder.read_var_uint()
        if step == SYNC_STEP1:
            return True
        if step == SYNC_STEP2:
            return decoder.read_message() in EMPTY_UPDATES
    except Exception:  # noqa: BLE001 - a message that does not decode is not a read
        return False
    return False


def _is_update(message: bytes) -> bool:
    """True if ``message`` may change the document (a sync step 2 or update with content)."""
    return bool(message) and message[0] == SYNC and not watcher_message_allowed(message)


def _changes_content(handler, message: bytes) -> bool:
    """True if the update ``message`` carries would change the room's document content (anything but its
    ``state`` map), tried on a copy of the document; True when there is no document to try it on."""
    from pycrdt import Decoder, Doc

    document = getattr(getattr(handler, "room", None), "_document", None)
    if document is None:
        return True
    try:
        decoder = Decoder(message)
        decoder.read_var_uint()
        decoder.read_var_uint()
        update = decoder.read_message()
        scratch = Doc()
        scratch.apply_update(document.ydoc.get_update())
        shadow = type(document)(scratch)
        before = shadow.get()
        scratch.apply_update(update)
        return shadow.get() != before
    except Exception:  # noqa: BLE001 - an update that cannot be tried is refused
        return True


def _file_id(room_id: str):
    parts = str(room_id or "").split(":", 2)
    return parts[2] if len(parts) == 3 else None


def guard_document_websocket(handler_class) -> None:
    """Wrap ``handler_class.on_message``: refuse a watcher's writes, note who edits each document."""
    if getattr(handler_class, "_pyramid_notebook_guarded", False):
        return
    original = handler_class.on_message

    async def on_message(self, message):
        from pyramid_notebook.core.person import WATCH
        from pyramid_notebook.server.identity import person_of, role_of

        user = self.current_user
        if isinstance(message, str):
            message = message.encode("utf-8")
        if role_of(user) == WATCH:
            if not watcher_message_allowed(message):
                # Never passed on. The page's own bookkeeping (the document's "state" map: its id,
                # dirty flag) is dropped quietly; anything else is a refused change, on record.
                if not (_is_update(message) and not _changes_content(self, message)):
                    _refuse(self, user, message)
                return None
        elif _is_update(message) and person_of(user) is not None:
            file_id = _file_id(getattr(self, "_room_id", ""))
            if file_id:
                with EDITS.lock:
                    editors = EDITS.editors.setdefault(file_id, [])
                    if user.username not in editors:
                        editors.append(user.username)
                    EDITS.last_editor[file_id] = user
        return await original(self, message)

    handler_class.on_message = on_message
    handler_class._pyramid_notebook_guarded = True


def _refuse(handler, user, message: bytes) -> None:
    """Record the refusal, once per connection and kind of message (a page may resend its change)."""
    from pyramid_notebook.core.audit import AuditError
    from pyramid_notebook.server import recorder

    kind = message[0] if message else None
    recorded = handler.__dict__.setdefault("_pyramid_notebook_refused", set())
    if kind in recorded:
        return
    recorded.add(kind)

    reason = "you are watching this notebook: changes to the document are not allowed"
    log.warning("pyramid_notebook: refused a document change from watcher %r on %s",
                getattr(user, "username", None), handler.request.path)
    try:
        auditor = recorder.AUDITOR or recorder.get_auditor(handler.settings["serverapp"])
        if auditor.enabled:
            auditor.record({"kind": "refused", "request": f"WEBSOCKET {handler.request.path}",
                            "action": "write", "resource": "collaboration", "refusal": reason,
                            "message_type": message[0] if message else None, "detail": message[:24].hex(),
                            "peer": handler.request.remote_ip},
                           user)
    except (AuditError, KeyError) as e:
        log.warning("pyramid_notebook: the refusal was not recorded: %s", e)


# --- saves the rooms make ---------------------------------------------------------------------

#: The save a collaboration room is making: ``(user, fields)`` for :func:`save_attribution`.
_ROOM_SAVE = contextvars.ContextVar("pyramid_notebook_room_save", default=None)


def save_attribution():
    """``(user, extra record fields)`` of the room save being made in this context, or ``None``."""
    return _ROOM_SAVE.get()


def attribute_room_saves(loader_class) -> None:
    """Wrap ``loader_class.maybe_save_content``: its save is recorded with ``via`` and the editors."""
    if getattr(loader_class, "_pyramid_notebook_attributed", False):
        return
    original = loader_class.maybe_save_content

    async def maybe_save_content(self, model):
        file_id = getattr(self, "_file_id", None) or getattr(self, "file_id", None)
        with EDITS.lock:
            editors = EDITS.editors.pop(file_id, [])
            user = EDITS.last_editor.get(file_id)
        token = _ROOM_SAVE.set((user, {"via": "collaboration", "editors": editors}))
        try:
            return await original(self, model)
        finally:
            _ROOM_SAVE.reset(token)

    loader_class.maybe_save_content = maybe_save_content
    loader_class._pyramid_notebook_attributed = True
