"""The recipe library and users' folders: read the notebook a user publishes, put a recipe's copy in
their folder, and the site's audit records of both.

Publishing reads the notebook from the user's folder on disk with the local backend (the site owns
``notebook_folder``; no notebook server has to run) and through the user's server's contents API
with the JupyterHub backend (the hub keeps the files). Opening writes the copy through the user's
running server's contents API (launched first), whichever the backend.
"""
import logging
import os
import threading

from pyramid_notebook.core import audit
from pyramid_notebook.core.recipenb import COPY_METADATA_KEY, BadNotebook, cell_sources
from pyramid_notebook.web import contents
from pyramid_notebook.web.registry import get_notebook_manager

logger = logging.getLogger(__name__)

#: The folder, in the user's own folder, that opened recipes are copied into.
COPY_FOLDER = "recipes"

_stores = {}
_stores_lock = threading.Lock()


def read_user_notebook(request, username: str, path, max_bytes: int) -> bytes:
    """The bytes of the notebook at ``path`` in ``username``'s folder; :class:`BadNotebook` naming the problem."""
    try:
        path = contents.validate_path(path)
    except contents.BadPath as e:
        raise BadNotebook(str(e)) from None
    if not path.endswith(".ipynb"):
        raise BadNotebook(f"{path!r} is not a notebook (a notebook's name ends in .ipynb).")
    manager = get_notebook_manager(request)
    work_folder = getattr(manager, "get_work_folder", None)
    if work_folder is not None:
        return _read_from_disk(work_folder(username), path, max_bytes)
    return read_through_server(request, username, path, max_bytes)


def _read_from_disk(folder: str, path: str, max_bytes: int) -> bytes:
    root = os.path.realpath(folder)
    full = os.path.realpath(os.path.join(root, path))
    if not full.startswith(root + os.sep):
        raise BadNotebook(f"{path!r} is outside your folder.")
    try:
        fd = os.open(full, os.O_RDONLY)
    except FileNotFoundError:
        raise BadNotebook(f"There is no notebook {path!r} in your folder.") from None
    except OSError as e:
        raise BadNotebook(f"{path!r} cannot be read: {e.strerror}.") from None
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if not os.path.isfile(full):
            raise BadNotebook(f"{path!r} is not a file.")
        if size > max_bytes:
            raise BadNotebook(f"{path!r} is {size} bytes, over the library's limit of {max_bytes} bytes "
                              "(pyramid_notebook.recipe_max_bytes).")
        return f.read(max_bytes + 1)


def read_through_server(request, username, path, max_bytes) -> bytes:
    """The notebook's bytes through the user's running server's contents API (the JupyterHub backend)."""
    try:
        server = contents.for_user(request, username)
        model = server.request("GET", path, query="?content=0")
        if model.get("type") not in ("notebook", "file"):
            raise BadNotebook(f"{path!r} is not a notebook.")
        if (model.get("size") or 0) > max_bytes:
            raise BadNotebook(f"{path!r} is {model['size']} bytes, over the library's limit of {max_bytes} "
                              "bytes (pyramid_notebook.recipe_max_bytes).")
        text = server.request("GET", path, query="?type=file&format=text&content=1").get("content") or ""
    except contents.ContentsNotFound:
        raise BadNotebook(f"There is no notebook {path!r} in your folder.") from None
    except contents.NotebookNotRunning:
        raise BadNotebook("Your notebook server is not running: open your shell, then publish.") from None
    except contents.ContentsError as e:
        raise BadNotebook(str(e)) from None
    return text.encode("utf-8")


def copy_path(name: str, version: int = None) -> str:
    """Where the copy of recipe ``name`` goes in the user's folder (``version``: a second copy)."""
    return f"{COPY_FOLDER}/{name}.ipynb" if version is None else f"{COPY_FOLDER}/{name}-v{version}.ipynb"


def _marked(notebook: dict, name: str, version: int) -> dict:
    notebook = dict(notebook)
    notebook["metadata"] = dict(notebook.get("metadata") or {}, **{COPY_METADATA_KEY: {"name": name,
                                                                                       "version": version}})
    return notebook


def put_copy(server, name: str, version: int, notebook: dict, original_of, take: bool = False) -> dict:
    """Copy ``notebook`` (version ``version`` of ``name``) into the user's folder unless their copy has
    their changes (``original_of(version)``: the bytes of the version a copy was taken from, or None).
    Returns ``{"path", "changed", "copied_version"}``: the path to open, whether it is
    the user's changed copy, and the version it was taken from."""
    import json

    try:
        server.get(COPY_FOLDER, content=False)
    except contents.ContentsNotFound:
        server.request("PUT", COPY_FOLDER, {"type": "directory"})
    path = copy_path(name, version if take else None)
    try:
        mine = server.get(path)["content"]
    except contents.ContentsNotFound:
        server.write_notebook(path, _marked(notebook, name, version))
        return {"path": path, "changed": False, "copied_version": version}
    mark = (mine.get("metadata") or {}).get(COPY_METADATA_KEY) or {}
    taken = mark.get("version") if mark.get("name") == name else None
    if take:
        return {"path": path, "changed": False, "copied_version": taken}
    original = original_of(taken) if isinstance(taken, int) else None
    changed = original is None or cell_sources(json.loads(original)) != cell_sources(mine)
    if not changed and taken != version:
        server.write_notebook(path, _marked(notebook, name, version))  # untouched: the newer version
        taken = version
    return {"path": path, "changed": changed, "copied_version": taken}


def audit_record(request, op: str, name: str, version=None) -> None:
    """The site's audit record of a publish, delete or open, in the site's own stream
    (``notebook_folder/.state/.site/audit.jsonl``, written by every web process in turn). Stored before
    the action; :class:`~pyramid_notebook.core.audit.AuditError` when it cannot be, and then nothing is done."""
    from pyramid_notebook.core.settings import get_notebook_settings

    settings = get_notebook_settings(request.registry)
    if not settings.audit:
        return
    path = os.path.join(settings.notebook_folder, ".state", *audit.SITE_STREAM)
    with _stores_lock:
        store = _stores.get(path)
        if store is None:
            store = _stores[path] = audit.AuditStore(path, shared=True)
    record = {"kind": "recipe", "op": op, "user": str(request.authenticated_userid), "recipe": name,
              "client": request.remote_addr or ""}
    if version is not None:
        record["version"] = version
    store.append(record)
