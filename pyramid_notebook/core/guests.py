"""Joining a shared notebook (issue 31): the rules the site and the owner's notebook server share.

A guest reaches the owner's server under the grant's own prefix, :func:`guest_prefix`
(``<base_url>shared/<grant id>/``): every relay passes the path on as it came (nginx's
``$request_uri``, pserve's direct websockets included), and the server serves that prefix as its
base URL for that request (``server/guests.py``), to the person signed for that grant only.

The site tells the server about grants through :data:`GUESTS_ENDPOINT` (``POST``, JSON): ``{"revoke":
<grant id>}`` closes that grant's websockets and refuses its people from then on; ``{"active": true}``
answers ``{"active": {<grant id>: [user ids with an open websocket]}}``. Like the shells endpoint it
wants the server's secret *and* :func:`guests_proof`, an HMAC of the body no browser request carries,
in :data:`~pyramid_notebook.core.contextparts.SHELLS_PROOF_HEADER`; the site's relays refuse every
browser request under ``<base_url>pyramid-notebook/`` anyway.
"""
import hashlib
import hmac
import re

#: Path, under the server's base URL, of the site's endpoint about guests.
GUESTS_ENDPOINT = "pyramid-notebook/guests"
#: The segment, under the server's base URL, that starts a guest's prefix.
GUEST_SEGMENT = "shared"
#: What a grant id looks like (``secrets.token_urlsafe``): anything else is no guest prefix.
GRANT_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def guest_prefix(base_url: str, grant_id: str) -> str:
    """``<base_url>shared/<grant id>/``: where the grant's guest reaches the owner's server."""
    return f"{base_url.rstrip('/')}/{GUEST_SEGMENT}/{grant_id}/"


def split_guest_path(base_url: str, path: str):
    """``(grant id, path under base_url)`` for a path under a guest prefix, else ``(None, path)``."""
    start = base_url.rstrip("/") + f"/{GUEST_SEGMENT}/"
    if not path.startswith(start):
        return None, path
    grant_id, slash, rest = path[len(start):].partition("/")
    if not slash or not GRANT_ID.match(grant_id):
        return None, path
    return grant_id, base_url.rstrip("/") + "/" + rest


def guests_proof(key: str, body: bytes) -> str:
    """HMAC-SHA256 of a guests request's body under the server's per-start key (as the shells endpoint's)."""
    return hmac.new(key.encode(), GUESTS_ENDPOINT.encode() + b"\0" + bytes(body), hashlib.sha256).hexdigest()
