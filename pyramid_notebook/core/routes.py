"""The notebook routes' names, and where their paths start (read from the site's own route table).

Used by the web layer (error pages for addresses under those routes) and by the ASGI wrapper (which
bodies stream on to the notebook instead of being read before a thread is taken).
"""
from pyramid.interfaces import IRoutesMapper

#: Used when the site has neither route (``launch_notebook`` alone, a hub site...).
DEFAULT_PREFIXES = ("/notebook/",)
#: Routes whose paths are the notebook's (the names the site maps the views under).
PROXY_ROUTE_NAME = "notebook_proxy"
SHUTDOWN_ROUTE_NAME = "shutdown_notebook"


def _static_prefix(pattern: str) -> str:
    prefix = pattern.split("{", 1)[0].split("*", 1)[0]
    return prefix if prefix.startswith("/") else "/" + prefix


def notebook_path_prefixes(registry) -> tuple:
    """The fixed leading parts of the notebook routes' patterns (``/notebook/``)."""
    mapper = registry.queryUtility(IRoutesMapper)
    prefixes = []
    for name in (PROXY_ROUTE_NAME, SHUTDOWN_ROUTE_NAME):
        route = mapper.get_route(name) if mapper is not None else None
        if route is not None:
            prefixes.append(_static_prefix(route.pattern))
    return tuple(prefixes) or DEFAULT_PREFIXES


def routes_first(registry, names) -> None:
    """Move the routes called ``names`` to the front of the site's route table, in that order.

    The site's own catch-all routes (and the notebook proxy's ``/notebook/*remainder``) would otherwise
    answer ``/notebook/shares`` or ``/notebook/recipes`` first. Run as a config action, after the site's
    routes are added.
    """
    mapper = registry.queryUtility(IRoutesMapper)
    if mapper is None:
        return
    ours = [route for route in (mapper.get_route(name) for name in names) if route is not None]
    mapper.routelist[:] = ours + [route for route in mapper.routelist if route not in ours]
