"""Did the user mean it? Intent checks for the destructive actions.

Shutting a notebook down, and launching with a different context (which restarts
it), throw away every kernel's state. A link, image or form on any other web site
can make the user's browser request those URLs with the user's site login, so
they must not act on a request that merely arrives. They act when:

* the browser says the request comes from the site itself: ``Sec-Fetch-Site:
  same-origin`` or ``none`` (typed, bookmarked), for a page the user navigates to in
  the window or a script's request (``Sec-Fetch-Dest`` ``document`` or ``empty`` — an
  ``<img>``, ``<script>``, stylesheet or any other embedded resource never counts: a
  notebook's Markdown may show images);
* or, for ``same-site``/``cross-site`` requests and for browsers that send no
  ``Sec-Fetch-*`` headers, ``Origin`` (or else ``Referer``) names one of
  :func:`~pyramid_notebook.core.origin.allowed_origins`: the site or its
  ``alternative_domain``, where the notebook's own "Shut down and return to site"
  control lives;
* or the request is a POST carrying a valid CSRF token from the confirmation page.

A navigation inside a frame (``Sec-Fetch-Dest: iframe`` or ``frame``) is never intent:
``Sec-Fetch-Site`` names who started the navigation, not who framed the page, so a
link clicked in the site's own page is indistinguishable from the same link in that
page framed, nearly invisible, by another (same-site) page that steers the user's click
onto it (clickjacking). The notebook's own shutdown control navigates the whole window
(``document``), so embedded notebooks keep working; a site that puts shell or shutdown
links inside frames should give them ``target="_top"``. Such a request gets the
confirmation page, which may not be framed at all.

Anything else (another site's link, a browser that hides where it comes from, a
script that sends no browser headers) gets :class:`ConfirmationRequired`: a small
page whose button POSTs back to the same URL with a CSRF token. The token comes
from the site's own CSRF storage policy (:mod:`pyramid.csrf`); a site with no
session factory, where Pyramid's default policy cannot work, gets a cookie-based
policy of this library's own. The page may not be framed (no clickjacking of the
button).
"""
from pyramid.csrf import CookieCSRFStoragePolicy, LegacySessionCSRFStoragePolicy
from pyramid.httpexceptions import HTTPOk
from pyramid.interfaces import ICSRFStoragePolicy, ISessionFactory

from pyramid_notebook.core.framing import refuse_framing
from pyramid_notebook.core.origin import allowed_origins, normalize_origin, request_origin
from pyramid_notebook.core.templates import render

#: Form field of the confirmation page's token: Pyramid's default, so ``require_csrf`` checks pass too.
CSRF_FIELD = "csrf_token"
#: Header a script may send the token in instead (Pyramid's default header name).
CSRF_HEADER = "X-CSRF-Token"
#: ``Sec-Fetch-Site`` values that mean the user acted on the site itself (or typed the URL).
INTENT_SITES = frozenset({"same-origin", "none"})
#: ``Sec-Fetch-Dest`` values of a top-level navigation or a script's own request; anything else is
#: embedded content, or a framed navigation that another page may have steered (see the module docstring).
INTENT_DESTINATIONS = frozenset({"document", "empty"})

_FALLBACK_POLICY = CookieCSRFStoragePolicy(cookie_name="pyramid_notebook_csrf", httponly=True, samesite="Lax")

#: The confirmation page's template (``pyramid_notebook/web/templates``).
CONFIRM_TEMPLATE = "confirm.html"


class ConfirmationRequired(HTTPOk):
    """A 200 page asking the user to confirm a destructive action with a button.

    Raised by :func:`~pyramid_notebook.views.shutdown_notebook` and
    :func:`~pyramid_notebook.views.launch_notebook` when the request shows no
    intent; Pyramid's exception view returns it as the response, so a site's view
    that calls them needs no change.
    """


def csrf_policy(request):
    """The CSRF storage policy for the confirmation token (see the module docstring)."""
    policy = request.registry.queryUtility(ICSRFStoragePolicy)
    if policy is None or (isinstance(policy, LegacySessionCSRFStoragePolicy)
                          and request.registry.queryUtility(ISessionFactory) is None):
        return _FALLBACK_POLICY
    return policy


def get_csrf_token(request) -> str:
    """The CSRF token a confirmation form (or the site's own shutdown form) must POST."""
    token = csrf_policy(request).get_csrf_token(request)
    return token.decode("ascii") if isinstance(token, bytes) else token


def has_valid_csrf_token(request) -> bool:
    """True for a POST carrying the right token in ``csrf_token`` or ``X-CSRF-Token``."""
    if request.method != "POST":
        return False
    try:
        supplied = request.POST.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    except Exception:  # an unparsable body carries no token
        supplied = None
    if not supplied or not isinstance(supplied, str):
        return False
    return bool(csrf_policy(request).check_csrf_token(request, supplied))


def browser_intent(request):
    """What the browser's own headers say: True (from the site), False (not), None (no evidence)."""
    dest = request.headers.get("Sec-Fetch-Dest")
    if dest is not None and dest.strip().lower() not in INTENT_DESTINATIONS:
        return False
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.strip().lower() in INTENT_SITES:
        return True
    origin = request_origin(request)
    if origin is None:
        return False if fetch_site is not None else None  # the browser hid where it came from
    if not origin or origin.lower() == "null":
        return False
    return normalize_origin(origin) in allowed_origins(request)


def has_intent(request) -> bool:
    """True if the request shows the user meant it: browser evidence or a valid CSRF POST."""
    return browser_intent(request) is True or has_valid_csrf_token(request)


def confirmation_page(request, title, message, button, cancel_url="/") -> ConfirmationRequired:
    """The confirmation page for ``request``: its button POSTs back to the same URL with a token."""
    body = render(CONFIRM_TEMPLATE, title=title, message=message, button=button, action=request.path_qs,
                  csrf_field=CSRF_FIELD, csrf_token=get_csrf_token(request), cancel=cancel_url)
    response = ConfirmationRequired(body=body, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    return refuse_framing(response)


def require_intent(request, title, message, button, cancel_url="/") -> None:
    """Return if the request shows intent; otherwise raise the confirmation page."""
    if not has_intent(request):
        raise confirmation_page(request, title, message, button, cancel_url)
