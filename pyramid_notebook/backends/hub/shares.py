"""Shared sessions (issue 31) on the JupyterHub backend: JupyterHub shares, and each guest's own token.

JupyterHub 5+ lets a user's server be shared with another hub user (``POST shares/<owner>/<server>``
with ``{"user": ...}``: the grantee gets ``access:servers!server=<owner>/``); there is no UI for it, only
the REST API, which the site drives with its service token (scopes ``shares``, ``read:shares``,
``read:users:name`` and ``access:servers``, which the shipped ``hub/jupyterhub_config.py`` grants).

* **A grant is a share.** A grant to a site user shares the owner's server with the grantee's hub user
  (``hub_username``, created if missing). A grant to a principal
  (``role:editor``) cannot name hub users in advance: each holder's hub user gets the share when they
  first join through it. :meth:`HubShares.sync_shares` makes the hub's shares of the owner's server
  agree with the owner's live grants after every change (create, revoke, the owner's server stopping):
  a share no live grant wants is deleted, so a revoke deletes it, and an expired grant's share goes at
  the owner's next change. While a principal grant of the owner is live, the shares it may have made
  are kept (the hub cannot tell them from others); the site refuses a guest whose grant ended anyway.
  JupyterHub counts a *group*'s shares for a user, not for the user's tokens, so groups are not used.
* **The guest's own credentials.** A guest's requests reach the owner's server through the hub's proxy
  with a token of the *guest's* hub user, scoped to the owner's server (``access:servers!server=
  <owner>/``, which the hub grants only while the share exists) and expiring with the grant; made once
  per grant and web process, kept in memory, deleted when the grant ends. The owner's token never
  serves a guest, and no token leaves the site. The owner's server believes the signed person only
  with the token the request carries (``server/hub_identity.py``).
* **The owner's server stopping** ends its grants: the site deletes every share of the server when it
  stops it, and when it starts it afresh (a server the hub's culler stopped).
"""
import threading
import time
from urllib.parse import quote

from pyramid_notebook.backends.hub.api import HubError, hub_username
from pyramid_notebook.core.shares import is_principal, utcnow

#: The note of a guest's token in the hub's token list.
GUEST_TOKEN_NOTE = "pyramid_notebook: a guest of a shared notebook"
#: A guest's token is made anew when it has less than this many seconds left.
TOKEN_MARGIN = 5


class HubShares:
    """The hub backend's half about grants (a mixin of :class:`~pyramid_notebook.backends.hub.backend.HubBackend`)."""

    def _init_shares(self):
        self._guest_tokens = {}   # (hub guest, hub owner, grant id) -> (token, token id, expires at)
        self._joined = set()      # (hub owner, hub guest, grant id) shared through a principal grant here
        self._shares_lock = threading.Lock()

    @staticmethod
    def _shares_path(hub_owner) -> str:
        return f"shares/{quote(hub_owner, safe='')}/"  # the default server: an empty server name

    def hub_shares(self, hub_owner) -> list:
        """The hub's shares of the owner's default server (the API's share models); [] if it never ran."""
        shares, offset = [], 0
        while True:
            status, data = self.api("GET", f"{self._shares_path(hub_owner)}?offset={offset}&limit=200",
                                    headers={"Accept": "application/jupyterhub-pagination+json"})
            if status == 404:
                return shares
            if status != 200:
                raise HubError(status, self._message(status, data))
            shares.extend(data["items"])
            following = (data.get("_pagination") or {}).get("next")
            if not following:
                return shares
            offset = following["offset"]

    def _share_with(self, hub_owner, hub_guest) -> None:
        self._ensure_user(hub_guest)
        status, data = self.api("POST", self._shares_path(hub_owner), body={"user": hub_guest})
        if status != 200:
            raise HubError(status, self._message(status, data))

    def _unshare(self, hub_owner, hub_guest) -> None:
        status, data = self.api("PATCH", self._shares_path(hub_owner), body={"user": hub_guest})
        if status not in (200, 404):
            raise HubError(status, self._message(status, data))

    def delete_all_shares(self, hub_owner) -> None:
        """Delete every share of the owner's server (it stopped: its grants ended)."""
        status, data = self.api("DELETE", self._shares_path(hub_owner))
        if status not in (204, 404):
            raise HubError(status, self._message(status, data))
        with self._shares_lock:
            self._joined = {key for key in self._joined if key[0] != hub_owner}

    def sync_shares(self, owner, grants) -> None:
        """Make the hub's shares of ``owner``'s server what their live ``grants`` want (see the module);
        delete this process's guest tokens of grants that are no longer live."""
        hub_owner = hub_username(owner)
        wanted = {hub_username(g.recipient) for g in grants if not is_principal(g.recipient)}
        live = {g.id for g in grants}
        principals_live = any(is_principal(g.recipient) for g in grants)
        existing = {share["user"]["name"] for share in self.hub_shares(hub_owner) if share.get("user")}
        for hub_guest in sorted(wanted - existing):
            self._share_with(hub_owner, hub_guest)
        if not principals_live:
            for hub_guest in sorted(existing - wanted):
                self._unshare(hub_owner, hub_guest)
        with self._shares_lock:
            self._joined = {key for key in self._joined if key[0] != hub_owner or key[2] in live}
            ended = [(key, value) for key, value in self._guest_tokens.items()
                     if key[1] == hub_owner and key[2] not in live]
            for key, _ in ended:
                del self._guest_tokens[key]
        for (hub_guest, _, _), (_, token_id, _) in ended:
            self._delete_token(hub_guest, token_id)

    def _delete_token(self, hub_guest, token_id) -> None:
        status, data = self.api("DELETE", f"{self._user_path(hub_guest)}/tokens/{quote(token_id, safe='')}")
        if status not in (204, 404):
            raise HubError(status, self._message(status, data))

    def guest_context(self, owner, guest, grant, running) -> dict:
        """``running`` with the guest's own token for the owner's server instead of the owner's."""
        hub_owner, hub_guest = hub_username(owner), hub_username(guest)
        if is_principal(grant.recipient) and (hub_owner, hub_guest, grant.id) not in self._joined:
            self._share_with(hub_owner, hub_guest)  # a holder of the principal joins for the first time
            with self._shares_lock:
                self._joined.add((hub_owner, hub_guest, grant.id))
        return dict(running, token=self._guest_token(hub_guest, hub_owner, grant))

    def _guest_token(self, hub_guest, hub_owner, grant) -> str:
        key = (hub_guest, hub_owner, grant.id)
        cached = self._guest_tokens.get(key)
        if cached and cached[2] > time.time() + TOKEN_MARGIN:
            return cached[0]
        seconds = int((grant.expires - utcnow()).total_seconds()) + 1
        body = {"scopes": [f"access:servers!server={hub_owner}/"], "note": GUEST_TOKEN_NOTE,
                "expires_in": max(TOKEN_MARGIN * 2, min(seconds, self.token_lifetime))}
        status, data = self.api("POST", self._user_path(hub_guest) + "/tokens", body=body)
        if status == 400 and not is_principal(grant.recipient):
            # The share is gone (deleted by hand, or the server was restarted by someone else): the
            # grant is live, so share again once.
            self._share_with(hub_owner, hub_guest)
            status, data = self.api("POST", self._user_path(hub_guest) + "/tokens", body=body)
        if status != 201:
            raise HubError(status, self._message(status, data))
        with self._shares_lock:
            self._guest_tokens[key] = (data["token"], data["id"], time.time() + body["expires_in"])
        return data["token"]
