"""The team's recipe library: a git repository kept by the site, driven through dulwich.

``pyramid_notebook.recipes_folder`` (default ``<notebook_folder>/.recipes``) is an ordinary git
repository with a working tree: ``<name>.ipynb`` is the latest version of each recipe (the folder
every user's file browser shows as ``team-recipes/``, :mod:`pyramid_notebook.server.team_recipes`)
and ``.recipes.json`` indexes them. Every publish and delete is one commit whose author is the site
user, so history, authors and diffs are git's (``git log -- orders-per-day.ipynb``) and a team may
push the folder to a remote of its own.

The index is derived data, committed in the same commit as the notebook: per recipe, its versions
(number, author, time, message, the blob id of the notebook, its title and description). Listing
1,000 recipes reads that one blob (cached per HEAD commit) and never parses a notebook; a version's
notebook is the blob the index names.

Several web processes, on several machines, may share the folder: every change runs under an
exclusive ``flock`` on ``.git/pyramid-notebook.lock`` and starts from the HEAD it reads under the
lock, so two publishes of one name at the same moment both land, one after the other.
"""
import contextlib
import fcntl
import json
import os
import tempfile
import threading
import time

from pyramid_notebook.core.audit import AuditError
from pyramid_notebook.core.recipenb import check_name

#: The index file in the repository (hidden from Jupyter's file browser).
INDEX_FILE = ".recipes.json"
#: The lock file, inside ``.git``.
LOCK_FILE = "pyramid-notebook.lock"
#: The branch the library commits to.
BRANCH = b"refs/heads/main"


class RecipeNotFound(LookupError):
    """No recipe (or no such version of it) by that name."""


class LibraryUnavailable(OSError):
    """The library's folder cannot be read or written (a 503: the rest of the site works)."""


class NotAllowed(PermissionError):
    """The user may not do this to the recipe (delete someone else's)."""


def _author(user: str) -> bytes:
    """git's ``Name <email>`` for a site user (no real address: ``.invalid`` is reserved for that)."""
    clean = "".join(c for c in str(user) if c not in "<>\n\r\0").strip() or "unknown"
    email = "".join(c for c in clean if c.isalnum() or c in "._-+") or "user"
    return f"{clean} <{email}@pyramid-notebook.invalid>".encode("utf-8")


