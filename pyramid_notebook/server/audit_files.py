"""Files written through the contents API go into the audit trail before they are written.

A file can run later: a module a recorded cell imports, a script a terminal line runs, a
notebook opened tomorrow. So every write through Jupyter's contents API (the editor's and
notebook's saves, uploads, new files, copies, renames — whatever the browser sends to
``api/contents``) is recorded first, as a ``file`` record: ``op`` (``save``, ``rename``,
``copy``), ``path``, and for a save ``size`` and ``sha256`` of the bytes the file will hold
(each chunk of a chunked upload on its own), and the text itself for ``.py`` and ``.ipynb``
files up to :data:`MAX_TEXT` characters. A record that cannot be stored means the write is
refused (503), never done unrecorded.

Real-time collaboration's rooms save through the same contents manager, outside the contents
API's handlers: their saves are recorded here too, with ``via: collaboration`` and the persons who
edited (:mod:`.collaboration`).

Files written by code the kernel or a terminal runs are not seen here: that code is recorded
itself, before it runs.
"""
import base64
import functools
import hashlib
import inspect
import json

from pyramid_notebook.core.audit import AuditError
from pyramid_notebook.server import recorder

#: Longest text kept in a record; the size and SHA-256 always cover the whole file.
MAX_TEXT = 256 * 1024
#: Files whose text is kept: code that can be imported or run.
TEXT_SUFFIXES = (".py", ".ipynb")


def file_bytes(model: dict):
    """The bytes a save of ``model`` writes, or ``None`` when it carries no content.

    A notebook's content is replaced by its normalised form, so the file is what was recorded.
    """
    content = model.get("content")
    if content is None:
        return None
    if model.get("type") == "notebook":
        import nbformat

        text = nbformat.writes(nbformat.from_dict(content), version=nbformat.NO_CONVERT)
        # Writing fills in what the notebook lacks (random cell ids): save what was recorded.
        model["content"] = json.loads(text)
        return (text if text.endswith("\n") else text + "\n").encode("utf-8")
    if model.get("format") == "base64":
        return base64.b64decode(str(content).encode("ascii"), validate=False)
    if isinstance(content, str):
        return content.encode("utf-8")
    return json.dumps(content).encode("utf-8")


def save_record(model, path: str) -> dict:
    """The ``file`` record of a save of ``model`` to ``path``."""
    record = {"kind": "file", "op": "save", "path": str(path).strip("/"),
              "type": (model or {}).get("type") if isinstance(model, dict) else None}
    if not isinstance(model, dict):
        return record
    if model.get("chunk") is not None:
        record["chunk"] = model.get("chunk")
    try:
        data = file_bytes(model)
    except Exception as e:  # noqa: BLE001 - Jupyter refuses it with its own message; the attempt is recorded
        record["unreadable"] = e.__class__.__name__
        return record
    if data is None:
        return record
    record.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    if record["path"].endswith(TEXT_SUFFIXES):
        text = data.decode("utf-8", errors="replace")
        record["text"] = text[:MAX_TEXT]
        if len(text) > MAX_TEXT:
            record["text_truncated"] = True
    return record


def _record(serverapp, record: dict) -> None:
    auditor = recorder.AUDITOR or recorder.get_auditor(serverapp)
    if not auditor.enabled:
        return
    from pyramid_notebook.server.collaboration_guard import save_attribution

    user, extra = save_attribution() or (None, {})
    try:
        auditor.record(dict(record, **extra), user)
    except AuditError as e:
        from tornado import web

        raise web.HTTPError(503, recorder.refusal_text(e).replace("Not run", "Not saved")) from None


def _wrap(manager, name, make_record, serverapp) -> None:
    original = getattr(manager, name)

    if inspect.iscoroutinefunction(original):
        @functools.wraps(original)
        async def wrapped(*args, **kwargs):
            _record(serverapp, make_record(*args, **kwargs))
            return await original(*args, **kwargs)
    else:
        @functools.wraps(original)
        def wrapped(*args, **kwargs):
            _record(serverapp, make_record(*args, **kwargs))
            return original(*args, **kwargs)
    setattr(manager, name, wrapped)


def install(serverapp) -> None:
    """Record writes through ``serverapp``'s contents manager (once)."""
    manager = serverapp.contents_manager
    if getattr(manager, "_pyramid_notebook_audited", False):
        return
    _wrap(manager, "save", lambda model, path="": save_record(model, path), serverapp)
    _wrap(manager, "rename_file", lambda old_path, new_path: {
        "kind": "file", "op": "rename", "from": str(old_path).strip("/"), "path": str(new_path).strip("/")}, serverapp)
    _wrap(manager, "copy", lambda from_path, to_path=None: {
        "kind": "file", "op": "copy", "from": str(from_path).strip("/"),
        "path": str(to_path or "").strip("/")}, serverapp)
    manager._pyramid_notebook_audited = True
