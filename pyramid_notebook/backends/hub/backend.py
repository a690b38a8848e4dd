"""The JupyterHub backend: users' notebooks are JupyterHub servers, driven over its REST API.

Select it with ``pyramid_notebook.backend = jupyterhub``; see the README ("Past one machine").

Every decision is taken from what the hub reports, never from local state, so any number of web
nodes agree without talking to each other:

* launch: the hub user is created if missing; a *ready* server whose ``user_options`` carry our
  ``context_hash`` is reused; one with the same ``server_hash`` opens this context's shell beside
  the others (:mod:`pyramid_notebook.backends.shells`); one with another server part is stopped and
  started again; a stopped one
  is started with the context as ``user_options`` and waited for through the hub's progress API
  (``startup_timeout``). The hub's ``active_server_limit`` answer (429) becomes our
  "No notebook slot free" page, a failed spawn an error page quoting the hub's message, a hub
  that cannot be reached a 503 page.
* proxy: the site reaches the user's server through the hub's proxy (configurable-http-proxy)
  with a token it created for that user, scoped to that one server
  (``access:servers!server=<user>/``) and kept in memory by each web process. The browser never
  sees it, and never needs a hub login or the hub's address.

The site's service token (``pyramid_notebook.hub_api_token``) needs the scopes ``admin:users``
(create users), ``servers`` (start, stop, read servers) and ``tokens`` (per-user tokens), and for
shared sessions ``shares``, ``read:shares``, ``read:users:name`` and ``access:servers`` (a share
grants access the sharer must hold: :mod:`pyramid_notebook.backends.hub.shares`); the shipped
``hub/jupyterhub_config.py`` grants exactly those.
"""
import json
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlsplit

import urllib3

from pyramid_notebook.backends.base import BackendUnavailable, NotebookBackend, NotebookStartError, TooManyNotebooks
from pyramid_notebook.backends.hub.api import (  # noqa: F401 (names of this module before the split)
    OPTIONS_KEY, TIMEOUT, HubError, HubRestClient, HubUnavailable, hub_username, options_context, server_state,
)
from pyramid_notebook.backends.hub.shares import HubShares
from pyramid_notebook.backends.shells import ShellOpenError, open_shell
from pyramid_notebook.backends.status import get_status
from pyramid_notebook.core.context import site_context
from pyramid_notebook.core.contextparts import default_notebook_name, same_server


