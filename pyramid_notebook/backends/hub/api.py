"""JupyterHub's REST API as the hub backend uses it: calls, the server model, per-user tokens, names.

Runs in the web process. :class:`HubRestClient` is the half of
:class:`~pyramid_notebook.backends.hub.backend.HubBackend` that talks to the hub; the command line
uses the same calls.
"""
import hashlib
import json
import re
import time
from urllib.parse import quote

import urllib3

from pyramid_notebook.backends.base import BackendUnavailable
from pyramid_notebook.core.names import username_to_folder_name

#: Key in the server's ``user_options`` holding the notebook context (read by the spawn hook).
OPTIONS_KEY = "pyramid_notebook"
#: Hub usernames used as they are; anything else gets a slug and a hash (JupyterHub lowercases).
_PLAIN_HUB_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
TIMEOUT = urllib3.Timeout(connect=3.0, read=30.0)


class HubUnavailable(BackendUnavailable):
    """The hub (or its proxy) cannot be reached or does not answer properly."""


class HubError(BackendUnavailable):
    """The hub refused a request it should have taken; ``status`` and the hub's own ``message``."""

    def __init__(self, status, message):
        super().__init__(f"JupyterHub answered {status}: {message}")
        self.status = status
        self.message = message


def hub_username(name) -> str:
    """The hub user of site user ``name``: the name itself if it is plain lower case, else a slug
    and a hash (JupyterHub lowercases names, so ``Alice`` and ``alice`` must not meet).

    Raises :class:`~pyramid_notebook.core.names.BadUsername` for names no notebook can belong to.
    """
    username_to_folder_name(name)  # the same checks as the local backend: empty, control characters, length
    # A plain name never contains "--", which marks the hashed form: no user can pick another's.
    if _PLAIN_HUB_NAME.match(name) and ".." not in name and "--" not in name:
        return name
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]
    return f"{slug or 'user'}--{hashlib.sha256(name.encode('utf-8')).hexdigest()[:16]}"


def server_state(model) -> str:
    """``"stopped"``, ``"spawning"``, ``"ready"`` or ``"stopping"`` from a hub server model."""
    if not model or model.get("stopped") and not model.get("pending"):
        return "stopped"
    if model.get("pending") == "stop":
        return "stopping"
    if model.get("pending"):
        return "spawning"
    return "ready" if model.get("ready") else "stopped"


def options_context(model) -> dict:
    """The notebook context the site sent with a server (its ``user_options``), or ``{}``."""
    options = (model or {}).get("user_options") or {}
    context = options.get(OPTIONS_KEY) if isinstance(options, dict) else None
    return context if isinstance(context, dict) else {}


class HubRestClient:
    """Calls to the hub's REST API with the site's service token, and the per-user tokens it makes.

    :param api_url: the API's URL, ending in ``/``.
    :param api_token: the site's service token.
    """

    def __init__(self, api_url, api_token, token_lifetime=86400):
        self.api_url = api_url
        self.api_token = api_token
        self.token_lifetime = int(token_lifetime)
        self._http = urllib3.PoolManager(maxsize=16, retries=False, timeout=TIMEOUT)
        self._tokens = {}   # hub user -> (token, expires at): never leaves this process

    def api(self, method, path, body=None, headers=None, **kw):
        """``(status, parsed JSON or None)`` of one REST call; :class:`HubUnavailable` if unreachable."""
        all_headers = {"Authorization": f"token {self.api_token}", "Accept": "application/json"}
        all_headers.update(headers or {})
        if body is not None:
            all_headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        try:
            r = self._http.request(method, self.api_url + path, body=body, headers=all_headers, **kw)
        except urllib3.exceptions.HTTPError as e:
            raise HubUnavailable(f"JupyterHub at {self.api_url} cannot be reached ({e.__class__.__name__}).") from e
        if r.status in (502, 503, 504):
            raise HubUnavailable(f"JupyterHub at {self.api_url} does not answer (its proxy says {r.status}).")
        try:
            data = json.loads(r.data) if r.data else None
        except ValueError:
            data = None
        if r.status in (401, 403) and path != "user":
            raise HubUnavailable(f"JupyterHub refused the site's API token ({r.status}): check "
                                 "pyramid_notebook.hub_api_token and the service's scopes.")
        return r.status, data

    @staticmethod
    def _message(status, data) -> str:
        return (data or {}).get("message") if isinstance(data, dict) and data.get("message") else f"HTTP {status}"

    def _user_path(self, hub_user) -> str:
        return "users/" + quote(hub_user, safe="")

    def server_model(self, hub_user):
        """The hub's model of the user's default server, or None if the user has none."""
        status, data = self.api("GET", self._user_path(hub_user) + "/server")
        if status == 404:
            return None
        if status != 200:
            raise HubError(status, self._message(status, data))
        return data

    def _ensure_user(self, hub_user):
        status, data = self.api("POST", self._user_path(hub_user))
        if status not in (201, 409):  # 409: another web node created it first
            raise HubError(status, self._message(status, data))

    def user_token(self, hub_user) -> str:
        """A token that reaches only this user's server, made once per process and kept in memory."""
        cached = self._tokens.get(hub_user)
        if cached and cached[1] > time.time() + 300:
            return cached[0]
        status, data = self.api("POST", self._user_path(hub_user) + "/tokens", body={
            "scopes": [f"access:servers!server={hub_user}/"], "expires_in": self.token_lifetime,
            "note": "pyramid_notebook: the site's proxy to this user's notebook"})
        if status != 201:
            raise HubError(status, self._message(status, data))
        self._tokens[hub_user] = (data["token"], time.time() + self.token_lifetime)
        return data["token"]
