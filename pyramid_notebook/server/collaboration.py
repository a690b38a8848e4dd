"""Real-time collaboration (jupyter-collaboration) in the notebook server, for live shared sessions.

``pyramid_notebook.collaboration`` (the context's ``collaboration``) decides whether it is loaded:

``always``
    jupyter-collaboration's server extension and its lab extensions in every server and page.
``auto``
    nothing until the server is shared: once a guest (a person the site vouched for with a role
    other than ``owner``) reaches it, or its owner says so (the Share dialog's ``PUT
    <base>api/pyramid-notebook/collaboration`` after a grant; the owner then reloads), this extension
    loads jupyter-collaboration's server extensions into the running server (no restart: the
    kernels stay) and the pages from then on load its lab extensions. A server nobody shares costs
    what it cost without it.
``off``
    neither; a collaborate grant then works without live co-editing.

Whatever the mode, with the extension loaded (:mod:`.collaboration_guard` hooks it):

- A **watcher's** document websocket (``api/collaboration/room/...``) may read: sync step 1, an
  empty sync step 2 (its reply to the server's step 1), awareness (its cursor and name). Nothing
  else it sends reaches the room: an update or step 2 that would change the document's content, a
  save or chat message is refused (a ``refused`` record, once per connection and kind); one that
  only touches the document's ``state`` map (the page's own bookkeeping) is dropped quietly. The
  connection stays open, so the page keeps following the document. :mod:`.authorizer` lets a
  watcher ask for the room's session.
- Saves the room makes (RTC writes the file itself, not through ``api/contents``) pass through the
  contents manager, so :mod:`.audit_files` records them as ``file`` records before the write; here
  they gain ``via: collaboration``, the person who last edited (``user``) and every person who
  edited since the previous save (``editors``).
"""
import logging
import os
import threading

log = logging.getLogger(__name__)

#: Values of the context's ``collaboration`` (``pyramid_notebook.collaboration``).
MODES = ("auto", "always", "off")
#: jupyter-collaboration's server extensions (it enables them for every server it is installed in).
SERVER_EXTENSIONS = ("jupyter_server_ydoc", "jupyter_server_fileid")
#: Its lab extensions: the shared models' provider and the collaboration UI (cursors, users panel).
LABEXTENSIONS = ("@jupyter/docprovider-extension", "@jupyter/collaboration-extension")
#: Core plugins they disable in favour of their own (read from their package.json too): a page that leaves
#: them out must not leave these disabled, or its cells cannot run.
REPLACED_PLUGINS = ("@jupyterlab/notebook-extension:cell-executor",
                    "@jupyterlab/filebrowser-extension:defaultFileBrowser")
#: The page config key telling the Share dialog whether this page co-edits live (``live``), or would
#: after a reload (``dormant``), or never (``off``).
PAGE_KEY = "pyramidNotebookCollaboration"
#: The page config key naming the page's person's role (``owner``, ``collaborate``, ``watch``).
ROLE_KEY = "pyramidNotebookRole"


def mode_of(context: dict) -> str:
    """The context's ``collaboration`` mode; ``off`` when missing (an older site) or unknown."""
    mode = str((context or {}).get("collaboration") or "off").strip().lower()
    return mode if mode in MODES else "off"


def installed() -> bool:
    """True if jupyter-collaboration's server extension can be imported."""
    import importlib.util

    return importlib.util.find_spec("jupyter_server_ydoc") is not None


def server_extensions(context: dict) -> dict:
    """``ServerApp.jpserver_extensions`` entries: this module, and jupyter-collaboration's on at start
    for ``always`` (``auto`` loads them once shared: :func:`load_collaboration`), off otherwise."""
    on = mode_of(context) == "always" and installed()
    return {**{name: on for name in SERVER_EXTENSIONS}, __name__: True}


def store_config(jupyter_dir: str) -> dict:
    """The Y updates' store and the sessions' file in the state's ``jupyter_dir`` (default: the user's folder)."""
    return {"SQLiteYStore": {"db_path": os.path.join(jupyter_dir, "ystore.db")},
            "YDocExtension": {"session_store_path": os.path.join(jupyter_dir, "collaboration_sessions.json")}}


# --- who is shared: "auto" mode ----------------------------------------------------------------

class _State:
    """This server's collaboration state (one per process)."""

    def __init__(self):
        self.mode = "off"
        self.shared = False
        #: :func:`replaced_plugins`, read at the first page that leaves the lab extensions out.
        self.replaced = None
        #: The server (``auto``: where :func:`load_collaboration` loads them), and whether they are loaded.
        self.serverapp = None
        self.loaded = False
        self.lock = threading.Lock()


STATE = _State()


def live_in_page(handler) -> bool:
    """True if the page ``handler`` renders loads the collaboration lab extensions."""
    if STATE.mode == "always":
        return True
    if STATE.mode != "auto":
        return False
    if _is_guest(getattr(handler, "current_user", None)):
        share()
    return STATE.shared


def share() -> None:
    """``auto``: this server is shared from now on; load the collaboration if it is not yet."""
    if STATE.mode != "auto":
        return
    load_collaboration(STATE.serverapp)
    STATE.shared = True


