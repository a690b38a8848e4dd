"""Who is talking to a JupyterHub single-user server: the hub's user, and the person the site vouches for.

JupyterHub authenticates every request the site relays by the hub token it carries (the owner's, or a
guest's own token for the owner's server, which the hub accepts only while the owner's server is shared
with that guest: ``backends/hub/shares.py``), and checks that token's access to this server. On top of
that (issue 31), the site signs the *person* on each request and websocket handshake
(``X-Pyramid-Notebook-Person``, :mod:`pyramid_notebook.core.person`), here under the very token the
request carries: only the site holds the tokens it made, so a valid signature is the site's word, and
a person signed under one token is worthless beside another. With it the request's user is a
:class:`HubPersonUser` (a :class:`~.identity.PersonUser` keeping the hub's model), so ``api/me``, the audit
trail and the watcher's refusals (:mod:`.authorizer`, :mod:`.audit_kernel`) work as in a local server; a
guest is admitted under their grant's prefix only, while the grant lasts (``server/guests.py``). Without a
valid person the request is the hub's user, as before, and never a guest.

The rest is JupyterHub's identity provider with two changes: the Origin check stays on for
token-authenticated requests (every request the site relays carries a token, which JupyterHub would
otherwise exempt), and the token is never echoed into the page config.
"""
import dataclasses

from pyramid_notebook.core.person import PERSON_HEADER, verify_person
from pyramid_notebook.server import guests
from pyramid_notebook.server.identity import PersonUser, person_of

_provider_class = None


@dataclasses.dataclass
class HubPersonUser(PersonUser):
    """A person the site vouched for, on a hub: also the hub's model of the token's user (``hub_user``,
    an attribute, not a field: ``api/me`` does not show it), as JupyterHub's own user has."""


def vouched_person(handler, auth_header_pat):
    """The person signed under the request's own ``Authorization`` token, or None."""
    header = handler.request.headers.get(PERSON_HEADER)
    match = auth_header_pat.match(handler.request.headers.get("Authorization", ""))
    if header is None or not match:
        return None
    return verify_person(match.group(2).strip(), header)


def person_user(person, hub_user) -> HubPersonUser:
    """The :class:`HubPersonUser` of a verified ``person`` whose request the hub authenticated as ``hub_user``."""
    names = {field.name for field in dataclasses.fields(HubPersonUser)}
    values = {"username": person.id, "name": person.display_name, "display_name": person.display_name,
              "role": person.role, "grant": person.grant, "until": person.until}
    values.update({name: getattr(person, name) for name in names - set(values) - {"initials", "avatar_url", "color"}
                   if hasattr(person, name)})  # fields the person may gain (supervision)
    user = HubPersonUser(**values)
    user.hub_user = hub_user
    return user


def __getattr__(name):
    """``SiteProxiedIdentityProvider``, by name (``ServerApp.identity_provider_class``), made on first use."""
    if name == "SiteProxiedIdentityProvider":
        return identity_provider_class()
    raise AttributeError(name)


def identity_provider_class():
    """:class:`SiteProxiedIdentityProvider`, made on first use (it needs jupyterhub importable)."""
    global _provider_class
    if _provider_class is not None:
        return _provider_class
    from jupyterhub.singleuser.extension import JupyterHubIdentityProvider

    class SiteProxiedIdentityProvider(JupyterHubIdentityProvider):
        """JupyterHub's identity provider, with the site's person, the Origin check and no token in pages."""

        async def get_user(self, handler):
            """The hub's user, or the person the site signed under the request's token (see the module)."""
            if hasattr(handler, "_pyramid_notebook_user"):
                return handler._pyramid_notebook_user
            user = await super().get_user(handler)
            if user is not None:
                person = vouched_person(handler, self.auth_header_pat)
                if person is None and handler.request.headers.get(PERSON_HEADER) is not None:
                    self.log.warning("pyramid_notebook: a person header that does not verify (forged or expired) "
                                     "on %s %s", handler.request.method, handler.request.path)
                if person is not None:
                    user = person_user(person, user.hub_user)
                if not guests.admits(handler, person_of(user)):
                    user = None  # a guest outside their grant's prefix, anyone else inside one, or a grant that ended
            handler._pyramid_notebook_user = user
            return user

        def should_check_origin(self, handler) -> bool:
            """Always: the site adds the token to every request, browsers' included."""
            return True

        def page_config_hook(self, handler, page_config):
            """JupyterHub's page config, without the request's token (the site's secret)."""
            page_config = super().page_config_hook(handler, page_config)
            page_config["token"] = ""
            return page_config

    _provider_class = SiteProxiedIdentityProvider
    return _provider_class
