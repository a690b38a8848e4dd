"""Jupyter server extension: the owner's server serves a guest under their grant's prefix (issue 31).

A guest of a shared notebook reaches its owner's server as ``<base_url>shared/<grant id>/...``
(:mod:`pyramid_notebook.core.guests`): the relays pass the path on as it came, so every relay mode
(pserve's direct websockets, uWSGI, uvicorn, nginx accel) carries a guest unchanged. Here:

* the path is served as ``<base_url>...`` (the web application's ``find_handler`` drops the prefix and
  remembers the grant on the request), and for that request the handlers' ``base_url`` (and ``ws_url``
  when it names the server) *is* the prefix: the page's ``baseUrl``, ``wsUrl``, static and lab extension
  URLs, redirects, ``Location`` headers and the login cookie's path all keep the guest under it, and the
  page config's other full URLs follow (:func:`guest_page_config`);
* :func:`admits` (asked by :mod:`.identity` for every request) lets a person in under a prefix only if
  the site signed them for that grant, and no one without a grant under one; never after the grant's
  expiry or its revocation;
* the guests' websockets are tracked: the site's ``POST <base_url>pyramid-notebook/guests``
  ``{"revoke": id}`` (with the proof :func:`~pyramid_notebook.core.guests.guests_proof`) closes a
  revoked grant's at once, and a sweep every half second closes those of an expired grant (code 1008),
  so the guest's open kernel, terminal and event websockets end within a second; ``{"active": true}``
  answers who is connected through which grant.
"""
import json
import logging
import time
import weakref

from pyramid_notebook.core.guests import GUESTS_ENDPOINT, guest_prefix, guests_proof, split_guest_path

log = logging.getLogger(__name__)

#: Attribute of a tornado request naming the grant of the guest prefix it came under ("" for none).
GRANT_ATTR = "pyramid_notebook_grant"
#: How often open guest websockets are checked against their grant's expiry, in milliseconds.
SWEEP_MS = 500
#: Close code for a guest whose grant ended (policy violation), and the reasons the browser is given.
CLOSE_CODE = 1008
REASONS = {"revoked": "the share was revoked", "expired": "the share has expired"}

#: Grant ids the site revoked since this server started.
REVOKED = set()
#: Open (or opening) guest websockets: handler -> the person (a :class:`.identity.PersonUser`).
SOCKETS = weakref.WeakKeyDictionary()
_SWEEPER = []
#: Called with the person when a guest's websocket is admitted; and, after each sweep, with the
#: ``(grant, user id)`` of every open guest websocket and :func:`ended` (``server/supervision.py`` hooks in).
ADMITTED_HOOKS, SWEEP_HOOKS = [], []


def request_grant(request) -> str:
    """The grant id of the guest prefix ``request`` came under, or ``""``."""
    return getattr(request, GRANT_ATTR, "") or ""


def ended(person, now=None) -> str:
    """``revoked`` or ``expired`` if the guest's grant has ended, else ``""``."""
    if person.grant in REVOKED:
        return "revoked"
    if person.until and person.until <= (time.time() if now is None else now):
        return "expired"
    return ""


def admits(handler, person) -> bool:
    """Whether the request may be ``person``'s (a vouched person, or None for anyone else): a guest under
    their own grant's prefix while it lasts, anyone else outside every prefix. Tracks guest websockets."""
    grant = request_grant(handler.request)
    mine = getattr(person, "grant", "") or ""
    if mine != grant:
        log.warning("pyramid_notebook: refused %s %s: %s", handler.request.method, handler.request.path,
                    "a guest outside their share" if mine else "not a guest of this share")
        return False
    if not mine:
        return True
    why = ended(person)
    if why:
        log.info("pyramid_notebook: refused %r: %s", person.username, REASONS[why])
        return False
    from tornado.web import StaticFileHandler
    from tornado.websocket import WebSocketHandler

    if not isinstance(handler, WebSocketHandler):
        if not isinstance(handler, StaticFileHandler):  # the bundles stay cached, as for the owner
            # No copy of a guest's page or answer in any cache; and a page leaving into the browser's
            # back-forward cache would keep its websockets open (a watch going on after its page is gone).
            handler.set_header("Cache-Control", "no-store")
    else:
        if handler not in SOCKETS:
            _notice_close(handler)
        SOCKETS[handler] = person
        _start_sweeper()
        for hook in ADMITTED_HOOKS:
            hook(person)
    return True


