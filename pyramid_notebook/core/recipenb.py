"""What the recipe library needs to know of a notebook: is it one, its title and description.

Shared by the site (publishing, listing) and the notebook server (nothing yet), so it lives in
``core``. Only :mod:`nbformat` is used here: rendering (nbconvert) and diffs (nbdime) are the
site's (:mod:`pyramid_notebook.web.recipes_pages`).
"""
import json
import re
import warnings

#: A recipe's name: lowercase letters, digits and dashes, at most 64 characters, not starting with a dash.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
#: Longest description kept for the listing.
DESCRIPTION_MAX = 300
#: The metadata key a copy opened from the library carries (``{"name", "version"}``).
COPY_METADATA_KEY = "pyramid_notebook_recipe"

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_TAGS = re.compile(r"<[^>]*>")


class BadNotebook(ValueError):
    """Bad input for the library: a bad name, not a notebook, too large. The message names it."""


def check_name(name) -> str:
    """``name`` if it is a usable recipe name, else :class:`BadNotebook`."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise BadNotebook(f"A recipe's name is 1 to 64 lowercase letters, digits and dashes (not starting with a "
                          f"dash), got {name!r}.")
    return name


def name_from_path(path: str) -> str:
    """The default recipe name of a notebook path: its file name, lowercased, other characters as dashes."""
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
    name = re.sub(r"[^a-z0-9]+", "-", stem).strip("-")[:64].strip("-")
    return name or "recipe"


def normalize(data: bytes, max_bytes: int, strip_outputs: bool = False) -> tuple:
    """Check ``data`` is a notebook and return ``(bytes, notebook)``: nbformat 4, validated, written
    the canonical way (so equal notebooks are equal blobs). Raises :class:`BadNotebook`."""
    import nbformat

    if len(data) > max_bytes:
        raise BadNotebook(f"The notebook is {len(data)} bytes, over the library's limit of {max_bytes} bytes "
                          "(pyramid_notebook.recipe_max_bytes).")
    try:
        text = data.decode("utf-8")
        json.loads(text)
    except (UnicodeDecodeError, ValueError) as e:
        raise BadNotebook(f"The file is not valid notebook JSON: {e}") from None
    try:
        with warnings.catch_warnings():  # a missing cell id is filled in by writes() below
            warnings.simplefilter("ignore")
            notebook = nbformat.reads(text, as_version=4)
            nbformat.validate(notebook)
    except Exception as e:  # noqa: BLE001 - nbformat raises many kinds for a malformed notebook
        raise BadNotebook(f"The file is not a valid Jupyter notebook: {str(e).splitlines()[0][:300]}") from None
    if strip_outputs:
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
    notebook.metadata.pop(COPY_METADATA_KEY, None)
    out = nbformat.writes(notebook)
    return (out if out.endswith("\n") else out + "\n").encode("utf-8"), notebook


def title_and_description(notebook) -> tuple:
    """The first Markdown heading, and the first paragraph of Markdown that is not a heading."""
    title = description = ""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        for block in re.split(r"\n\s*\n", source):
            lines = [line for line in block.strip().splitlines() if line.strip()]
            if not lines:
                continue
            heading = _HEADING.match(lines[0])
            if heading and not title:
                title = heading.group(1)
                lines = lines[1:]
            elif heading:
                continue
            if lines and not description and not _HEADING.match(lines[0]):
                description = " ".join(_TAGS.sub("", line).strip() for line in lines)
        if title and description:
            break
    if len(description) > DESCRIPTION_MAX:
        description = description[:DESCRIPTION_MAX - 1].rstrip() + "…"
    return title, description


def cell_sources(notebook) -> list:
    """``(cell_type, source)`` of every cell: what a user's edit changes (running a cell does not)."""
    found = []
    for cell in notebook.get("cells", []):
        source = cell.get("source", "")
        found.append((cell.get("cell_type"), "".join(source) if isinstance(source, list) else source))
    return found
