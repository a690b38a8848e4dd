"""Send a notebook's static files (JavaScript, CSS, fonts) from disk instead of through Jupyter.

The running notebook publishes its static routes in its context (see
:mod:`pyramid_notebook.server.static_files`): for each URL prefix, the folders
Jupyter searches in order and its cache rules. A GET for such a URL is answered
here with :class:`pyramid.response.FileResponse`, which uses the server's
``wsgi.file_wrapper`` (``sendfile`` under uWSGI), with the headers Jupyter would
send. Whenever the file is not found exactly as Jupyter would find it — unusual
names, links leading out of the folder, compressed files — the request goes to
Jupyter as before, so Jupyter stays the judge of what exists. Text, JavaScript, JSON and the
like go out brotli- or gzip-compressed when the browser accepts it (:mod:`pyramid_notebook.relays.compress`).
"""
import functools
import mimetypes
import os
import time
from email.utils import formatdate
from urllib.parse import quote, urlsplit

from pyramid.response import FileResponse

from pyramid_notebook.core.context import FILES_HEADERS, STATIC_FILES_KEY as CONTEXT_KEY
from pyramid_notebook.relays.compress import negotiate
#: What tornado's StaticFileHandler gives versioned (``?v=``) files.
VERSIONED_MAX_AGE = 86400 * 365 * 10
IMMUTABLE = "public, max-age=31536000, immutable"


#: The notebook server's own table: jupyter_server's ServerApp overrides two types at start-up
#: (``init_mime_overrides``); the site's global table is left alone.
_types = mimetypes.MimeTypes()
_types.add_type("text/css", ".css")
_types.add_type("application/javascript", ".js")


@functools.lru_cache(maxsize=256)
def _real_root(root: str) -> str:
    return os.path.realpath(root)


def _relative_parts(path: str, prefix: str):
    """The path below ``prefix`` as a list of plain names, or None if it has anything else."""
    if not path.startswith(prefix):
        return None
    parts = path[len(prefix):].split("/")
    for part in parts:
        if not part or part.startswith(".") or "\\" in part or "\x00" in part:
            return None
    return parts


def find_static_file(context: dict, path: str):
    """``(file path, route)`` for URL ``path`` as Jupyter would find it, or None."""
    published = context.get(CONTEXT_KEY)
    if not isinstance(published, dict):
        return None
    # The longest matching prefix: /notebook/static/notebook/ before /notebook/static/.
    route = max((r for r in published.get("routes", ()) if path.startswith(r.get("prefix", "\0"))),
                key=lambda r: len(r["prefix"]), default=None)
    if route is None:
        return None
    parts = _relative_parts(path, route["prefix"])
    if parts is None:
        return None
    for root in route.get("roots", ()):
        candidate = os.path.join(root, *parts)
        if os.path.isfile(candidate):
            real_root = _real_root(root)
            if not os.path.realpath(candidate).startswith(real_root.rstrip(os.sep) + os.sep):
                return None  # a link out of the folder: Jupyter decides
            return candidate, route
        # Jupyter takes the first folder that has the file; go on to the next one.
    return None


def _cache_headers(request, route, immutable_prefixes) -> dict:
    """The Cache-Control (and Expires) Jupyter's FileFindHandler sends for this request."""
    path = request.path
    versioned = "v" in request.GET
    headers = {}
    if versioned:
        headers["Expires"] = formatdate(time.time() + VERSIONED_MAX_AGE, usegmt=True)
    if any(path.startswith(p) for p in immutable_prefixes):
        headers["Cache-Control"] = IMMUTABLE
    elif not versioned or any(path.startswith(p) for p in route.get("no_cache_paths", ())):
        headers["Cache-Control"] = "no-cache"
    else:
        headers["Cache-Control"] = f"max-age={VERSIONED_MAX_AGE}"
    return headers


#: Conditional request headers WebOb parses when it answers a FileResponse, and their environ keys.
_CONDITIONS = {"range": "HTTP_RANGE", "if_range": "HTTP_IF_RANGE", "if_modified_since": "HTTP_IF_MODIFIED_SINCE",
               "if_unmodified_since": "HTTP_IF_UNMODIFIED_SINCE", "if_match": "HTTP_IF_MATCH",
               "if_none_match": "HTTP_IF_NONE_MATCH"}