def _is_open(handler) -> bool:
    connection = getattr(handler, "ws_connection", None)
    return connection is not None and not connection.is_closing()


#: Attribute set on a guest's websocket handler once it has closed.
CLOSED_ATTR = "pyramid_notebook_closed"


def _notice_close(handler) -> None:
    """Mark ``handler`` closed when it closes, whatever its class does on close (kernel, events, document)."""
    on_close = handler.on_close

    def marked_on_close(*args, **kwargs):
        setattr(handler, CLOSED_ATTR, True)
        return on_close(*args, **kwargs)

    handler.on_close = marked_on_close


def _is_opening(handler) -> bool:
    """Admitted, its handshake not done yet (tornado drops ``ws_connection`` again once it has closed)."""
    return getattr(handler, "ws_connection", None) is None and not getattr(handler, CLOSED_ATTR, False)


def close_ended(now=None) -> int:
    """Close every open guest websocket whose grant ended; return how many were closed."""
    closed = 0
    for handler, person in list(SOCKETS.items()):
        why = ended(person, now)
        if why and _is_open(handler):
            log.info("pyramid_notebook: closing %r's websocket %s: %s", person.username, handler.request.path,
                     REASONS[why])
            handler.close(CLOSE_CODE, REASONS[why])
            closed += 1
        if getattr(handler, "ws_connection", None) is not None and not _is_open(handler):
            SOCKETS.pop(handler, None)  # closed (by us or anyone): nothing more to watch
    if SWEEP_HOOKS:
        still_open = {(person.grant, person.username) for handler, person in list(SOCKETS.items())
                      if _is_open(handler) or _is_opening(handler)}
        for hook in SWEEP_HOOKS:
            hook(still_open, ended)
    if not SOCKETS and _SWEEPER:  # no guest connected: no sweep until the next one
        _SWEEPER.pop().stop()
    return closed


def active() -> dict:
    """``{grant id: [user ids with an open websocket]}``."""
    found = {}
    for handler, person in list(SOCKETS.items()):
        if _is_open(handler) and not ended(person):
            found.setdefault(person.grant, set()).add(person.username)
    return {grant: sorted(users) for grant, users in found.items()}


def _start_sweeper() -> None:
    if _SWEEPER:
        return
    from tornado.ioloop import PeriodicCallback

    sweeper = PeriodicCallback(close_ended, SWEEP_MS)
    sweeper.start()
    _SWEEPER.append(sweeper)


def guest_page_config(handler, page_config: dict) -> dict:
    """``page_config`` for a guest's page: the server's full URLs under the guest's prefix, no shutdown
    control (it would stop the guest's own notebook, not this one)."""
    grant = request_grant(handler.request)
    if not grant:
        return page_config
    base = handler.settings.get("base_url", "/")
    prefix = guest_prefix(base, grant)
    for key, value in list(page_config.items()):
        if key.startswith("full") and isinstance(value, str) and value.startswith(base) and \
                not value.startswith(prefix):
            page_config[key] = prefix + value[len(base):]
    page_config["baseUrl"] = prefix
    page_config["pyramidNotebookShutdownUrl"] = ""
    page_config["pyramidNotebookPageFilesUrl"] = ""  # the owner's pages teach the site what a page loads
    return page_config


