"""The site's side of joining a shared notebook (issue 31): the grant checks' short cache, telling the
owner's server that a grant ended or asking who is connected (:mod:`pyramid_notebook.backends.guests`),
and telling the backend that the owner's grants changed (``sync_shares``: JupyterHub shares on the hub).

A guest's every request re-checks its grant (:mod:`pyramid_notebook.web.joining`); the grant's row is read
from SQL at most once a second per web process (:data:`CACHE_SECONDS`), and at once after a revoke in
this process. Whether it is live, and whether it is this user's, is decided on every request.
"""
import logging
import threading
import time

from pyramid.httpexceptions import HTTPServiceUnavailable

from pyramid_notebook.backends.base import BackendUnavailable
from pyramid_notebook.backends.guests import GuestsCallError, active_guests, revoke_guests
from pyramid_notebook.core.guests import guest_prefix
from pyramid_notebook.core.names import BadUsername
from pyramid_notebook.core.settings import get_notebook_settings
from pyramid_notebook.core.shares import share_store
from pyramid_notebook.web.registry import get_notebook_manager

logger = logging.getLogger(__name__)

#: Longest a grant's row read from SQL is reused by a web process (another node's revoke is seen by then).
CACHE_SECONDS = 1.0
#: Most grants cached; the cache is emptied when full (a guest's next request reads its row again).
CACHE_SIZE = 1024
_CACHE = {}
_LOCK = threading.Lock()
_CONNECTED_KEY = "pyramid_notebook.connected_guests"


def cached_grant(store, grant_id):
    """The grant of that id (:meth:`ShareStore.get`), from the cache when read less than a second ago."""
    now = time.monotonic()
    with _LOCK:
        hit = _CACHE.get(grant_id)
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    grant = store.get(grant_id)
    if grant is not None:  # an unknown id is not kept: a grant made a moment later is found
        with _LOCK:
            if len(_CACHE) >= CACHE_SIZE:
                _CACHE.clear()
            _CACHE[grant_id] = (now, grant)
    return grant


def forget(grant_id) -> None:
    """Drop the cached row of a grant that changed in this process."""
    with _LOCK:
        _CACHE.pop(grant_id, None)


def _running(request, owner):
    try:
        return get_notebook_manager(request).get_notebook_status(owner)
    except (BackendUnavailable, BadUsername, OSError):
        return None


def shares_changed(request, owner, raising=False) -> None:
    """The owner's grants changed: the backend makes what runs the notebooks agree (JupyterHub's shares).

    A failure is logged (``raising``: raised, as :class:`BackendUnavailable`); the site's own checks stand.
    """
    store = share_store(get_notebook_settings(request.registry).sqlalchemy_url)
    try:
        get_notebook_manager(request).sync_shares(owner, store.given(owner))
    except (BackendUnavailable, BadUsername) as e:
        if raising:
            raise BackendUnavailable(str(e)) from e
        logger.warning("Could not bring the backend's shares of %r's notebook up to date: %s", owner, e)


def grant_made(request, grant) -> None:
    """A grant was stored: the backend shares the owner's notebook. If it cannot, the grant is revoked and
    a 503 raised (a grant that works on the site only would fail its guest later)."""
    try:
        shares_changed(request, grant.owner, raising=True)
    except BackendUnavailable:
        share_store(get_notebook_settings(request.registry).sqlalchemy_url).revoke(grant.id)
        raise HTTPServiceUnavailable(json_body={"error": "What runs the notebooks could not share it; try again "
                                                         "later."}, headers={"Cache-Control": "no-store"}) from None


def join_url(request, grant) -> str:
    """Where the grant's link sends its guest: the grant's prefix under the owner's server's path
    (``/notebook/shared/<id>/`` for a local server, ``/notebook/user/<owner>/shared/<id>/`` on a hub)."""
    running = _running(request, grant.owner) or {}
    return request.host_url + guest_prefix(running.get("notebook_path") or "/notebook/", grant.id)


def notify_ended(request, grant) -> None:
    """The grant ended: its guests' websockets in the owner's server close now, and it refuses them from now
    on; then the backend's shares follow (:func:`shares_changed`)."""
    forget(grant.id)
    try:
        _close_guests(request, grant)
    finally:
        shares_changed(request, grant.owner)


def _close_guests(request, grant) -> None:
    running = _running(request, grant.owner)
    if not running or not running.get("http_port") or not running.get("token"):
        return
    try:
        closed = revoke_guests(running, grant.id)
    except GuestsCallError as e:
        # Their next request is refused by the site all the same; an open websocket stays until then.
        logger.warning("Could not tell %r's notebook that share %s ended: %s", grant.owner, grant.id[:6], e)
        return
    if closed:
        logger.info("Closed %d websocket(s) of share %s", closed, grant.id[:6])


def connected(request, owner) -> dict:
    """``{grant id: [user ids with an open websocket]}`` in ``owner``'s running server (asked once a request)."""
    answers = request.environ.setdefault(_CONNECTED_KEY, {})
    if owner not in answers:
        running = _running(request, owner)
        answers[owner] = {}
        if running and running.get("http_port") and running.get("token"):
            try:
                answers[owner] = active_guests(running)
            except GuestsCallError as e:
                logger.warning("Could not ask %r's notebook who is connected: %s", owner, e)
    return answers[owner]