def _drop_unparsable_conditions(request) -> None:
    """Ignore conditional headers WebOb cannot parse (``Range: bytes=-``, a year 99999), as HTTP says
    to (RFC 9110, 13.1 and 14.2), instead of letting WebOb fail with a 500 while answering."""
    for attribute, key in _CONDITIONS.items():
        if key in request.environ:
            try:
                getattr(request, attribute)
            except (ValueError, OverflowError, TypeError):
                del request.environ[key]


#: Public name, for other views that answer with a FileResponse (the package's assets).
drop_unparsable_conditions = _drop_unparsable_conditions


def _files_content_type(file_path: str):
    """What Jupyter's files/ handler sends as Content-Type, or None for an encoded (.gz) file."""
    name = os.path.basename(file_path)
    if name.endswith(".ipynb"):
        return "application/x-ipynb+json"
    content_type, encoding = _types.guess_type(file_path)
    if encoding:
        return None
    if content_type == "text/plain":
        return "text/plain; charset=UTF-8"
    return content_type or "application/octet-stream"


def _attachment(request, file_path: str):
    """Jupyter's Content-Disposition for a notebook file or a ``?download=1`` link, else None."""
    download = request.GET.getall("download")
    if os.path.splitext(file_path)[1] == ".ipynb" or (download and download[-1].strip()):
        return "attachment; filename*=utf-8''" + quote(os.path.basename(file_path).encode("utf-8"))
    return None


def _referred_by_site(request, context: dict) -> bool:
    """True when Jupyter's own cross-site inclusion check for files/ surely passes: the Referer
    is a page of the site's allowed origin and no other Origin is given. Jupyter judges the rest
    (an ``_xsrf`` token, a missing Referer) itself."""
    allowed = context.get("allow_origin")
    referer = urlsplit(request.headers.get("Referer", ""))
    if not allowed or not referer.scheme or f"{referer.scheme}://{referer.netloc}" != allowed:
        return False
    return request.headers.get("Origin") in (None, allowed)


def static_file_plan(request, context: dict):
    """``(file path, content type, headers)`` of a file to send from disk, or None.

    None means "let Jupyter answer": not a GET/HEAD, not under a published route, not found
    exactly as Jupyter would find it, or a compressed file Jupyter sends as it is.
    """
    if request.method not in ("GET", "HEAD"):
        return None
    # The decoded path, as tornado matches files (``request.path`` is %-quoted again).
    found = find_static_file(context, request.script_name + request.path_info)
    if found is None:
        return None
    file_path, route = found
    headers = _cache_headers(request, route, context[CONTEXT_KEY].get("immutable", ()))
    if route.get("kind") == "files":  # the user's own files, with the files/ handler's rules
        if not _referred_by_site(request, context):
            return None
        content_type = _files_content_type(file_path)
        published = route.get("headers")
        if content_type is None or not isinstance(published, dict):
            return None
        headers.update({k: v for k, v in published.items() if k in FILES_HEADERS and isinstance(v, str)})
        attachment = _attachment(request, file_path)
        if attachment:
            headers["Content-Disposition"] = attachment
        return file_path, content_type, headers
    content_type, encoding = _types.guess_type(file_path, strict=False)
    if encoding:
        return None  # Jupyter sends .gz and friends as they are; leave those to it
    headers["X-Content-Type-Options"] = "nosniff"
    content_type = content_type or "application/octet-stream"
    # Its brotli or gzip copy from the site's cache when the browser accepts one (relays/compress.py).
    file_path, headers = negotiate(request, file_path, content_type, headers)
    return file_path, content_type, headers


def static_file_response(request, context: dict):
    """A :class:`~pyramid.response.FileResponse` for a static notebook file, or None to proxy."""
    plan = static_file_plan(request, context)
    if plan is None:
        return None
    file_path, content_type, headers = plan
    _drop_unparsable_conditions(request)
    response = FileResponse(file_path, request=request, content_type=content_type)
    # Exactly Jupyter's Content-Type: WebOb would add a charset to text/html and +json types.
    response.headers["Content-Type"] = content_type
    response.headers.update(headers)
    return response
