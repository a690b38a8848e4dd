"""The JupyterHub backend: users' notebooks are JupyterHub servers, driven over its REST API.

Select it with ``pyramid_notebook.backend = jupyterhub``; see the README ("Past one machine").

Every decision is taken from what the hub reports, never from local state, so any number of web
nodes agree without talking to each other:

* launch: the hub user is created if missing; a *ready* server whose ``user_options`` carry our
  ``context_hash`` is reused; one with another hash is stopped and started again; a stopped one
  is started with the context as ``user_options`` and waited for through the hub's progress API
  (``startup_timeout``). The hub's ``active_server_limit`` answer (429) becomes our
  "No notebook slot free" page, a failed spawn an error page quoting the hub's message, a hub
  that cannot be reached a 503 page.
* proxy: the site reaches the user's server through the hub's proxy (configurable-http-proxy)
  with a token it created for that user, scoped to that one server
  (``access:servers!server=<user>/``) and kept in memory by each web process. The browser never
  sees it, and never needs a hub login or the hub's address.

The site's service token (``pyramid_notebook.hub_api_token``) needs the scopes ``admin:users``
(create users), ``servers`` (start, stop, read servers) and ``tokens`` (per-user tokens); the
shipped ``hub/jupyterhub_config.py`` grants exactly those.
"""
import hashlib
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlsplit

import urllib3

from pyramid_notebook.backends.base import BackendUnavailable, NotebookBackend
from pyramid_notebook.backends.local.manager import RUNTIME_KEYS, NotebookStartError, TooManyNotebooks
from pyramid_notebook.server.notebook_daemon import default_notebook_name
from pyramid_notebook.core.names import BadUsername, username_to_folder_name

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


def _options_context(model) -> dict:
    options = (model or {}).get("user_options") or {}
    context = options.get(OPTIONS_KEY) if isinstance(options, dict) else None
    return context if isinstance(context, dict) else {}