def utc_iso(seconds: float) -> str:
    """``2026-12-06T20:31:02Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class RecipeLibrary:
    """One library folder. Cheap to keep per process; safe to share between threads and processes."""

    def __init__(self, folder: str):
        self.folder = os.path.abspath(folder)
        self._repo = None
        self._lock = threading.RLock()
        self._index = (None, {})

    # --- the repository ---------------------------------------------------------------------

    def repo(self):
        """The dulwich repository, created (with its first, empty commit) on first use."""
        from dulwich.repo import Repo

        with self._lock:
            if self._repo is None:
                try:
                    if not os.path.isdir(os.path.join(self.folder, ".git")):
                        with self._locked(create=True):
                            if not os.path.isdir(os.path.join(self.folder, ".git")):
                                self._init()
                    self._repo = Repo(self.folder)
                except OSError as e:
                    raise LibraryUnavailable(e.errno, f"The recipe library {self.folder} cannot be used: "
                                                      f"{e.strerror or e}") from e
            return self._repo

    def _init(self):
        from dulwich.repo import Repo

        repo = Repo.init(self.folder, mkdir=False)
        repo.refs.set_symbolic_ref(b"HEAD", BRANCH)
        with open(os.path.join(self.folder, ".git", "description"), "w") as f:
            f.write("pyramid_notebook team recipes\n")
        os.makedirs(os.path.join(self.folder, ".git", "info"), exist_ok=True)
        with open(os.path.join(self.folder, ".git", "info", "exclude"), "a") as f:
            f.write(".pyramid-notebook-init.lock\n.tmp-*\n.ipynb_checkpoints/\n")
        self._write_file(INDEX_FILE, b"{}\n")
        worktree = repo.get_worktree()
        worktree.stage([INDEX_FILE])
        worktree.commit(b"Start the team's recipe library", author=_author("pyramid_notebook"),
                        committer=_author("pyramid_notebook"), ref=BRANCH)
        repo.close()

    @contextlib.contextmanager
    def _locked(self, create=False):
        """The library's exclusive lock (all processes, all machines sharing the folder)."""
        folder = os.path.join(self.folder, ".git")
        if create:
            os.makedirs(self.folder, exist_ok=True)
            folder = self.folder
        fd = os.open(os.path.join(folder, LOCK_FILE if not create else ".pyramid-notebook-init.lock"),
                     os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def head(self) -> bytes:
        """The id of the library's latest commit."""
        try:
            return self.repo().refs[BRANCH]
        except (OSError, KeyError) as e:
            raise LibraryUnavailable(getattr(e, "errno", None), f"The recipe library cannot be read: {e}") from e

    def index(self, head: bytes = None) -> dict:
        """The index at ``head`` (default: the latest), cached per commit."""
        head = head or self.head()
        cached_head, cached = self._index
        if cached_head == head:
            return cached
        with self._lock:
            repo = self.repo()
            tree = repo[repo[head].tree]
            _, blob_id = tree[INDEX_FILE.encode()]
            index = json.loads(repo[blob_id].data)
            self._index = (head, index)
            return index

    # --- reading ----------------------------------------------------------------------------

    def listing(self) -> list:
        """Every recipe, most recently updated first: ``name, title, description, author, version, updated``."""
        found = []
        for name, entry in self.index().items():
            first, last = entry["versions"][0], entry["versions"][-1]
            found.append({"name": name, "title": last.get("title") or name, "description": last.get("description", ""),
                          "author": first["author"], "version": last["version"], "updated": last["updated"]})
        found.sort(key=lambda r: (r["updated"], r["name"]), reverse=True)
        return found

    def recipe(self, name: str) -> dict:
        """The index entry of ``name`` (``{"versions": [...]}``); :class:`RecipeNotFound` if none."""
        entry = self.index().get(name) if isinstance(name, str) else None
        if entry is None:
            raise RecipeNotFound(f"No recipe named {name!r}.")
        return entry

    def version(self, name: str, version=None) -> dict:
        """One version's entry (default: the latest)."""
        versions = self.recipe(name)["versions"]
        if version is None:
            return versions[-1]
        for entry in versions:
            if entry["version"] == version:
                return entry
        raise RecipeNotFound(f"Recipe {name!r} has no version {version!r}.")

    def notebook_bytes(self, name: str, version=None) -> tuple:
        """``(blob id, bytes)`` of one version of ``name``'s notebook."""
        entry = self.version(name, version)
        with self._lock:
            return entry["blob"], self.repo()[entry["blob"].encode()].data

    # --- changing ---------------------------------------------------------------------------

    def publish(self, name: str, data: bytes, user: str, message: str, title: str = "", description: str = "",
                record=None) -> dict:
        """Commit ``data`` (a normalised notebook) as the next version of ``name``; return its entry.

        ``record(version)``, called under the lock before anything is written, may raise to refuse."""
        from dulwich.objects import Blob

        check_name(name)
        message = " ".join((message or "").split())[:200]
        with self._changing() as index:
            versions = index.setdefault(name, {"versions": []})["versions"]
            number = versions[-1]["version"] + 1 if versions else 1
            entry = {"version": number, "author": str(user), "updated": utc_iso(time.time()),
                     "message": message, "blob": Blob.from_string(data).id.decode(), "title": title,
                     "description": description}
            versions.append(entry)
            if record is not None:
                record(number)
            self._write_file(name + ".ipynb", data)
            self._commit(index, [name + ".ipynb"], user,
                         f"{message or f'Publish {name}'}\n\nRecipe: {name}\nVersion: {number}\n")
        return entry

    def delete(self, name: str, user: str, admin: bool = False, record=None) -> None:
        """Remove ``name`` from the library (its history stays in git). Only its first author or an admin.
        ``record(version)`` as for :meth:`publish`."""
        with self._changing() as index:
            entry = index.get(name)
            if entry is None:
                raise RecipeNotFound(f"No recipe named {name!r}.")
            if not admin and entry["versions"][0]["author"] != str(user):
                raise NotAllowed(f"Only the recipe's first author ({entry['versions'][0]['author']}) or an "
                                 "administrator may delete it.")
            if record is not None:
                record(entry["versions"][-1]["version"])
            del index[name]
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.folder, name + ".ipynb"))
            self._commit(index, [name + ".ipynb"], user, f"Delete {name}\n\nRecipe: {name}\n")

    @contextlib.contextmanager
    def _changing(self):
        """The index as of the latest commit, under the library's lock, for one change."""
        try:
            self.repo()
            with self._lock, self._locked():
                yield json.loads(json.dumps(self.index(self.head())))
        except (RecipeNotFound, NotAllowed, AuditError):
            raise
        except OSError as e:
            if isinstance(e, LibraryUnavailable):
                raise
            raise LibraryUnavailable(e.errno, f"The recipe library {self.folder} cannot be written: "
                                              f"{e.strerror or e}") from e

    def _commit(self, index: dict, paths: list, user: str, message: str) -> None:
        body = json.dumps(index, sort_keys=True, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"
        self._write_file(INDEX_FILE, body)
        repo = self.repo()
        worktree = repo.get_worktree()
        worktree.stage(list(paths) + [INDEX_FILE])
        commit = worktree.commit(message.encode("utf-8"), author=_author(user), committer=_author(user), ref=BRANCH)
        self._index = (commit, index)

    def _write_file(self, relative: str, data: bytes) -> None:
        """Replace a file of the working tree atomically (the file browsers read it meanwhile)."""
        path = os.path.join(self.folder, relative)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def parse_recipe_settings(settings: dict, notebook_folder: str) -> dict:
    """``recipes_folder``, ``recipe_principals``, ``recipe_strip_outputs``, ``recipe_max_bytes`` (issue 36)."""
    from pyramid.exceptions import ConfigurationError

    from pyramid_notebook.core.settingvalues import PREFIX, _bool, parse_principals
    from pyramid_notebook.core.sizes import parse_size

    folder = (settings.get(PREFIX + "recipes_folder") or "").strip()
    folder = os.path.abspath(os.path.expanduser(folder)) if folder else \
        os.path.join(notebook_folder or os.getcwd(), ".recipes")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ConfigurationError(f"{PREFIX}recipes_folder {folder!r} exists but is not a folder")
    raw = str(settings.get(PREFIX + "recipe_max_bytes") or "").strip()
    try:
        max_bytes = parse_size(raw) if raw else 20 << 20
    except ValueError:
        raise ConfigurationError(f"{PREFIX}recipe_max_bytes must be a size such as 20M, got {raw!r}") from None
    if max_bytes < 1024:
        raise ConfigurationError(f"{PREFIX}recipe_max_bytes must be at least 1K, got {raw!r}")
    return {"recipes_folder": folder, "recipe_principals": parse_principals(settings.get(PREFIX + "recipe_principals")),
            "recipe_strip_outputs": _bool(settings, "recipe_strip_outputs", False), "recipe_max_bytes": max_bytes}


def team_folder(settings) -> str:
    """The library's working tree, for the notebooks' ``team-recipes/`` folder (created on first use);
    empty when recipes are off (no recipe or shell principals) or the folder is unusable."""
    if not (settings.recipe_principals or settings.shell_principals):
        return ""
    lib = library(settings.recipes_folder)
    try:
        lib.repo()
    except LibraryUnavailable:
        return ""
    return lib.folder


_LIBRARIES = {}
_LIBRARIES_LOCK = threading.Lock()


def library(folder: str) -> RecipeLibrary:
    """The process's :class:`RecipeLibrary` for ``folder`` (one per folder, so its caches are shared)."""
    folder = os.path.abspath(folder)
    with _LIBRARIES_LOCK:
        if folder not in _LIBRARIES:
            _LIBRARIES[folder] = RecipeLibrary(folder)
        return _LIBRARIES[folder]
