"""Jupyter server extension: the read-only ``team-recipes/`` folder in the user's file browser.

The site's recipe library (:mod:`pyramid_notebook.core.recipes`) keeps the latest version of each
recipe as ``<name>.ipynb`` in its working tree. The site passes that folder in the notebook's context
(``team_recipes``, read here as ``PyramidNotebook.team_recipes``); at start this extension links
``<root_dir>/team-recipes`` to it, so the user can open, copy and run the team's recipes where they
work, with their own kernel. Writes under it through the contents API (a save, a rename, a delete, a
new file, a copy *into* it, an upload) answer 403 with a message saying what to do instead; copying
*out of* it into the user's own folder works. A real folder the user made under that name is left
alone (and gets no recipes). Code a kernel or terminal runs could still write there (same Unix account):
the library's git history keeps every published version whatever happens to the working tree.
"""
import functools
import inspect
import os

from tornado.web import HTTPError

#: The folder's name in the user's root folder.
FOLDER_NAME = "team-recipes"
#: What a refused write says (Notebook 7 shows it in its save-error dialog).
READ_ONLY_MESSAGE = ("team-recipes/ is read-only: it holds the team's published recipes. Save your own copy "
                     "with File > Save Notebook As… into your folder, or open the recipe from the site's "
                     "recipe page (\"Open in my shell\").")
#: Contents manager methods, and which of their arguments are paths that may not be under the folder.
WRITES = {"save": ("path",), "delete_file": ("path",), "rename_file": ("old_path", "new_path"),
          "new": ("path",), "new_untitled": ("path",), "copy": ("to_path",), "create_checkpoint": ("path",),
          "restore_checkpoint": ("path",), "delete_checkpoint": ("path",)}


#: nbdime (the site's diff between recipe versions) installs a server extension into every Jupyter of
#: the environment; users' servers start without it (its lab extension is left out of their pages by
#: server/page_config.py).
NBDIME_SERVER_EXTENSION = "nbdime"


def _jupyter_server_extension_points():
    return [{"module": __name__}]


def under_folder(path) -> bool:
    """True for ``team-recipes`` itself or a path inside it (as the contents API spells paths)."""
    parts = [p for p in str(path or "").replace("\\", "/").split("/") if p not in ("", ".")]
    return bool(parts) and parts[0] == FOLDER_NAME


def _refusing(method, names):
    signature = inspect.signature(method)

    def paths(args, kwargs):
        try:
            bound = signature.bind_partial(*args, **kwargs)
        except TypeError:
            return []
        return [bound.arguments.get(name) for name in names]

    def refuse(args, kwargs):
        if any(under_folder(p) for p in paths(args, kwargs) if p):
            raise HTTPError(403, READ_ONLY_MESSAGE)

    if inspect.iscoroutinefunction(method):
        @functools.wraps(method)
        async def wrapped(*args, **kwargs):
            refuse(args, kwargs)
            return await method(*args, **kwargs)
    else:
        @functools.wraps(method)
        def wrapped(*args, **kwargs):
            refuse(args, kwargs)
            return method(*args, **kwargs)
    return wrapped


def install_guard(manager) -> None:
    """Refuse writes under the folder through ``manager`` (a contents manager), once."""
    if getattr(manager, "_pyramid_notebook_team_recipes", False):
        return
    for name, arguments in WRITES.items():
        method = getattr(manager, name, None)
        if method is not None:
            setattr(manager, name, _refusing(method, arguments))
    copy = getattr(manager, "copy", None)
    if copy is not None:  # a copy with no destination goes beside its source, so the source's folder counts
        original = copy

        def copy_checked(from_path, to_path=None):
            if to_path is None and under_folder(from_path):
                raise HTTPError(403, READ_ONLY_MESSAGE)
            return original(from_path, to_path)

        manager.copy = copy_checked
    manager._pyramid_notebook_team_recipes = True


def link_folder(root_dir: str, library_folder: str, log) -> bool:
    """Make ``<root_dir>/team-recipes`` a link to the library's working tree; False when it cannot."""
    link = os.path.join(root_dir, FOLDER_NAME)
    target = os.path.abspath(library_folder)
    if os.path.islink(link):
        if os.readlink(link) == target:
            return True
        os.unlink(link)  # the library moved (pyramid_notebook.recipes_folder changed)
    elif os.path.exists(link):
        log.warning("pyramid_notebook: %s is the user's own; the team's recipes are not shown there", link)
        return False
    if not os.path.isdir(target):
        log.warning("pyramid_notebook: the recipe library %s is not reachable from this server", target)
        return False
    os.symlink(target, link)
    return True


def _load_jupyter_server_extension(serverapp):
    folder = str((serverapp.config.get("PyramidNotebook") or {}).get("team_recipes") or "")
    if not folder:
        return
    install_guard(serverapp.contents_manager)
    root_dir = os.path.abspath(os.path.expanduser(serverapp.root_dir))
    try:
        linked = link_folder(root_dir, folder, serverapp.log)
    except OSError as e:
        serverapp.log.warning("pyramid_notebook: no team-recipes folder (%s)", e)
        return
    if linked:
        serverapp.log.info("pyramid_notebook: team-recipes/ shows the recipe library %s, read-only", folder)
