"""The library's pages from Jinja2 templates: one environment, autoescaping, over ``web/templates``.

Every HTML page the library answers itself (the error pages, the confirmation and reason forms,
the progress page, the operator console, the team recipes) is a template in
``pyramid_notebook/web/templates`` that extends ``base.html``, the one shared layout; no module
builds a page in a Python string (``tests/test_templates.py`` checks). The environment lives here,
in core, because the error page is answered from every layer, a relay as well as a view; the
templates are package data beside the site's views, read as files (no module of ``web`` is imported).

Every value is escaped unless the caller marks it as trusted HTML (:class:`markupsafe.Markup`),
and a name missing from a render is an error, not an empty string. Templates are compiled once
per process and kept (``auto_reload`` off: no ``stat`` per page), so a progress page that a relay
answers many times a second costs a render, not a parse.
"""
import os
import threading

#: The folder of the library's templates (package data, shipped in the wheel).
FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "web", "templates")

_environment = None
_lock = threading.Lock()


def environment():
    """The process's Jinja2 environment of the library's templates (made on first use)."""
    global _environment
    if _environment is None:
        with _lock:
            if _environment is None:
                import jinja2  # imported on first use: a process that renders no page never pays for it

                _environment = jinja2.Environment(
                    loader=jinja2.FileSystemLoader(FOLDER), autoescape=True, undefined=jinja2.StrictUndefined,
                    auto_reload=False, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    return _environment


def render(template: str, **values) -> str:
    """``template`` (a file name in :data:`FOLDER`) rendered with ``values``, every value escaped."""
    return environment().get_template(template).render(**values)


def compile_all() -> int:
    """Compile every template now, so that no click pays for it (the site's warm-up calls it); their number."""
    env = environment()
    names = env.list_templates(extensions=["html"])
    for name in names:
        env.get_template(name)
    return len(names)
