"""Every file a notebook page loads, learned from the pages themselves, for the next cold visit.

A cold notebook page fetches 86 scripts (Notebook 7.6), 56 of them before its first API call, in
waves: the shared libraries' chunks ``notebook_core`` asks for once it runs, the lab extensions,
then the chunks their plugins load. Their names are in no one file a site could read ahead (the
module federation's runtime and the plugins' code decide), so the progress page could preload only
the first four (:mod:`pyramid_notebook.web.preload`). The page itself knows: the shipped lab
extension's ``page-files`` plugin (``labextension/src/pagefiles.js``) posts, once its page has
settled, the static files the page loaded (Resource Timing lists each, whether from the network or
the browser's cache, never a file only another page preloaded) to
``<notebook_path>api/pyramid-notebook/page-files``. The site's proxy view answers that itself; it
never reaches Jupyter.

What is listed: a file in more than half of the last :data:`REPORTS` notebook pages' reports, so a
file one user's own action loads (a CSV viewer, a debugger) is left out once other pages did
without it. Per Jupyter version (the preload's key: a new Jupyter starts again), kept in the
compression cache's folder when the site has one: the web server's processes share it, and a
restarted site preloads everything from its first click. Without that folder, each process keeps
its own in memory. Each web node learns from the pages it serves (a static file list is no team data).

What may be listed (:func:`checked_report`): a file the reporting user's running server sends
from its published static routes (never the ``files`` route: the user's own files), versioned
(``?v=``) or under an immutable prefix (hashed names: the browser keeps them), inside the site's or
the notebook interpreter's installation and outside the users' notebook folder, with a type a
preload can name; at most :data:`MAX_FILES` per report. A user with the shell permission can make
others' browsers fetch at most these files; such a user runs code as the site anyway.
"""
import collections
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import sys
import threading
from urllib.parse import parse_qs, urlsplit

from pyramid_notebook.core.context import STATIC_FILES_KEY
from pyramid_notebook.relays.static import find_static_file
from pyramid_notebook.web.bundles import KINDS

logger = logging.getLogger(__name__)

#: Below the notebook's base URL: where the page posts its report (the site answers it).
REPORT_PATH = "api/pyramid-notebook/page-files"
#: How many reports decide (the last ones, per Jupyter version).
REPORTS = 9
#: The pages learned from (below the base URL): a launch always opens a notebook page.
NOTEBOOK_PAGES = "notebooks/"
#: Files per report, and bytes per report body, at most.
MAX_FILES = 400
MAX_BODY = 128 * 1024
#: The folders a page's files come from, below the notebook's base URL.
PAGE_FOLDERS = ("static/", "lab/extensions/")


class BadReport(ValueError):
    """A report that is not a list of the page's static files."""


class TooLarge(BadReport):
    """A report past :data:`MAX_BODY` bytes or :data:`MAX_FILES` files."""


@dataclasses.dataclass(frozen=True)
class PageFile:
    """A file a notebook page loads: its URL below the notebook's base URL (with the page's query),
    the file on disk, its preload ``as`` and whether its prefix is immutable."""

    url: str
    path: str
    kind: str
    immutable: bool

    @property
    def crossorigin(self) -> bool:
        """Fonts are fetched in CORS mode."""
        return self.kind == "font"


def _inside(path: str, folders) -> bool:
    return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


def installation_folders(package_folder) -> tuple:
    """Where a page's files may come from: this interpreter's prefix, the notebook interpreter's
    (``<prefix>/lib/pythonX.Y/site-packages/notebook``), and this package (its lab extension)."""
    folders = {os.path.realpath(sys.prefix), os.path.dirname(os.path.realpath(__file__ + "/../.."))}
    if package_folder:
        folders.add(os.path.realpath(os.path.join(package_folder, "..", "..", "..", "..")))
    return tuple(sorted(folders))


