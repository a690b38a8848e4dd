"""What Notebook 7's page loads first, read from its files before any notebook server runs.

``notebook/templates/notebooks.html`` names ``main.<hash>.js?v=<hash>``, and that file's webpack
runtime starts by loading a fixed list of chunks (``Promise.all([t.e(1407), ...])``) whose file
names its chunk table gives (``notebook_core.<hash>.js`` and a few numbered ones). They are read once
per Jupyter version (the template's and the static folder's modification times) from the notebook
package the notebook servers run with (``pyramid_notebook.python``'s, asked once when it is not the
site's own interpreter). The rest of what the page loads is learned from the pages
(:mod:`pyramid_notebook.web.pagefiles`); :mod:`pyramid_notebook.web.preload` names both.
"""
import dataclasses
import functools
import importlib.util
import logging
import os
import re
import subprocess
import sys

logger = logging.getLogger(__name__)

#: Where Notebook 7 serves its bundles, below the notebook's base URL (its ``fullStaticUrl``).
STATIC_PATH = "static/notebook/"
#: The notebook page's template, and what its tags load from the static folder.
TEMPLATE = os.path.join("templates", "notebooks.html")
_TEMPLATE_REF = re.compile(r'(?:src|href)="\{\{\s*page_config\.fullStaticUrl\s*\}\}/([\w.-]+)(\?[\w=&.-]*)?"')
#: The first chunks main.js's runtime loads, and its chunk file name table (rspack/webpack 5).
_ENTRY_CHUNKS = re.compile(r"Promise\.all\(\[((?:\w+\.e\(\d+\),?)+)\]\)\.then\(\w+\.bind\(")
_CHUNK_TABLE = re.compile(r'\.u=\w+=>""\+\(((?:\d+===\w+\?"[\w-]+":)*)\w+\)\+"\."\+\((\{[^{}]*\})\)\[\w+\]'
                          r'\+"\.js(?:\?v="\+\((\{[^{}]*\})\)\[\w+\])?')
#: ``as`` of a preload by file type; fonts are fetched in CORS mode, so their preload is ``crossorigin``.
KINDS = {".js": "script", ".css": "style", ".woff2": "font", ".woff": "font", ".ttf": "font"}


@dataclasses.dataclass(frozen=True)
class Bundle:
    """A file the notebook page loads: its name in the static folder, the page's query, its ``as``."""

    name: str
    query: str
    kind: str
    path: str

    @property
    def crossorigin(self) -> bool:
        """Fonts are fetched in CORS mode; scripts and styles of this page without (no attribute)."""
        return self.kind == "font"


def package_folder_of(python: str):
    """The ``notebook`` package folder of the interpreter that runs the notebook servers, or None."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        spec = importlib.util.find_spec("notebook")  # finds, does not import Jupyter
        return os.path.dirname(spec.origin) if spec and spec.origin else None
    return _asked_package_folder(os.path.realpath(python))


@functools.lru_cache(maxsize=8)
def _asked_package_folder(python: str):
    code = "import importlib.util, os; s = importlib.util.find_spec('notebook'); print(os.path.dirname(s.origin))"
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        logger.warning("No preload links: %s does not say where its notebook package is (%s)", python, e)
        return None
    return out.strip() or None


def bundles_in(package_folder) -> tuple:
    """The :class:`Bundle` files the notebook page of the Notebook 7 in ``package_folder`` loads first."""
    try:
        key = (os.stat(os.path.join(package_folder, TEMPLATE)).st_mtime_ns,
               os.stat(os.path.join(package_folder, "static")).st_mtime_ns)
    except (OSError, TypeError):
        return ()
    return _read_bundles(package_folder, key)


@functools.lru_cache(maxsize=8)
def _read_bundles(package_folder: str, key) -> tuple:
    """Parse the template and main.js once per version (``key``: their folders' modification times)."""
    static = os.path.join(package_folder, "static")
    with open(os.path.join(package_folder, TEMPLATE), encoding="utf-8") as f:
        refs = _TEMPLATE_REF.findall(f.read())
    names = [(name, query or "") for name, query in refs]
    for name, _ in list(names):
        if name.startswith("main.") and name.endswith(".js"):
            names += _entry_chunk_files(os.path.join(static, name))
    found = []
    for name, query in dict.fromkeys(names):
        path = os.path.join(static, name)
        kind = KINDS.get(os.path.splitext(name)[1])
        if kind and os.path.isfile(path):  # a file the page would miss is no reason to fetch anything
            found.append(Bundle(name, query, kind, path))
    if not found:
        logger.warning("No preload links: no bundle found in %s (not Notebook 7's layout?)", package_folder)
    return tuple(found)


def _entry_chunk_files(main_js: str) -> list:
    """``[(file, query)]``: the chunks main.js loads before anything else, by the URLs it asks for
    (``?v=<hash>`` in Notebook 7.5+); none if its runtime is not as expected."""
    try:
        with open(main_js, encoding="utf-8") as f:
            source = f.read()
    except OSError:
        return []
    entry, table = _ENTRY_CHUNKS.search(source), _CHUNK_TABLE.search(source)
    if not entry or not table:
        return []
    named = dict(re.findall(r'(\d+)===\w+\?"([\w-]+)":', table.group(1)))
    hashes = dict(re.findall(r'(\d+):"([\w-]+)"', table.group(2)))
    versions = dict(re.findall(r'(\d+):"([\w-]+)"', table.group(3) or ""))
    files = []
    for chunk in re.findall(r"\((\d+)\)", entry.group(1)):
        if chunk in hashes:
            query = f"?v={versions[chunk]}" if table.group(3) is not None else ""
            if table.group(3) is None or chunk in versions:
                files.append((f"{named.get(chunk, chunk)}.{hashes[chunk]}.js", query))
    return files


def notebook_bundles(registry) -> tuple:
    """The site's :class:`Bundle` files: none for the hub backend or an unconfigured site."""
    folder = site_package_folder(registry)
    return bundles_in(folder) if folder else ()


def site_package_folder(registry):
    """The ``notebook`` package folder the site's notebook servers run with; None on the hub backend."""
    settings = getattr(registry, "pyramid_notebook_settings", None)
    if settings is None or settings.backend == "jupyterhub":
        return None
    return package_folder_of(settings.python)


def version_of(registry):
    """The Jupyter version the learned page files belong to (the bundles' key), or None."""
    folder = site_package_folder(registry)
    bundles = bundles_in(folder) if folder else ()
    if not bundles:
        return None
    return folder + "|" + "|".join(f"{b.name}{b.query}" for b in bundles)
