"""The person behind a request to a notebook server, vouched for by the web site.

A notebook server serves its owner, and (issue 31) the team mates the owner shares it with. Only
the site knows who is logged in, so on every request it relays, and on every websocket handshake,
the site adds :data:`PERSON_HEADER`: the person's site user id, display name, role
(:data:`ROLES`) and an expiry a few minutes ahead, signed with HMAC-SHA256 under the notebook's
per-start secret (``context["token"]``, which the relays already send as ``Authorization``). The
notebook server (``server/identity.py``) believes the header only when the signature is right, it
has not expired and the request carries the secret as well; a browser's own copy of the header is
never relayed (every relay replaces it), so it cannot name anyone.

The value is ``<payload>.<signature>``: the payload is base64url (no padding) of compact JSON
``{"exp": <unix seconds>, "id": ..., "name": ..., "role": ...}``, the signature the hex HMAC of
:data:`DOMAIN`, a NUL and the payload. Both parts use only URI-safe characters, so nginx can carry
the value inside its grant URI (``relays/accel.py``). One module for both sides: the site signs
(:func:`sign_person`), the server verifies (:func:`verify_person`).
"""
import base64
import dataclasses
import hashlib
import hmac
import json
import time

#: Request header carrying the signed person from the site's relay to the notebook server.
PERSON_HEADER = "X-Pyramid-Notebook-Person"
#: Key in ``request.environ`` where the proxy view puts the :class:`Person` the relays sign.
PERSON_ENVIRON_KEY = "pyramid_notebook.person"
#: Roles: the notebook's owner, a team mate who works in it, a team mate who only watches.
OWNER, COLLABORATE, WATCH = "owner", "collaborate", "watch"
#: Every role a signed person may have.
ROLES = (OWNER, COLLABORATE, WATCH)
#: Seconds a signed person is valid: long enough for a slow upload's headers, short enough that a
#: copied value is soon useless (the server also wants the secret beside it).
TTL = 300
#: Longest user id and display name signed; anything longer is cut (ids are checked by the site).
MAX_FIELD = 256
#: Longest header value the server reads before refusing it unread.
MAX_VALUE = 4096
#: Keeps this signature from being mistaken for any other HMAC under the same secret.
DOMAIN = b"pyramid-notebook-person-v1"


@dataclasses.dataclass(frozen=True)
class Person:
    """One person as the site vouches for them: site user id, display name, role, expiry."""

    #: The site's user id (the username the site gives ``notebook_proxy``), as text.
    id: str
    #: What the notebook shows for them (RTC cursors, ``api/me``); the id when the site has no name.
    name: str = ""
    #: One of :data:`ROLES`.
    role: str = OWNER
    #: Unix time after which the signature is no longer accepted (0 in an unsigned person).
    expires: int = 0
    #: A guest's grant id (issue 31, joining): the server then serves them under
    #: ``<base_url>shared/<grant>/`` only (``core/guests.py``); empty for the owner.
    grant: str = ""
    #: Unix time at which the guest's grant expires: the server refuses and disconnects them then (0: never).
    until: float = 0
    #: A guest watching as a site administrator (the operator console's Watch), not as a team mate the
    #: owner invited: the server records the watch's start and end and tells the owner's page.
    supervisor: bool = False

    @property
    def display_name(self) -> str:
        """:attr:`name`, or the id when there is none."""
        return self.name or self.id


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode("utf-8"), DOMAIN + b"\0" + payload.encode("ascii"), hashlib.sha256).hexdigest()


def sign_person(secret: str, person: Person, now=None, ttl: int = TTL) -> str:
    """The :data:`PERSON_HEADER` value vouching for ``person`` for ``ttl`` seconds from ``now``.

    Raises :class:`ValueError` for an empty secret or id, or a role not in :data:`ROLES`.
    """
    if not secret:
        raise ValueError("no secret to sign the person with")
    if not person.id or person.role not in ROLES or (person.grant and person.role == OWNER):
        raise ValueError(f"not a person the site can vouch for: {person!r}")
    expires = int((time.time() if now is None else now) + ttl)
    body = {"exp": expires, "id": str(person.id)[:MAX_FIELD], "name": str(person.name or "")[:MAX_FIELD],
            "role": person.role}
    if person.grant:  # a guest: which grant, until when (an owner's value stays as it was)
        body.update(grant=str(person.grant)[:MAX_FIELD], until=round(float(person.until or 0), 3))
        if person.supervisor:
            body["sup"] = True
    payload = _b64(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    return f"{payload}.{_signature(secret, payload)}"


def verify_person(secret: str, value, now=None):
    """The :class:`Person` a :data:`PERSON_HEADER` value vouches for, or ``None`` when it is missing,
    malformed, signed with another secret, or expired."""
    if not secret or not isinstance(value, str) or not value or len(value) > MAX_VALUE or not value.isascii():
        return None
    payload, dot, signature = value.strip().partition(".")
    if not dot or not hmac.compare_digest(signature.encode("ascii"), _signature(secret, payload).encode("ascii")):
        return None
    try:
        body = json.loads(_unb64(payload).decode("utf-8"))
        person = Person(id=body["id"], name=body.get("name") or "", role=body["role"], expires=int(body["exp"]),
                        grant=body.get("grant") or "", until=float(body.get("until") or 0),
                        supervisor=body.get("sup") is True and bool(body.get("grant")))
    except (ValueError, KeyError, TypeError, UnicodeError):
        return None
    if not isinstance(person.id, str) or not person.id or not isinstance(person.name, str) or person.role not in ROLES:
        return None
    if not isinstance(person.grant, str) or (person.grant and person.role == OWNER):
        return None
    if person.expires < (time.time() if now is None else now):
        return None
    return person


def person_header_value(environ, secret: str):
    """The signed value for the :class:`Person` the proxy view put in ``environ``, or ``None``.

    What every relay sends upstream as :data:`PERSON_HEADER` (beside ``Authorization``).
    """
    person = environ.get(PERSON_ENVIRON_KEY) if environ is not None else None
    if not isinstance(person, Person) or not secret:
        return None
    return sign_person(secret, person)