def checked_report(body: bytes, context: dict, allowed, forbidden) -> dict:
    """``{url: PageFile}`` from a report's body, or :class:`BadReport` saying why not.

    ``context`` is the reporting user's running server's: its static routes decide which file a URL
    is, as they do when the site sends it. ``allowed``: the folders files may be in; ``forbidden``:
    those they may not (the users' notebook folder)."""
    if len(body) > MAX_BODY:
        raise TooLarge(f"a report is at most {MAX_BODY} bytes")
    try:
        report = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadReport("the report is not JSON") from None
    files = report.get("files") if isinstance(report, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise BadReport('the report is not {"page": "notebooks/...", "files": [URL, ...]}')
    if not str(report.get("page") or "").startswith(NOTEBOOK_PAGES):
        raise BadReport("only notebook pages (notebooks/...) are learned: they are what a launch opens")
    if len(files) > MAX_FILES:
        raise TooLarge(f"a report names at most {MAX_FILES} files")
    base = context.get("notebook_path") or "/"
    immutable = tuple(context.get(STATIC_FILES_KEY, {}).get("immutable", ()))
    found = {}
    for url in dict.fromkeys(files):
        page_file = _page_file(url, base, context, immutable, allowed, forbidden)
        if page_file is not None:
            found[page_file.url] = page_file
    return found


def _page_file(url, base, context, immutable, allowed, forbidden):
    """The :class:`PageFile` of ``url`` (relative to the base URL), or None if it may not be listed."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or parts.fragment or not parts.path.startswith(PAGE_FOLDERS):
        return None
    kind = KINDS.get(os.path.splitext(parts.path)[1])
    found = find_static_file(context, base + parts.path) if kind else None
    if found is None or found[1].get("kind") == "files":
        return None
    path = os.path.realpath(found[0])
    if not _inside(path, allowed) or _inside(path, forbidden):
        return None
    full = base + parts.path
    is_immutable = any(full.startswith(p) for p in immutable)
    if not is_immutable and "v" not in parse_qs(parts.query):
        return None  # the browser would ask again: nothing gained by fetching it ahead
    return PageFile(url, path, kind, is_immutable)


class PageFiles:
    """The last :data:`REPORTS` reports per Jupyter version, in memory and in ``folder`` (if any).

    Every process of a web server (gunicorn's or uWSGI's workers) shares the file: a report is added
    to what the file holds (under a lock), and a process reads the file again when it has changed.
    """

    def __init__(self, folder=None):
        self.folder = folder
        self._lock = threading.Lock()
        self._reports = {}  # version -> deque of {url: PageFile}
        self._stamps = {}  # version -> the file's stamp when last read or written
        self._listed = {}  # version -> the list, until the next report (every preload request asks)

    def _file(self, version: str):
        if not self.folder:
            return None
        return os.path.join(self.folder, "page-files-" + hashlib.sha256(version.encode()).hexdigest()[:16] + ".json")

    @staticmethod
    def _stamp(path):
        try:
            st = os.stat(path)
        except (OSError, TypeError):
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _load(self, version: str):
        """The reports of ``version``, read again from the file if another process changed it."""
        path = self._file(version)
        stamp = self._stamp(path)
        reports = self._reports.get(version)
        if reports is not None and (stamp is None or stamp == self._stamps.get(version)):
            return reports
        if reports is None or stamp is not None:  # (a file gone: what this process holds stays)
            reports = self._reports[version] = collections.deque(maxlen=REPORTS)
        self._stamps[version] = stamp
        self._listed.pop(version, None)
        if stamp is not None:
            try:
                with open(path, encoding="utf-8") as f:
                    for report in json.load(f)["reports"][-REPORTS:]:
                        reports.append({r["url"]: PageFile(**r) for r in report})
            except FileNotFoundError:
                pass
            except (OSError, ValueError, KeyError, TypeError) as e:
                logger.warning("Ignoring the page files learned in %s: %s", path, e)
        return reports

    def add(self, version: str, report: dict) -> None:
        """Keep one page's ``{url: PageFile}`` (the oldest report goes when there are :data:`REPORTS`)."""
        with self._lock, self._file_lock(version):
            reports = self._load(version)
            reports.append(report)
            self._listed.pop(version, None)
            self._save(version, reports)
            self._stamps[version] = self._stamp(self._file(version))

    @contextlib.contextmanager
    def _file_lock(self, version):
        """The other processes' reports are not lost between reading the file and writing it."""
        path = self._file(version)
        try:
            os.makedirs(self.folder, exist_ok=True)
            fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except (OSError, TypeError):  # no folder, or an unwritable one: this process's memory only
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _save(self, version, reports) -> None:
        path = self._file(version)
        if path is None:
            return
        data = {"version": version, "reports": [[dataclasses.asdict(f) for f in r.values()] for r in reports]}
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(tmp, path)
        except OSError as e:  # the list still works in memory
            logger.warning("Could not keep the learned page files in %s: %s", path, e)

    def listed(self, version: str) -> list:
        """The :class:`PageFile` files in more than half of the reports, in the order first reported,
        those still on disk."""
        with self._lock:
            reports = list(self._load(version))
            listed = self._listed.get(version)
            if listed is None:
                counts = collections.Counter(url for report in reports for url in report)
                latest = {}
                for report in reports:
                    latest.update(report)
                listed = self._listed[version] = [f for url, f in latest.items() if counts[url] * 2 > len(reports)]
        return [f for f in listed if os.path.isfile(f.path)]


def store_for(registry, folder=None) -> PageFiles:
    """The site's :class:`PageFiles` (made once per registry, in ``folder`` if given)."""
    store = getattr(registry, "pyramid_notebook_page_files", None)
    if store is None:
        store = registry.pyramid_notebook_page_files = PageFiles(folder)
    return store
