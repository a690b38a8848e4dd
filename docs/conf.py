"""Sphinx configuration: ``scripts/docs`` builds these pages with ``-W -n`` (warnings are errors,
every cross-reference must resolve)."""
import os
import sys

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

sys.path.insert(0, os.path.abspath(".."))

project = "pyramid_notebook"
author = "pyramid_notebook developers"
copyright = "2015-2026, pyramid_notebook developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.autosectionlabel"]
autosectionlabel_prefix_document = True
# README.rst (included by guide.rst) and the design notes repeat a few section titles.
suppress_warnings = ["autosectionlabel.*"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
autodoc_typehints = "none"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}

# No network in CI, so no intersphinx: names of other projects (Pyramid, Jupyter, the standard
# library) are written as references in docstrings but cannot be resolved here. Every reference to
# pyramid_notebook itself must resolve.
nitpick_ignore_regex = [
    (r"py:.*", r"(pyramid|webob|jupyter_server|jupyterhub|tornado|urllib3|uvicorn|a2wsgi|websockets|sqlalchemy"
               r"|transaction|typing|collections|asyncio|concurrent|socket|subprocess|os|pathlib|uwsgi|prometheus_client)(\..*)?"),
    (r"py:.*", r"(str|int|float|bool|dict|list|tuple|bytes|None|object|Exception|OSError|ValueError|RuntimeError"
               r"|ImportError|ModuleNotFoundError"
               r"|callable|Callable|Optional|Any|Iterable|Iterator|Path|datetime)"),
    (r"py:.*", r"_\w+"),  # private names are not documented
    # Made at run time inside the notebook server, when jupyterhub is importable.
    (r"py:class", r"SiteProxiedIdentityProvider"),
]


def include_readme(app, relative_path, parent_docname, content):
    """README.rst's image paths are relative to the repository; guide.rst includes it from docs/."""
    if str(relative_path).endswith("README.rst"):
        content[0] = content[0].replace(".. image:: docs/", ".. image:: ")


class SettingsReference(SphinxDirective):
    """``.. pyramid-notebook-settings::``: the reference, from :data:`pyramid_notebook.core.settingstable.SETTINGS`."""

    def run(self):
        from pyramid_notebook.core.settingstable import SETTINGS

        lines = []
        for setting in SETTINGS:
            lines.append(setting.term)
            lines.extend("    " + line for line in setting.doc.splitlines())
        text = "\n".join(lines)
        # README section links (`Title`_) point into the guide, where README is included.
        import re

        text = re.sub(r"`([^`<>]+)`_", lambda m: f":ref:`{m.group(1)} <guide:{m.group(1)}>`", text)
        container = nodes.container()
        self.state.nested_parse(StringList(text.splitlines(), source="pyramid_notebook.core.settingstable"),
                                self.content_offset, container)
        return container.children


def _real_name(target):
    """``module.qualname`` of the object ``target`` names, importing it; None if it cannot."""
    import importlib

    parts = target.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for name in parts[split:]:
                obj = getattr(obj, name)
        except AttributeError:
            return None
        owner, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        return f"{owner}.{qualname}" if owner and qualname else None
    return None


def resolve_reexport(app, env, node, contnode):
    """Resolve references the way a reader means them: a re-exported name
    (``pyramid_notebook.views.launch_notebook``) to where its code lives and is documented
    (``pyramid_notebook.web.views``), and a short name (``NotebookASGI``) to the one documented
    object of the package with that name."""
    original = node.get("reftarget", "").lstrip("~.")
    if node.get("refdomain") != "py" or not original:
        return None
    target = original
    if not target.startswith("pyramid_notebook."):  # a name of the module the docstring is in
        target = f"{node.get('py:module') or ''}.{target}"
    domain = env.get_domain("py")
    real = _real_name(target) if target.startswith("pyramid_notebook.") else None
    if real is None or real not in domain.objects:
        matches = [name for name in domain.objects
                   if name.startswith("pyramid_notebook.") and name.endswith("." + original)]
        if len(matches) != 1:
            return None
        real = matches[0]
    if real == target and real not in domain.objects:
        return None
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], real, node, contnode)


def setup(app):
    app.add_directive("pyramid-notebook-settings", SettingsReference)
    app.connect("include-read", include_readme)
    app.connect("missing-reference", resolve_reexport)
