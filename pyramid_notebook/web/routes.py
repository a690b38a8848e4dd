"""The INI-only set-up: the shell, its shutdown and its proxy without one line of view code.

With ``pyramid_notebook.shell_principals = role:editor alice`` in the site's INI file,
``config.include("pyramid_notebook")`` adds

* ``/notebook/shell`` (route ``notebook_shell``): launch the user's notebook;
* ``/notebook/shutdown`` (route ``shutdown_notebook``): stop it and go back to the site's root;
* ``/notebook/*remainder`` (route ``notebook_proxy``): everything else goes to the user's notebook.

Each route's context is a :class:`ShellACL` granting the ``shell`` permission to exactly those
principals: the site's security policy decides who holds which principal, and only someone
who can edit the server's INI file hands out shells. Anyone else gets the site's own
forbidden view (a login page for anonymous users, in most sites). A policy that does not read
``__acl__`` (a legacy authorization policy of the site's own) is detected at start, and the
add-on then decides from the request's principals itself (:mod:`pyramid_notebook.web.permission`).
The routes follow the site's ``route_prefix`` (``/v1/notebook/shell`` under ``v1``).

The routes are moved in front of the site's own at commit time, because Pyramid tries routes
in registration order and a catch-all such as ``/{pagename:.*}`` or ``/*traverse`` registered
first would otherwise take ``/notebook/...``.

The kernel gets what ``pshell`` gives for ``pyramid_notebook.config_file`` (write
``%(__file__)s``), see :func:`pyramid_notebook.core.startup.make_startup`.
"""
import logging

from pyramid.authorization import ALL_PERMISSIONS, Allow, Deny, Everyone
from pyramid.httpexceptions import HTTPFound, HTTPServiceUnavailable
from pyramid.security import NO_PERMISSION_REQUIRED

from pyramid_notebook.core import startup
from pyramid_notebook.core.routes import routes_first
from pyramid_notebook.core.settings import NotebookNotConfigured, get_notebook_settings, parse_shell_principals
from pyramid_notebook.web.permission import guard
from pyramid_notebook.web.views import (
    PROXY_ROUTE_NAME, SHUTDOWN_ROUTE_NAME, error_page, launch_notebook, notebook_proxy, shutdown_notebook,
)

logger = logging.getLogger(__name__)

#: Route of the launch view.
SHELL_ROUTE_NAME = "notebook_shell"
#: The permission the routes' ACL grants to ``pyramid_notebook.shell_principals``.
SHELL_PERMISSION = "shell"
#: The routes, in the order they are tried: the two fixed paths before the proxy's wildcard.
ROUTES = (
    (SHELL_ROUTE_NAME, "/notebook/shell"),
    (SHUTDOWN_ROUTE_NAME, "/notebook/shutdown"),
    (PROXY_ROUTE_NAME, "/notebook/*remainder"),
)
#: After every route-connect action (order 0): put the notebook's routes first.
_ROUTE_ORDER = 1


class ShellACL:
    """Route context: the ``shell`` permission for exactly the configured principals."""

    #: Set by :func:`includeme` from ``pyramid_notebook.shell_principals``.
    principals: tuple = ()

    def __init__(self, request):
        self.request = request
        self.__acl__ = [(Allow, principal, SHELL_PERMISSION) for principal in self.principals]
        self.__acl__.append((Deny, Everyone, ALL_PERMISSIONS))


def notebook_context(request) -> dict:
    """The launch's notebook context: ``pshell`` for ``pyramid_notebook.config_file``, if set."""
    nb = {}
    config_file = get_notebook_settings(request.registry).config_file
    if config_file:
        startup.make_startup(nb, config_file)
    else:
        startup.add_greeting(nb, "Set `pyramid_notebook.config_file = %(__file__)s` in the site's INI file to "
                                 "get what `pshell` gives (`app`, `request`, `registry`, your `[pshell]` setup).")
    return nb


def shell_view(request):
    """``/notebook/shell``: launch (or reuse) the user's notebook and open it."""
    return launch_notebook(request, request.authenticated_userid, notebook_context=notebook_context(request))


def shutdown_view(request):
    """``/notebook/shutdown``: stop the user's notebook (with their intent) and go to the site's root."""
    get_notebook_settings(request.registry)  # missing settings: the 503 page, not a confirmation first
    shutdown_notebook(request, request.authenticated_userid)
    return HTTPFound(request.application_url + "/")


def proxy_view(request):
    """``/notebook/*remainder``: the user's own notebook."""
    return notebook_proxy(request, request.authenticated_userid)


def not_configured_view(exc, request):
    """A notebook setting is missing: 503 naming it, instead of a site that does not start."""
    return error_page(HTTPServiceUnavailable, "The notebook is not configured",
                      f"{exc} (in the site's INI file). Until then the notebook is unavailable; the rest "
                      "of the site works.")


def _routes_first(config):
    """Move the notebook's routes to the front of the site's routes, keeping their own order."""
    routes_first(config.registry, [name for name, _ in ROUTES])


def includeme(config):
    """The 503 page for missing settings; with ``shell_principals`` set, the three routes."""
    config.add_exception_view(not_configured_view, context=NotebookNotConfigured)
    config.include("pyramid_notebook.web.permission")
    principals = parse_shell_principals(config.get_settings())
    if not principals:
        return
    factory = type("ShellACL", (ShellACL,), {"principals": principals})
    for name, pattern in ROUTES:
        config.add_route(name, pattern, factory=factory)
    # The add-on checks the permission itself (pyramid_notebook.web.permission): the site's policy when
    # it reads __acl__, the request's principals otherwise; never a 500 from a policy that raises.
    for view, route in ((shell_view, SHELL_ROUTE_NAME), (shutdown_view, SHUTDOWN_ROUTE_NAME),
                        (proxy_view, PROXY_ROUTE_NAME)):
        # No CSRF check for the proxy only: the notebook's frontend sends Jupyter's XSRF token, not
        # the site's, and the proxy refuses cross-origin requests itself.
        config.add_view(guard(_context_view(view), SHELL_PERMISSION), route_name=route,
                        permission=NO_PERMISSION_REQUIRED, require_csrf=False if route == PROXY_ROUTE_NAME else None)
    config.action(("pyramid_notebook.routes-first",), lambda: _routes_first(config), order=_ROUTE_ORDER)
    logger.debug("Notebook shell at /notebook/shell for %s", ", ".join(principals))


def _context_view(view):
    """``view(request)`` as a ``(context, request)`` view."""
    def context_view(context, request):
        return view(request)

    context_view.__doc__, context_view.__name__ = view.__doc__, view.__name__
    return context_view