def load_collaboration(serverapp) -> None:
    """Load jupyter-collaboration's server extensions (file ids, then the Y rooms) into the running
    ``serverapp`` (once), as Jupyter loads an enabled extension at start; hook the watcher's guard
    and the saves' attribution into them."""
    with STATE.lock:
        if STATE.loaded or serverapp is None:
            return
        from jupyter_server_fileid.extension import FileIdExtension
        from jupyter_server_ydoc.app import YDocExtension

        for extension in (FileIdExtension, YDocExtension):
            if extension.name not in serverapp.extension_manager.extension_points:
                extension._load_jupyter_server_extension(serverapp)
        _hook()
        STATE.loaded = True
        log.info("pyramid_notebook: real-time collaboration loaded (the server is shared)")


def _hook() -> None:
    from jupyter_server_ydoc.handlers import YDocWebSocketHandler
    from jupyter_server_ydoc.loaders import FileLoader

    from pyramid_notebook.server.collaboration_guard import attribute_room_saves, guard_document_websocket

    guard_document_websocket(YDocWebSocketHandler)
    attribute_room_saves(FileLoader)


def _is_guest(user) -> bool:
    from pyramid_notebook.core.person import OWNER
    from pyramid_notebook.server.identity import person_of

    person = person_of(user)
    return person is not None and person.role != OWNER


def _role(handler) -> str:
    from pyramid_notebook.server.identity import role_of

    return role_of(getattr(handler, "current_user", None))


def replaced_plugins() -> frozenset:
    """The core plugins the collaboration lab extensions disable in favour of their own (the notebook's
    cell executor, the default file browser), from their ``package.json``: a page without them needs them back."""
    import json

    from jupyter_core.paths import jupyter_path

    found = set(REPLACED_PLUGINS)
    for folder in jupyter_path("labextensions"):
        for name in LABEXTENSIONS:
            try:
                with open(os.path.join(folder, name, "package.json"), encoding="utf-8") as f:
                    found.update(json.load(f).get("jupyterlab", {}).get("disabledExtensions") or ())
            except (OSError, ValueError, AttributeError):
                continue
    return frozenset(found)


def _hide(page_config: dict) -> dict:
    from pyramid_notebook.server.page_config import hide_labextensions

    page_config = hide_labextensions(page_config, LABEXTENSIONS)
    disabled = page_config.get("disabledExtensions")
    if isinstance(disabled, list):
        if STATE.replaced is None:
            STATE.replaced = replaced_plugins()
        page_config["disabledExtensions"] = [name for name in disabled if name not in STATE.replaced]
    # jupyter-collaboration's own switch, for any of its plugins that still loads.
    page_config["disableRTC"] = True
    return page_config


def install_page_hook(serverapp) -> None:
    """Chain a ``page_config_hook`` leaving the collaboration lab extensions out of pages that do not co-edit."""
    from pyramid_notebook.server.page_config import chain_page_config

    def page_config_hook(handler, page_config):
        live = live_in_page(handler)
        # The Share dialog is the owner's: a guest's page in this server has none.
        page_config[ROLE_KEY] = _role(handler)
        page_config[PAGE_KEY] = "live" if live else ("dormant" if STATE.mode == "auto" else "off")
        # Set on every page: JupyterLab's handler hands the hook the server's one page_config_data dict.
        page_config["disableRTC"] = not live
        return page_config if live else _hide(page_config)

    chain_page_config(serverapp, page_config_hook)


# --- the owner's "I am sharing" -----------------------------------------------------------------

def _shared_handler():
    from jupyter_server.base.handlers import APIHandler
    from tornado import web

    class CollaborationHandler(APIHandler):
        """``GET``: this server's mode and whether its pages co-edit; ``PUT`` (owner): they should."""

        auth_resource = "contents"

        @web.authenticated
        def get(self):
            """``{"mode", "shared", "live"}``."""
            self.finish({"mode": STATE.mode, "shared": STATE.shared, "live": live_in_page(self)})

        @web.authenticated
        def put(self):
            """The owner shared this server: its pages load the collaboration extensions from now on."""
            from pyramid_notebook.core.person import OWNER
            from pyramid_notebook.server.identity import role_of

            if role_of(self.current_user) != OWNER:
                raise web.HTTPError(403, "Only the notebook's owner says it is shared")
            share()
            self.finish({"mode": STATE.mode, "shared": STATE.shared, "live": live_in_page(self)})

    return CollaborationHandler


def _load_jupyter_server_extension(serverapp):
    """Hook the collaboration into this server as the context says (see the module's docstring)."""
    from jupyter_server.utils import url_path_join

    from pyramid_notebook.core.contextfile import read_context
    from pyramid_notebook.server.static_files import PID_FILE_ENV

    pid_file = os.environ.get(PID_FILE_ENV)
    if pid_file:
        context = read_context(pid_file) or {}
    else:  # a JupyterHub single-user server: the context the site gave the hub
        from pyramid_notebook.server.hub_extension import read_context as hub_context

        context = hub_context()
    mode = mode_of(context) if installed() else "off"
    if mode == "always" and not serverapp.jpserver_extensions.get("jupyter_server_ydoc", False):
        # A server whose configuration leaves it out at start (the hub's): loaded when first shared.
        mode = "auto"
    STATE.mode, STATE.serverapp = mode, serverapp
    if mode == "always":
        _hook()
        STATE.loaded = True
    install_page_hook(serverapp)
    base = serverapp.web_app.settings.get("base_url", "/")
    serverapp.web_app.add_handlers(".*$", [(url_path_join(base, "api/pyramid-notebook/collaboration"),
                                           _shared_handler())])


def _jupyter_server_extension_points():
    return [{"module": __name__}]