def _serve_prefixes(web_app) -> None:
    """Serve ``<base_url>shared/<grant>/...`` as ``<base_url>...``, remembering the grant on the request."""
    base = web_app.settings.get("base_url", "/")
    find_handler = web_app.find_handler

    def find_guest_handler(request, **kwargs):
        grant, path = split_guest_path(base, request.path)
        if grant is not None:
            request.path = path
            request.uri = path + ("?" + request.query if request.query else "")
            setattr(request, GRANT_ATTR, grant)
        return find_handler(request, **kwargs)

    web_app.find_handler = find_guest_handler


def _per_request_urls() -> None:
    """Handlers' ``base_url`` and ``ws_url``: the guest's prefix for a guest's request (once per process)."""
    from jupyter_server.base.handlers import AuthenticatedHandler, JupyterHandler
    from jupyter_server.extension.handler import ExtensionHandlerMixin

    if getattr(AuthenticatedHandler, "_pyramid_notebook_guests", False):
        return
    ws_url = JupyterHandler.ws_url

    def guest_base_url(base_url):
        def base_url_of(self):
            base, grant = base_url.fget(self), request_grant(self.request)
            return guest_prefix(base, grant) if grant else base
        return property(base_url_of)

    def guest_ws_url(self):
        url, grant = ws_url.fget(self), request_grant(self.request)
        base = self.settings.get("base_url", "/")
        if grant and url.endswith(base):  # pserve mode: ws://host:port<base_url>
            return url[:-len(base)] + guest_prefix(base, grant)
        return url

    # Both define it: Jupyter's own handlers, and extensions' (Notebook's and JupyterLab's pages).
    for cls in (AuthenticatedHandler, ExtensionHandlerMixin):
        cls.base_url = guest_base_url(cls.base_url)
    JupyterHandler.ws_url = property(guest_ws_url)
    AuthenticatedHandler._pyramid_notebook_guests = True


def _handler_class():
    import hmac

    from jupyter_server.base.handlers import APIHandler
    from tornado import web

    from pyramid_notebook.core.contextparts import SHELLS_PROOF_HEADER
    from pyramid_notebook.server.shells import SHELL_KEY_SETTING

    class GuestsHandler(APIHandler):
        """``POST``: the site revokes a grant, or asks who is connected (see the module)."""

        async def prepare(self):
            """404 unless the request carries the site's proof: this endpoint is the site's, never a browser's."""
            key = self.settings.get(SHELL_KEY_SETTING) or ""
            proof = self.request.headers.get(SHELLS_PROOF_HEADER) or ""
            if request_grant(self.request) or not (
                    key and hmac.compare_digest(proof.encode(), guests_proof(key, self.request.body or b"").encode())):
                raise web.HTTPError(404)
            await super().prepare()

        @web.authenticated
        def post(self):
            """``{"revoke": id}`` → ``{"closed": n}``; ``{"active": true}`` → ``{"active": {...}}``."""
            try:
                body = json.loads(self.request.body or b"{}")
            except ValueError:
                raise web.HTTPError(400, "not JSON") from None
            if isinstance(body, dict) and isinstance(body.get("revoke"), str) and body["revoke"]:
                REVOKED.add(body["revoke"])
                self.finish(json.dumps({"closed": close_ended()}))
            elif isinstance(body, dict) and body.get("active") is True:
                self.finish(json.dumps({"active": active()}))
            else:
                raise web.HTTPError(400, 'expected {"revoke": <grant id>} or {"active": true}')

    return GuestsHandler


def _jupyter_server_extension_points():
    return [{"module": __name__}]


def _load_jupyter_server_extension(serverapp):
    from jupyter_server.utils import url_path_join

    from pyramid_notebook.server.page_config import chain_page_config

    web_app = serverapp.web_app
    _per_request_urls()
    _serve_prefixes(web_app)
    chain_page_config(serverapp, guest_page_config)
    web_app.add_handlers(".*$", [(url_path_join(web_app.settings["base_url"], GUESTS_ENDPOINT), _handler_class())])