class HubBackend(HubShares, HubRestClient, NotebookBackend):
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
        HubRestClient.__init__(self, (api_url or self.hub_url + "hub/api/").rstrip("/") + "/", api_token,
                               token_lifetime)
        self.startup_timeout = float(startup_timeout)
        self.kill_timeout = int(kill_timeout)
        self.idle_timeout = int(idle_timeout)
        self.status_ttl = float(status_ttl)
        self._status = {}   # hub user -> (checked at, context or None)
        self._other_shells = set()  # hub users whose last shell this process opened is not the server's own
        self._locks = {}
        self._locks_lock = threading.Lock()
        # A warm launch probes the server while it reads the hub's model (see _warm_probe).
        self._probes = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pyramid-notebook-hub-probe")
        self._init_shares()

    @classmethod
    def from_settings(cls, settings):
        """Build the backend from :class:`~pyramid_notebook.core.settings.NotebookSettings`."""
        return cls(settings.hub_url, settings.hub_api_token, api_url=settings.hub_api_url,
                   startup_timeout=settings.startup_timeout, kill_timeout=settings.kill_timeout,
                   idle_timeout=settings.idle_timeout)

    # --- contexts ----------------------------------------------------------

    def notebook_path(self, hub_user) -> str:
        """The URL path of the user's server: ``<hub base_url>user/<hub user>/``."""
        return f"{self.base_path}user/{quote(hub_user, safe='')}/"

    def _options(self, name, context) -> dict:
        """What goes to the hub as ``user_options``: the context without runtime keys or secrets."""
        options = site_context(context, self.kill_timeout, self.idle_timeout)
        options["notebook_name"] = default_notebook_name(context)
        options["username"] = name
        # The key of the site's proof when it opens another shell in this server (backends/shells.py):
        # per start, known to the hub and the site, never sent to a browser (the proxy adds the user's
        # hub token to every request, so that token proves nothing there).
        options["shell_key"] = secrets.token_urlsafe(32)
        return options

    def _running_context(self, hub_user, model):
        """The proxy's context for a ready server the site started, else None."""
        options = options_context(model)
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
        return get_status(self.proxy_host, self.proxy_port, notebook_path, token,
                          timeout=urllib3.Timeout(connect=2, read=10), http=self._http) is not None

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
                # Another shell of the same server part opens beside the others (backends/shells.py).
                same = options_context(model).get("context_hash") == options["context_hash"] or \
                    same_server(options_context(model), options)
                if state == "ready" and same:
                    running = self._running_context(hub_user, model)
                    answers = probe[1].result() if probe and probe[0] == running["token"] else self._answers(running)
                    if answers:
                        self._status[hub_user] = (time.monotonic(), running)  # what the hub said just now
                        return self._shell(running, context), False
                    self._stop(hub_user)  # the hub thinks it runs, but it does not answer
                elif state == "spawning" and same:
                    running, created = self._started(hub_user, self._wait_until_ready(hub_user, deadline))
                    return self._shell(running, context), created
                elif state in ("ready", "spawning"):
                    self._stop(hub_user)  # another context: restart
                elif state == "stopping":
                    self._wait_until_stopped(hub_user)
                elif self._spawn(hub_user, options):
                    self._end_shares(hub_user)  # shares of a server that stopped without us (the culler)
                    return self._started(hub_user, self._wait_until_ready(hub_user, deadline))
                probe = None  # only the first look at the model may use the early probe
                if time.monotonic() > deadline:
                    raise NotebookStartError(f"The notebook server did not start within {self.startup_timeout:g} s.")

    def _shell(self, running, context):
        """``running`` itself, or ``context``'s shell opened in it if that is another context.

        The server's own shell also goes through the server after this process opened another
        one, so that it becomes the shell new notebooks start with again (``server/shells.py``).
        """
        hub_user = running["hub_user"]
        if running.get("context_hash") == context.get("context_hash") and hub_user not in self._other_shells:
            return running
        try:
            opened = open_shell(self._http, running, context, timeout=self.startup_timeout)
        except ShellOpenError as e:
            raise NotebookStartError(str(e)) from None
        if running.get("context_hash") == context.get("context_hash"):
            self._other_shells.discard(hub_user)
        else:
            self._other_shells.add(hub_user)
        return opened

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
        self._end_shares(hub_user)
        return True

    def _end_shares(self, hub_user) -> None:
        """The server stopped, which ends its grants: delete its shares (a failure is logged, the stop stands)."""
        try:
            self.delete_all_shares(hub_user)
        except BackendUnavailable as e:
            logging.getLogger(__name__).warning("Could not delete the shares of %r's stopped server: %s", hub_user, e)

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
        options = options_context(model)
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
                options = options_context(model)
                rows.append({"user": options.get("username") or user["name"], "hub_user": user["name"],
                             "alive": server_state(model) == "ready", "state": server_state(model),
                             "started": (model or {}).get("started"), "last_activity": (model or {}).get("last_activity"),
                             "context_hash": options.get("context_hash"), "url": (model or {}).get("url")})
            following = (data.get("_pagination") or {}).get("next")
            if not following:
                return rows
            offset = following["offset"]

    def notebook_inventory(self, cpu=True) -> list:
        """Every hub user's server with kernels and memory (see :mod:`pyramid_notebook.backends.hub.inventory`); CPU is the servers' own."""
        from pyramid_notebook.backends.hub.inventory import hub_inventory

        return hub_inventory(self, server_state, options_context)

    def stop_all(self) -> list:
        """Stop every active server on the hub; ``[(hub user, stopped?)]``."""
        return [(row["hub_user"], self._stop(row["hub_user"])) for row in self.list_notebooks()]
