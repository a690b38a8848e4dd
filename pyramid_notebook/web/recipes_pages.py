"""The recipe pages: Jinja2 templates, the notebook rendered read-only, the diff between versions.

Reading a recipe starts no notebook server: nbconvert renders the notebook (outputs included) and
nbdime tells what changed between two versions. What a notebook carries is untrusted, as Jupyter
treats a notebook it did not run itself: JavaScript outputs are dropped, HTML outputs and Markdown
are sanitised (nbconvert's ``SanitizeHTML``, then the whole rendered body through nh3's allow-list),
and every page says ``script-src 'none'`` in its Content-Security-Policy, so a ``<script>`` that
slipped through would still not run. The pages need no script of their own (the search is a GET
form; the buttons are forms with the site's CSRF token).

A render is cached per blob id (a version's notebook never changes): in memory, and on disk in
``<recipes_folder>/.git/pyramid-notebook-rendered/`` for the other processes and the next start.
"""
import collections
import contextlib
import logging
import os
import tempfile
import threading

from pyramid.response import Response

from pyramid_notebook.core.framing import refuse_framing
from pyramid_notebook.core.templates import render

#: Every recipe page: no script at all, styles only inline (ours), images from the page or data: URLs.
CSP = ("default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
#: Bump when the rendering changes: cached pages of older renders are then not used.
RENDER_VERSION = "1"
#: Renders kept in memory per process.
MEMORY_CACHE_SIZE = 16
#: Tags and attributes a rendered notebook keeps (nh3's defaults, plus what nbconvert's markup uses).
EXTRA_ATTRIBUTES = {"*": {"class", "id", "title", "data-mime-type"}, "img": {"src", "alt", "width", "height"},
                    "a": {"href", "title"}, "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"}}

logger = logging.getLogger(__name__)
_cache = collections.OrderedDict()
_cache_lock = threading.Lock()


def page(template: str, status: int = 200, **values) -> Response:
    """A recipe page from ``template`` (extending ``recipes_base.html``, autoescaped), with the pages' CSP,
    never framed."""
    text = render(template, **values)
    response = Response(text, status=status, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-cache"
    return refuse_framing(response)


def _sanitize(body: str) -> str:
    import nh3

    attributes = {tag: set(values) for tag, values in nh3.ALLOWED_ATTRIBUTES.items()}
    for tag, values in EXTRA_ATTRIBUTES.items():
        attributes.setdefault(tag, set()).update(values)
    return nh3.clean(body, tags=set(nh3.ALLOWED_TAGS), attributes=attributes,
                     url_schemes={"http", "https", "mailto", "data"}, link_rel="noopener noreferrer nofollow")


def render_notebook(data: bytes) -> str:
    """The notebook's HTML body, read-only, outputs included, sanitised (see the module)."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors.sanitize import SanitizeHTML

    notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
    # Markdown is sanitised by the final pass, which keeps headings (nbconvert's own Markdown
    # sanitiser escapes them); outputs by SanitizeHTML first, which drops JavaScript outputs.
    exporter = HTMLExporter(template_name="basic", sanitize_html=False, exclude_input_prompt=False)
    exporter.register_preprocessor(SanitizeHTML(strip=True), enabled=True)
    body, _ = exporter.from_notebook_node(notebook)
    return _sanitize(body)


def cached_notebook_html(folder: str, blob_id: str, data_of) -> str:
    """:func:`render_notebook` of a blob, from the memory or disk cache when there; ``data_of()`` gives
    its bytes when it must be rendered."""
    key = f"{blob_id}-{RENDER_VERSION}"
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    cache_folder = os.path.join(folder, ".git", "pyramid-notebook-rendered")
    path = os.path.join(cache_folder, key + ".html")
    try:
        with open(path, encoding="utf-8") as f:
            body = f.read()
    except OSError:
        try:
            body = render_notebook(data_of())
        except Exception as e:  # noqa: BLE001 - a notebook nbconvert cannot render: say so, keep the page
            logger.exception("Recipe blob %s could not be rendered", blob_id)
            return render("recipe_unrenderable.html", error=type(e).__name__)
        with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
            os.makedirs(cache_folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cache_folder, prefix=".tmp-")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
            os.replace(tmp, path)
    with _cache_lock:
        _cache[key] = body
        while len(_cache) > MEMORY_CACHE_SIZE:
            _cache.popitem(last=False)
    return body


def diff_text(old: bytes, new: bytes) -> str:
    """What changed from ``old`` to ``new`` (two notebooks), as nbdime prints it, without colours."""
    import io
    import re

    import nbformat
    from nbdime import diff_notebooks
    from nbdime.prettyprint import PrettyPrintConfig, pretty_print_diff

    a = nbformat.reads(old.decode("utf-8"), as_version=4)
    b = nbformat.reads(new.decode("utf-8"), as_version=4)
    diff = diff_notebooks(a, b)
    if not diff:
        return ""
    out = io.StringIO()
    pretty_print_diff(a, diff, "", PrettyPrintConfig(out=out, include={"sources": True, "outputs": True,
                                                                       "attachments": True, "metadata": False,
                                                                       "identifier": False, "details": False}))
    return re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