class HubBackend(NotebookBackend):
    """Run users' notebooks as JupyterHub servers (see the module docstring).

    :param hub_url: the hub's public URL through its proxy, with its ``base_url``, e.g.
        ``http://127.0.0.1:8000/notebook/``. Its path must be the path of the site's
        ``notebook_proxy`` route: the users' servers live at ``<path>user/<name>/``, so no
        path is rewritten between the browser, the site and the hub.
    :param api_token: the site's service token.
    :param api_url: where the site calls the REST API; default ``<hub_url>hub/api/``.
    """

    def __init__(self, hub_url, api_token, api_url="", startup_timeout=60.0, kill_timeout=3600, idle_timeout=0,
                 status_ttl=2.0, token_lifetime=86400):
        self.hub_url = hub_url.rstrip("/") + "/"
        parts = urlsplit(self.hub_url)
        self.base_path = parts.path
        self.proxy_host = parts.hostname or "127.0.0.1"
        self.proxy_port = parts.port or (443 if parts.scheme == "https" else 80)
        self.api_url = (api_url or self.hub_url + "hub/api/").rstrip("/") + "/"
        self.api_token = api_token
        self.startup_timeout = float(startup_timeout)
        self.kill_timeout = int(kill_timeout)
        self.idle_timeout = int(idle_timeout)
        self.status_ttl = float(status_ttl)
        self.token_lifetime = int(token_lifetime)
        self._http = urllib3.PoolManager(maxsize=16, retries=False, timeout=TIMEOUT)
        self._tokens = {}   # hub user -> (token, expires at): never leaves this process
        self._status = {}   # hub user -> (checked at, context or None)
        self._locks = {}
        self._locks_lock = threading.Lock()
        # A warm launch probes the server while it reads the hub's model (see _warm_probe).
        self._probes = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pyramid-notebook-hub-probe")

    @classmethod
    def from_settings(cls, settings):
        """Build the backend from :class:`~pyramid_notebook.core.settings.NotebookSettings`."""
        return cls(settings.hub_url, settings.hub_api_token, api_url=settings.hub_api_url,
                   startup_timeout=settings.startup_timeout, kill_timeout=settings.kill_timeout,
                   idle_timeout=settings.idle_timeout)

    # --- the REST API ------------------------------------------------------

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

    # --- contexts ----------------------------------------------------------

    def notebook_path(self, hub_user) -> str:
        """The URL path of the user's server: ``<hub base_url>user/<hub user>/``."""
        return f"{self.base_path}user/{quote(hub_user, safe='')}/"

    def _options(self, name, context) -> dict:
        """What goes to the hub as ``user_options``: the context without runtime keys or secrets."""
        options = {k: v for k, v in context.items() if k not in RUNTIME_KEYS}
        options["kill_timeout"] = int(options.get("kill_timeout") or self.kill_timeout)
        options.setdefault("idle_timeout", self.idle_timeout)
        options["notebook_name"] = default_notebook_name(context)
        options["username"] = name
        return options

    def _running_context(self, hub_user, model):
        """The proxy's context for a ready server the site started, else None."""
        options = _options_context(model)
        if server_state(model) != "ready" or not options.get("context_hash"):
            return None
        context = dict(options)
        context.update(http_host=self.proxy_host, http_port=self.proxy_port, token=self.user_token(hub_user),
                       notebook_path=self.notebook_path(hub_user), hub_user=hub_user, started=model.get("started"),
                       websocket_url="")
        return context

    def _answers(self, context) -> bool:
        """True if the server answers through the hub's proxy with the user's token."""
        return self._probe(context["notebook_path"], context["token"])

    def _probe(self, notebook_path, token) -> bool:
        url = f"http://{self.proxy_host}:{self.proxy_port}{notebook_path}api/status"
        try:
            r = self._http.request("GET", url, headers={"Authorization": f"token {token}"},
                                   timeout=urllib3.Timeout(connect=2, read=10), redirect=False)
        except urllib3.exceptions.HTTPError:
            return False
        return r.status == 200

    def _warm_probe(self, hub_user):
        """``(token, future answer of api/status)`` started now, or None without a token yet.

        Path and token are known before the hub's model arrives, so a warm launch asks both at once.
        The answer counts only if the model says "ready, same context" and the token is unchanged.
        """
        cached = self._tokens.get(hub_user)
        if not cached or cached[1] <= time.time() + 300:
            return None
        return cached[0], self._probes.submit(self._probe, self.notebook_path(hub_user), cached[0])

    def _lock(self, hub_user):
        with self._locks_lock:
            return self._locks.setdefault(hub_user, threading.Lock())

    # --- the backend interface ------------------------------------------------

    def start_notebook_on_demand(self, name, context):
        """Reuse, restart or start the user's hub server so that it runs ``context``; see the module docstring."""
        hub_user = hub_username(name)
        options = self._options(name, context)
        deadline = time.monotonic() + self.startup_timeout
        with self._lock(hub_user):
            self._status.pop(hub_user, None)
            probe = self._warm_probe(hub_user)
            while True:
                model = self.server_model(hub_user)
                if model is None:
                    self._ensure_user(hub_user)
                state = server_state(model)
                same = _options_context(model).get("context_hash") == options["context_hash"]
                if state == "ready" and same:
                    running = self._running_context(hub_user, model)
                    answers = probe[1].result() if probe and probe[0] == running["token"] else self._answers(running)
                    if answers:
                        self._status[hub_user] = (time.monotonic(), running)  # what the hub said just now
                        return running, False
                    self._stop(hub_user)  # the hub thinks it runs, but it does not answer
                elif state == "spawning" and same:
                    return self._started(hub_user, self._wait_until_ready(hub_user, deadline))
                elif state in ("ready", "spawning"):
                    self._stop(hub_user)  # another context: restart
                elif state == "stopping":
                    self._wait_until_stopped(hub_user)
                elif self._spawn(hub_user, options):
                    return self._started(hub_user, self._wait_until_ready(hub_user, deadline))
                probe = None  # only the first look at the model may use the early probe
                if time.monotonic() > deadline:
                    raise NotebookStartError(f"The notebook server did not start within {self.startup_timeout:g} s.")

    def _started(self, hub_user, running):
        self._status[hub_user] = (time.monotonic(), running)
        return running, True

    def _spawn(self, hub_user, options) -> bool:
        """Ask the hub to start the server; False if another web node got there first."""
        status, data = self.api("POST", self._user_path(hub_user) + "/server", body={"user_options": {OPTIONS_KEY: options}})
        if status in (201, 202):
            return True
        message = self._message(status, data)
        if status == 429:
            raise TooManyNotebooks(f"JupyterHub has as many notebooks running as it allows: {message}")
        if status == 400 and ("already running" in message or "pending" in message):
            return False
        if status >= 500:  # the spawn failed while the hub answered; its progress API says why
            message = self._failure(hub_user) or message
        raise NotebookStartError(f"JupyterHub could not start the notebook server: {message}")

    def _failure(self, hub_user) -> str:
        """The hub's message about the user's last failed spawn, or ''."""
        try:
            r = self._http.request("GET", self.api_url + self._user_path(hub_user) + "/server/progress",
                                   headers={"Authorization": f"token {self.api_token}", "Accept": "text/event-stream"},
                                   timeout=urllib3.Timeout(connect=3, read=10))
        except urllib3.exceptions.HTTPError:
            return ""
        events = [json.loads(line[5:]) for line in r.data.decode("utf-8", "replace").splitlines()
                  if line.startswith("data:")] if r.status == 200 else []
        return next((e.get("message", "") for e in reversed(events) if e.get("failed")), "")

    def _wait_until_ready(self, hub_user, deadline):
        """Follow the hub's progress events until the server is ready (or has failed)."""
        remaining = max(1.0, deadline - time.monotonic())
        try:
            r = self._http.request("GET", self.api_url + self._user_path(hub_user) + "/server/progress",
                                   headers={"Authorization": f"token {self.api_token}", "Accept": "text/event-stream"},
                                   preload_content=False, timeout=urllib3.Timeout(connect=3, read=remaining))
        except urllib3.exceptions.HTTPError as e:
            raise HubUnavailable(f"JupyterHub at {self.api_url} cannot be reached ({e.__class__.__name__}).") from e
        last = ""
        try:
            for line in r.stream(1024) if r.status == 200 else ():
                for text in line.decode("utf-8", "replace").splitlines():
                    if not text.startswith("data:"):
                        continue
                    event = json.loads(text[5:])
                    last = event.get("message") or last
                    if event.get("failed"):
                        raise NotebookStartError(f"JupyterHub could not start the notebook server: {last}")
                    if event.get("ready"):
                        break
                else:
                    continue
                break
        except urllib3.exceptions.ReadTimeoutError:
            raise NotebookStartError(f"The notebook server did not start within {self.startup_timeout:g} s. "
                                     f"The hub's last word: {last or 'none'}") from None
        except urllib3.exceptions.HTTPError as e:
            raise HubUnavailable(f"JupyterHub stopped answering while the notebook started ({e}).") from e
        finally:
            r.release_conn()
        model = self.server_model(hub_user)
        context = self._running_context(hub_user, model)
        if context is None:
            raise NotebookStartError(f"JupyterHub could not start the notebook server: {last or server_state(model)}")
        # The route through the hub's proxy exists once the hub says ready; make sure it answers.
        while not self._answers(context):
            if time.monotonic() > deadline:
                raise NotebookStartError("The notebook server started but does not answer through the hub's proxy.")
            time.sleep(0.05)
        return context

    def _stop(self, hub_user) -> bool:
        status, data = self.api("DELETE", self._user_path(hub_user) + "/server")
        self._status.pop(hub_user, None)
        if status == 404:
            return False
        if status not in (202, 204):
            raise HubError(status, self._message(status, data))
        self._wait_until_stopped(hub_user)
        return True

    def _wait_until_stopped(self, hub_user, timeout=60.0):
        deadline = time.monotonic() + timeout
        while server_state(self.server_model(hub_user)) != "stopped":
            if time.monotonic() > deadline:
                raise HubError(504, f"the server of {hub_user} did not stop within {timeout:g} s")
            time.sleep(0.05)  # polling the hub, as its own clients do; no event for "stopped"

    def stop_notebook(self, name) -> bool:
        """Stop the user's hub server; True if it was running or starting. Their files stay."""
        hub_user = hub_username(name)
        with self._lock(hub_user):
            if server_state(self.server_model(hub_user)) == "stopped":
                self._status.pop(hub_user, None)
                return False
            return self._stop(hub_user)

    def get_notebook_status(self, name):
        """The running server's context, asked of the hub at most every ``status_ttl`` seconds."""
        hub_user = hub_username(name)
        cached = self._status.get(hub_user)
        if cached and time.monotonic() - cached[0] < self.status_ttl:
            return cached[1]
        context = self._running_context(hub_user, self.server_model(hub_user))
        self._status[hub_user] = (time.monotonic(), context)
        return context

    def get_context(self, name):
        """The context the user's server was last started with, or None."""
        model = self.server_model(hub_username(name))
        options = _options_context(model)
        return dict(options, state=server_state(model)) if options else None

    def is_running(self, name) -> bool:
        """True if the hub reports the user's server ready or starting."""
        return server_state(self.server_model(hub_username(name))) in ("ready", "spawning")

    def list_notebooks(self) -> list:
        """Every hub user with an active server (paginated through the hub's API)."""
        rows, offset = [], 0
        while True:
            status, data = self.api("GET", f"users?state=active&offset={offset}&limit=200",
                                    headers={"Accept": "application/jupyterhub-pagination+json"})
            if status != 200:
                raise HubError(status, self._message(status, data))
            for user in data["items"]:
                model = (user.get("servers") or {}).get("")
                options = _options_context(model)
                rows.append({"user": options.get("username") or user["name"], "hub_user": user["name"],
                             "alive": server_state(model) == "ready", "state": server_state(model),
                             "started": (model or {}).get("started"), "last_activity": (model or {}).get("last_activity"),
                             "context_hash": options.get("context_hash"), "url": (model or {}).get("url")})
            following = (data.get("_pagination") or {}).get("next")
            if not following:
                return rows
            offset = following["offset"]

    def notebook_inventory(self, cpu=True) -> list:
        """Every hub user's server with kernels and memory (see :mod:`.inventory`); CPU is the servers' own."""
        from pyramid_notebook.backends.hub.inventory import hub_inventory

        return hub_inventory(self, server_state, _options_context)

    def stop_all(self) -> list:
        """Stop every active server on the hub; ``[(hub user, stopped?)]``."""
        return [(row["hub_user"], self._stop(row["hub_user"])) for row in self.list_notebooks()]
