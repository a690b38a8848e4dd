"""Who may frame notebook pages, and which parent pages the save bridge answers.

Jupyter sends ``Content-Security-Policy: frame-ancestors 'self'`` by default, so
a site that shows the notebook inside its own page (an iframe) is refused as soon
as notebook pages come from another origin (``alternative_domain``), and nothing
lets the site allow exactly its own pages. The ``pyramid_notebook.frame_ancestors``
setting lists the sources allowed to frame notebook pages; the daemon turns it
into the notebook server's CSP header (``ServerApp.tornado_settings``), which the
proxy passes through unchanged. Every other origin stays refused by the browser.

The same list, resolved to exact origins, is what the shipped JupyterLab
extension's save bridge accepts ``postMessage`` requests from and answers to.
"""
from pyramid_notebook.core.urls import normalize_origin

SELF = "'self'"
NONE = "'none'"


def default_frame_ancestors(site_origin: str, notebook_origin: str) -> list:
    """The site itself: ``'self'``, plus the site's origin when notebooks live on another one.

    Not ``'none'``: the point of embedding is the site's own pages, and only the site
    (which already has the user's login) can then frame the notebook. Not anything
    wider: a page that frames the notebook can trick the user into typing into it
    (clickjacking), and the notebook is code execution as the site.
    """
    sources = [SELF]
    if site_origin and site_origin != notebook_origin:
        sources.append(site_origin)
    return sources


def parent_origins(sources, notebook_origin: str) -> list:
    """The exact origins ``sources`` allow, with ``'self'`` meaning the notebook's own origin."""
    origins = []
    for source in sources:
        if source == SELF:
            origins.append(notebook_origin)
        elif source != NONE:
            origins.append(normalize_origin(source))
    return list(dict.fromkeys(o for o in origins if o))


def framing_context(configured, site_url: str, notebook_url: str) -> dict:
    """Context keys ``frame_ancestors`` (CSP sources) and ``parent_origins`` (for the save bridge).

    :param configured: the parsed ``frame_ancestors`` setting; empty for the default.
    :param site_url: the site's URL as the browser sees it (``request.host_url``).
    :param notebook_url: where notebook pages are served (the site, or ``alternative_domain``).
    """
    site_origin, notebook_origin = normalize_origin(site_url), normalize_origin(notebook_url)
    sources = list(configured) or default_frame_ancestors(site_origin, notebook_origin)
    return {"frame_ancestors": sources, "parent_origins": parent_origins(sources, notebook_origin)}


def content_security_policy(sources, base_url: str) -> str:
    """The notebook server's CSP: Jupyter's own (``frame-ancestors`` and its report URI) with our sources."""
    sources = list(sources or [SELF])
    return f"frame-ancestors {' '.join(sources)}; report-uri {base_url.rstrip('/')}/api/security/csp-report"


def refuse_framing(response, others_only: bool = False):
    """Forbid browsers to show ``response`` in a frame: anywhere, or (``others_only``) outside its own origin.

    For this library's own pages. The confirmation page's button must never be clickable
    through another page (``'none'``); progress and error pages carry no action, and
    ``others_only`` lets the site's own frames (an embedded notebook) still show them.
    Headers the response already has are kept. Returns ``response``.
    """
    headers = response.headers
    if "Content-Security-Policy" not in headers:
        headers["Content-Security-Policy"] = f"frame-ancestors {SELF if others_only else NONE}"
    if "X-Frame-Options" not in headers:  # for browsers without CSP level 2
        headers["X-Frame-Options"] = "SAMEORIGIN" if others_only else "DENY"
    return response
