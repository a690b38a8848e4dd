"""Read and write a user's notebook files from the site, through their running notebook.

The site keeps analyses in its own database and puts them back later::

    from pyramid_notebook.web import contents

    nb = contents.read_notebook(request, username, "analysis.ipynb")      # dict (nbformat 4)
    contents.write_notebook(request, username, "analysis-7.ipynb", nb)    # restore it
    contents.create_notebook(request, username, "new.ipynb")              # an empty notebook

Everything goes through the notebook server's own contents API (so Jupyter's
checkpoints, hooks and file locking apply), with the per-start secret, never from
the browser. The contents API answers only the last *saved* content: ask the
frame's save bridge to save first (see ``notebook-bridge.js``).

Paths are relative to the user's folder; absolute paths, ``..``, hidden files and
the daemon's state files raise :class:`BadPath` before anything is sent. A user
whose notebook does not run raises :class:`NotebookNotRunning`.
"""
import json
import secrets
from urllib.parse import quote

import urllib3

from pyramid_notebook.core.context import upstream_host
from pyramid_notebook.relays.http import drop_pool, pool_for

#: Files the notebook daemon keeps beside the user's notebooks: never read or written here.
STATE_FILES = frozenset({"notebook.pid", "context.json", "notebook.stdout.log", "notebook.stderr.log", "launch.json"})
TIMEOUT = urllib3.Timeout(connect=5.0, read=60.0)
MAX_PATH_LENGTH = 1024


class ContentsError(Exception):
    """A notebook file could not be read or written."""


class BadPath(ContentsError, ValueError):
    """A path that is not a plain file path inside the user's folder."""


class NotebookNotRunning(ContentsError):
    """The user's notebook server is not running (launch it first)."""


class ContentsNotFound(ContentsError):
    """No such file in the user's folder."""


def validate_path(path) -> str:
    """Return ``path`` as a clean relative path, or raise :class:`BadPath`.

    Refused: empty or absolute paths, backslashes, control characters, ``.``/``..``
    or empty segments, hidden names (``.jupyter`` holds the notebook's secret
    configuration) and the daemon's state files.
    """
    if not isinstance(path, str) or not path.strip():
        raise BadPath("The notebook path is empty.")
    if len(path) > MAX_PATH_LENGTH:
        raise BadPath(f"The notebook path is longer than {MAX_PATH_LENGTH} characters.")
    if path.startswith("/") or "\\" in path or (len(path) > 1 and path[1] == ":"):
        raise BadPath(f"The notebook path must be relative to the user's folder, got {path!r}.")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise BadPath("The notebook path contains control characters.")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise BadPath(f"The notebook path may not contain empty, '.' or '..' segments, got {path!r}.")
        if part.startswith("."):
            raise BadPath(f"Hidden files and folders are not reachable, got {path!r}.")
    if parts[0] in STATE_FILES:
        raise BadPath(f"{parts[0]!r} belongs to the notebook daemon, not to the user.")
    return path


