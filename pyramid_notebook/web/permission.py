"""Who may use the add-on's routes, whatever the site's security policy is.

The routes the include adds (the shell's, the operator console's) have contexts whose ACL names
exactly ``shell_principals`` / ``admin_principals``. Most sites' policies read ``__acl__``
(Pyramid's :class:`~pyramid.authorization.ACLHelper`) and decide them as any other page. Many do
not: a legacy authorization policy of the site's own, an application's ``permits`` that looks for
its own attributes on the context. Asked about our context, such a policy raises
(``AttributeError: 'ShellACL' object has no attribute ...``) or answers without the ACL.

So the site's policy is asked once, when the application is created, about two probe contexts: one
whose ACL allows everyone and one whose ACL denies everyone. If its answers follow both ACLs, it
decides on every request (``request.has_permission``). Otherwise one warning is logged and the
add-on decides itself: it holds the request's principals against the context's ACL with Pyramid's
``ACLHelper``. The principals are, in this order:

* what ``pyramid_notebook.principals`` (a dotted callable ``(request) -> principals``) returns,
  when set; setting it also makes the add-on decide even for a policy that reads ACLs;
* the legacy authentication policy's ``effective_principals(request)``
  (``config.set_authentication_policy``);
* otherwise ``system.Everyone``, and ``system.Authenticated`` and ``str(authenticated_userid)``
  for a logged-in user (so ``shell_principals = alice`` names a user).

A denial raises :class:`~pyramid.httpexceptions.HTTPForbidden`: the site's own forbidden view
answers (its login page, its 401 with ``WWW-Authenticate``, its JSON 403). A policy or hook that
raises while deciding is a 503 page naming ``pyramid_notebook.principals``, never a 500.
"""
import logging

from pyramid.authorization import ALL_PERMISSIONS, ACLHelper, Allow, Authenticated, Deny, Everyone
from pyramid.httpexceptions import HTTPForbidden, HTTPServiceUnavailable
from pyramid.interfaces import IAuthenticationPolicy
from pyramid.request import Request, apply_request_extensions
from pyramid.threadlocal import RequestContext

from pyramid_notebook.core.pages import error_page
from pyramid_notebook.core.settings import PREFIX

logger = logging.getLogger(__name__)

#: The setting that lets the add-on decide, with principals of the site's choosing.
PRINCIPALS_SETTING = PREFIX + "principals"
#: The permission the probe asks about (any name: an ACL-reading policy answers from the ACL).
PROBE_PERMISSION = "shell"


class PolicyFailed(RuntimeError):
    """The site's security policy (or ``pyramid_notebook.principals``) raised while deciding."""


class _Probe:
    """A context whose ACL grants (or denies) :data:`PROBE_PERMISSION` to everyone."""

    def __init__(self, allow: bool):
        self.__acl__ = [(Allow if allow else Deny, Everyone, ALL_PERMISSIONS)]


def _probe_request(registry) -> Request:
    request = Request.blank("/")
    request.registry = registry
    apply_request_extensions(request)
    return request


def policy_reads_acls(registry) -> bool:
    """Ask the site's policy, once per registry, whether it decides the add-on's ACL contexts.

    Stored on the registry; logs one warning saying what the add-on does instead when it does not.
    """
    decided = getattr(registry, "pyramid_notebook_policy_reads_acls", None)
    if decided is not None:
        return decided
    settings = registry.settings or {}
    if (settings.get(PRINCIPALS_SETTING) or "").strip():
        decided, why = False, f"{PRINCIPALS_SETTING} is set"
    else:
        request = _probe_request(registry)
        try:
            with RequestContext(request):
                allowed = request.has_permission(PROBE_PERMISSION, _Probe(allow=True))
                denied = request.has_permission(PROBE_PERMISSION, _Probe(allow=False))
            decided = bool(allowed) and not denied
            why = "it does not answer as the routes' __acl__ says"
        except Exception as e:  # noqa: BLE001 - any policy's failure: the add-on decides instead
            decided, why = False, f"it raised {type(e).__name__}: {e}"
        if not decided:
            logger.warning(
                "pyramid_notebook: the site's security policy cannot decide the notebook routes' ACL (%s): "
                "pyramid_notebook decides shell_principals and admin_principals itself, from %s. Set %s = "
                "<dotted callable(request) returning principals> to choose the principals.",
                why, _source(registry), PRINCIPALS_SETTING)
    registry.pyramid_notebook_policy_reads_acls = decided
    return decided


def _source(registry) -> str:
    if registry.queryUtility(IAuthenticationPolicy) is not None:
        return "the authentication policy's effective principals"
    return "the request's authenticated_userid (system.Authenticated and the userid)"


def effective_principals(request) -> list:
    """The request's principals, as the add-on sees them when it decides itself (see the module)."""
    settings = getattr(request.registry, "pyramid_notebook_settings", None)
    hook = getattr(settings, "principals", None)
    if hook is not None:
        return [Everyone] + list(hook(request) or ())
    legacy = request.registry.queryUtility(IAuthenticationPolicy)
    if legacy is not None:
        return list(legacy.effective_principals(request))
    userid = request.authenticated_userid
    if userid is None or userid == "":
        return [Everyone]
    return [Everyone, Authenticated, str(userid)]


def permits(request, context, permission):
    """Whether ``request`` holds ``permission`` on ``context`` (a truthy Allowed / falsy Denied).

    Raises :class:`PolicyFailed` when the policy or the principals hook raises.
    """
    try:
        if policy_reads_acls(request.registry):
            return request.has_permission(permission, context)
        return ACLHelper().permits(context, effective_principals(request), permission)
    except Exception as e:  # noqa: BLE001 - a site's policy may raise anything: a 503 page, not a 500
        logger.exception("pyramid_notebook: the security policy failed deciding %r on %s", permission,
                         request.path)
        raise PolicyFailed(f"{type(e).__name__}: {e}") from e


def require(request, context, permission) -> None:
    """Raise :class:`~pyramid.httpexceptions.HTTPForbidden` (the site's forbidden view answers) unless
    :func:`permits`."""
    result = permits(request, context, permission)
    if not result:
        raise HTTPForbidden(result=result)


def guard(view, permission):
    """``view(context, request)`` behind :func:`require`; register it with ``NO_PERMISSION_REQUIRED``."""
    def guarded(context, request):
        require(request, context, permission)
        return view(context, request)

    guarded.__doc__ = view.__doc__
    guarded.__name__ = getattr(view, "__name__", "guarded")
    return guarded


def policy_failed_view(exc, request):
    """The 503 page naming the setting that fixes a policy that raises."""
    return error_page(HTTPServiceUnavailable, "The notebook cannot check who you are",
                      f"The site's security policy failed deciding who may use the notebook ({exc}). Set "
                      f"{PRINCIPALS_SETTING} = <dotted name of a callable(request) returning the user's "
                      "principals> in the site's INI file to let pyramid_notebook decide itself. The rest "
                      "of the site works.")


def _on_site_start(event):
    policy_reads_acls(event.app.registry)


def includeme(config):
    """The 503 page for a failing policy; the policy is asked once when the application is created."""
    from pyramid.events import ApplicationCreated

    config.add_exception_view(policy_failed_view, context=PolicyFailed)
    config.add_subscriber(_on_site_start, ApplicationCreated)
