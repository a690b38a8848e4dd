"""How a notebook server decides who is talking to it.

Only the web site's proxy knows the per-start secret, and it sends it as
``Authorization: token <secret>``. Stock Jupyter treats any token-authenticated
request as a trusted script and skips its XSRF and Origin checks; behind a
proxy that adds the token to *every* request, that would let any web page ride
the user's site login (cross-site request forgery). So here the secret proves
the request came through the proxy, but the request is still treated like a
browser's: Jupyter's XSRF cookie and Origin checks stay on.

Beside the secret, the proxy vouches for the *person* (``X-Pyramid-Notebook-Person``, signed
with the secret: :mod:`pyramid_notebook.core.person`): their site user id, display name and
role. With a valid one (and the secret), the request's :class:`PersonUser` is that person, so
``api/me``, collaboration cursors and the audit trail name them; a forged, expired or badly signed
one counts for nothing (the request then needs a login cookie). The site's own calls (status,
contents, shells), which carry the secret alone, are the owner's.

Once the proxy has vouched for a browser, Jupyter's signed login cookie (secret per start) carries
that person and admits it, which is what lets pserve-mode websockets go straight to the
notebook's localhost port. A proxied request always re-states the person, and the cookie follows.

A guest (a person signed with a grant, issue 31) is admitted under their grant's prefix only, until
the grant's expiry or revocation (``server/guests.py``); their cookie's path is that prefix.
"""
import dataclasses
import hmac
import json

from jupyter_server.auth.identity import IdentityProvider, User
from traitlets import Unicode

from pyramid_notebook.core.person import OWNER, PERSON_HEADER, ROLES, verify_person
from pyramid_notebook.server import guests


@dataclasses.dataclass
class PersonUser(User):
    """A Jupyter ``User`` the site vouched for: ``username`` is their site user id, plus their role."""

    #: ``owner``, ``collaborate`` or ``watch`` (:data:`pyramid_notebook.core.person.ROLES`).
    role: str = OWNER
    #: A guest's grant id: they are served under that grant's prefix only (``server/guests.py``); empty for the owner.
    grant: str = ""
    #: Unix time the guest's grant expires (0: not a guest).
    until: float = 0
    #: An administrator watching from the operator console (``server/supervision.py``).
    supervisor: bool = False


def person_of(user):
    """``user`` if the site vouched for it (a :class:`PersonUser`), else ``None`` (e.g. a hub's user)."""
    return user if isinstance(user, PersonUser) else None


def role_of(user) -> str:
    """The role of ``user``: a vouched person's own, ``owner`` for anyone else the server admitted."""
    person = person_of(user)
    return person.role if person is not None else OWNER


class ProxyIdentityProvider(IdentityProvider):
    """Authenticate the site's proxy by a shared secret and the person it signs, keeping XSRF and Origin checks."""

    proxy_token = Unicode(
        "",
        config=True,
        help="Secret the web site's proxy sends upstream as 'Authorization: token <secret>'.",
    )
    owner = Unicode(
        "",
        config=True,
        help="The site user id of the notebook's owner: who the site's own calls (the secret alone) are.",
    )

    @property
    def auth_enabled(self) -> bool:
        """Always on: without the secret or a login cookie nothing is served."""
        return True

    @property
    def login_available(self) -> bool:
        """No login page: users log in to the web site, never to Jupyter."""
        return False

    def _has_proxy_secret(self, handler) -> bool:
        match = self.auth_header_pat.match(handler.request.headers.get("Authorization", ""))
        if not (match and self.proxy_token):
            return False
        return hmac.compare_digest(match.group(2).strip().encode(), self.proxy_token.encode())

    def get_user(self, handler):
        """The person the proxy vouches for, else the login cookie's; the owner for the site's own calls.

        A person header that does not verify, or comes without the secret, is ignored: the request
        is then whoever its cookie says, or refused.
        """
        user, set_cookie = self._claimed_user(handler)
        if user is not None and not guests.admits(handler, person_of(user)):
            return None  # a guest outside their grant's prefix, anyone else inside one, or a grant that ended
        if set_cookie:
            self.set_login_cookie(handler, user)
        return user

    def _claimed_user(self, handler):
        """``(user, whether to set the login cookie)`` as the header or the cookie claims it."""
        cookie_user = self.get_user_cookie(handler)
        if not self._has_proxy_secret(handler):
            return cookie_user, False
        header = handler.request.headers.get(PERSON_HEADER)
        if header is None:
            # The site's own call (status, contents, shells), with the secret alone: the owner, though
            # no person was vouched for (a plain User, no role), and no login cookie for anyone.
            owner = self.owner or "owner"
            return cookie_user or User(username=owner, name=owner, display_name=owner), False
        person = verify_person(self.proxy_token, header)
        if person is None:
            self.log.warning("pyramid_notebook: a person header that does not verify (forged or expired) on %s %s",
                             handler.request.method, handler.request.path)
            return cookie_user, False
        user = PersonUser(username=person.id, name=person.display_name, display_name=person.display_name,
                          role=person.role, grant=person.grant, until=person.until, supervisor=person.supervisor)
        return user, user != cookie_user

    def user_to_cookie(self, user) -> str:
        """Jupyter's cookie value, with the person's role."""
        value = json.loads(super().user_to_cookie(user))
        value["role"] = role_of(user)
        person = person_of(user)
        if person is not None and person.grant:
            value.update(grant=person.grant, until=person.until, supervisor=person.supervisor)
        return json.dumps(value)

    def user_from_cookie(self, cookie_value: str):
        """The :class:`PersonUser` of a cookie this server set; ``None`` for any other."""
        value = json.loads(cookie_value)
        if not isinstance(value, dict) or value.get("role") not in ROLES or not value.get("username"):
            return None
        return PersonUser(username=value["username"], name=value.get("name") or "",
                          display_name=value.get("display_name") or "", initials=value.get("initials"),
                          avatar_url=value.get("avatar_url"), color=value.get("color"), role=value["role"],
                          grant=str(value.get("grant") or ""), until=float(value.get("until") or 0),
                          supervisor=value.get("supervisor") is True and bool(value.get("grant")))

    def is_token_authenticated(self, handler) -> bool:
        """Never: keep Jupyter's XSRF and Origin checks on for proxied requests."""
        return False