class NotebookContents:
    """The contents API of one running notebook server, spoken with its secret.

    Built from the notebook's context (``http_port``, ``token``, ``notebook_path``
    and, for a remote backend, ``http_host``); :func:`for_user` makes one for a
    user of the site.
    """

    def __init__(self, context: dict):
        if not context or not context.get("http_port") or not context.get("token"):
            raise NotebookNotRunning("The notebook is not running: launch it first.")
        self.host = upstream_host(context)
        self.port = int(context["http_port"])
        self.token = context["token"]
        self.base_path = "/" + (context.get("notebook_path") or "/notebook/").strip("/") + "/"

    def _url(self, path: str) -> str:
        return f"{self.base_path}api/contents/{quote(path)}"

    def request(self, method: str, path: str, body=None, query: str = "") -> dict:
        """Call the contents API for ``path``; return the decoded JSON answer (``{}`` for 204)."""
        # Jupyter keeps its XSRF check on for the proxy's secret (server/identity.py), and
        # tornado's check is a double-submit one: the X-XSRFToken header must match the
        # _xsrf cookie. A browser page on another site can set neither for the notebook;
        # a server-side client sends a fresh random pair on each request.
        xsrf = secrets.token_hex(16)
        headers = {"Authorization": f"token {self.token}", "Accept": "application/json",
                   "Cookie": f"_xsrf={xsrf}", "X-XSRFToken": xsrf}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        pool = pool_for(self.host, self.port)
        try:
            response = pool.urlopen(method, self._url(path) + query, body=data, headers=headers, redirect=False,
                                    retries=False, timeout=TIMEOUT, assert_same_host=False)
        except urllib3.exceptions.HTTPError as e:
            drop_pool(self.host, self.port)  # its idle sockets are as dead as this one
            raise NotebookNotRunning(f"The notebook does not answer: {e}") from e
        if response.status == 404:
            raise ContentsNotFound(f"No file {path!r} in the user's folder.")
        if response.status >= 400:
            raise ContentsError(f"The notebook refused {method} {path!r}: {response.status} {_reason(response)}")
        return json.loads(response.data) if response.data else {}

    def get(self, path: str, content: bool = True) -> dict:
        """The contents API model of ``path`` (with its content unless ``content=False``)."""
        return self.request("GET", validate_path(path), query="" if content else "?content=0")

    def read_notebook(self, path: str) -> dict:
        """The notebook at ``path`` as an nbformat 4 dict, as last saved."""
        model = self.get(path)
        if model.get("type") != "notebook":
            raise ContentsError(f"{path!r} is not a notebook.")
        return model["content"]

    def write_notebook(self, path: str, notebook: dict) -> dict:
        """Write ``notebook`` (nbformat 4 dict) to ``path``, replacing it; return the model."""
        if not path.endswith(".ipynb"):
            raise BadPath(f"A notebook's name ends in .ipynb, got {path!r}.")
        if not isinstance(notebook, dict) or "cells" not in notebook:
            raise ContentsError("That is not a notebook (an nbformat 4 dict with 'cells').")
        return self.request("PUT", validate_path(path), {"type": "notebook", "format": "json", "content": notebook})

    def create_notebook(self, path: str, notebook: dict = None) -> dict:
        """Create a notebook at ``path`` (empty, or ``notebook``); an existing file raises."""
        validate_path(path)
        try:
            self.get(path, content=False)
        except ContentsNotFound:
            return self.write_notebook(path, notebook or empty_notebook())
        raise ContentsError(f"{path!r} exists already.")

    def list_files(self, folder: str = "") -> list:
        """Models (without content) of the files in ``folder`` (default: the user's folder)."""
        model = self.request("GET", validate_path(folder) if folder else "", query="?content=1")
        return [m for m in model.get("content") or [] if not m["name"].startswith(".")
                and not (not folder and m["name"] in STATE_FILES)]

    def delete(self, path: str) -> None:
        """Delete the file at ``path``."""
        self.request("DELETE", validate_path(path))


def _reason(response) -> str:
    try:
        return json.loads(response.data).get("message") or response.reason
    except (ValueError, AttributeError):
        return response.reason or ""


def empty_notebook() -> dict:
    """An empty Python 3 notebook (nbformat 4)."""
    return {"cells": [], "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                     "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def for_user(request, username) -> NotebookContents:
    """:class:`NotebookContents` of ``username``'s running notebook; raises :class:`NotebookNotRunning`."""
    from pyramid_notebook.web.registry import get_notebook_manager

    if not username:
        raise NotebookNotRunning("No user: a notebook belongs to a logged-in user.")
    return NotebookContents(get_notebook_manager(request).get_notebook_status(username))


def read_notebook(request, username, path) -> dict:
    """``username``'s notebook at ``path`` as an nbformat 4 dict (as last saved)."""
    return for_user(request, username).read_notebook(path)


def write_notebook(request, username, path, notebook) -> dict:
    """Write ``notebook`` (nbformat 4 dict) to ``path`` in ``username``'s folder."""
    return for_user(request, username).write_notebook(path, notebook)


def create_notebook(request, username, path, notebook=None) -> dict:
    """Create a new notebook at ``path`` in ``username``'s folder; an existing file raises."""
    return for_user(request, username).create_notebook(path, notebook)


def list_files(request, username, folder="") -> list:
    """Models of the files in ``username``'s ``folder`` (hidden and state files left out)."""
    return for_user(request, username).list_files(folder)


def delete_file(request, username, path) -> None:
    """Delete ``path`` in ``username``'s folder."""
    for_user(request, username).delete(path)
