"""JupyterHub for pyramid_notebook, spawning local processes:  jupyterhub -f hub/jupyterhub_config.py

Works from any working folder. Everything listens on 127.0.0.1 only. Environment:

PYRAMID_NOTEBOOK_HUB_PORT        the hub's proxy (configurable-http-proxy), default 8000; the site's
                                 pyramid_notebook.hub_url is http://127.0.0.1:<port>/notebook/
PYRAMID_NOTEBOOK_HUB_API_TOKEN   the site's service token; default: the development token below,
                                 which hub.ini uses too. Set your own secret anywhere but a laptop:
                                 `openssl rand -hex 32` (32+ characters are checked as a random key).
PYRAMID_NOTEBOOK_HUB_STATE       folder for the hub's database, cookie secret and logs
                                 (default: hub/state beside this file)
PYRAMID_NOTEBOOK_FOLDER          the users' folders: <folder>/<hub user> (default: <state>/users)
PYRAMID_NOTEBOOK_HUB_API_PORT    the hub's own port (default 8081), and
PYRAMID_NOTEBOOK_HUB_PROXY_API_PORT  the proxy's API port (default: hub port + 1)
PYRAMID_NOTEBOOK_IDLE_TIMEOUT    seconds: jupyterhub-idle-culler stops idle servers (default 1800, 0: off)
PYRAMID_NOTEBOOK_KILL_TIMEOUT    seconds: ... and servers older than this (default 3600, 0: off)
PYRAMID_NOTEBOOK_MAX_NOTEBOOKS   active_server_limit: more launches get the site's 503 page (default 20)

The users never log in to the hub (no authenticator lets anyone in): the site drives it through
the REST API with its service token and proxies each user to their own server. Docker and
Kubernetes variants: docs/hub.rst.
"""
import os
import shutil
import sys

from pyramid_notebook.hubside.spawn import SINGLEUSER_CMD, pre_spawn_hook

c = get_config()  # noqa: F821 (JupyterHub's config loader provides it)

#: The development default of PYRAMID_NOTEBOOK_HUB_API_TOKEN (hub.ini uses the same). Not a secret.
DEVELOPMENT_TOKEN = "pyramid-notebook-development-token-not-a-secret"
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
env = os.environ.get
port = int(env("PYRAMID_NOTEBOOK_HUB_PORT") or 8000)
state = os.path.abspath(env("PYRAMID_NOTEBOOK_HUB_STATE") or os.path.join(here, "state"))
users = os.path.abspath(env("PYRAMID_NOTEBOOK_FOLDER") or os.path.join(state, "users"))
os.makedirs(state, mode=0o700, exist_ok=True)
os.makedirs(users, mode=0o700, exist_ok=True)

# Loopback only: the hub's proxy, the hub itself and the proxy's API. base_url is the path of the
# site's notebook_proxy route, so user servers live at /notebook/user/<name>/ and no path is rewritten.
c.JupyterHub.bind_url = f"http://127.0.0.1:{port}/notebook/"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{int(env('PYRAMID_NOTEBOOK_HUB_API_PORT') or 8081)}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(env('PYRAMID_NOTEBOOK_HUB_PROXY_API_PORT') or port + 1)}"
# configurable-http-proxy from npm, as scripts/install-node-packages installs it into .venv/node.
chp = os.path.join(root, ".venv", "node", "node_modules", ".bin", "configurable-http-proxy")
c.ConfigurableHTTPProxy.command = [chp if os.path.exists(chp) else shutil.which("configurable-http-proxy")
                                   or "configurable-http-proxy"]

c.JupyterHub.db_url = "sqlite:///" + os.path.join(state, "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(state, "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = os.path.join(state, "jupyterhub.pid")
c.JupyterHub.authenticator_class = "null"  # nobody logs in to the hub; the site is a service

# The site's service: create users, start/stop/read their servers, make per-user tokens; share a
# user's server with another (shared sessions: a share grants access the sharer must hold itself).
c.JupyterHub.services = [{"name": "pyramid-notebook",
                          "api_token": env("PYRAMID_NOTEBOOK_HUB_API_TOKEN") or DEVELOPMENT_TOKEN}]
c.JupyterHub.load_roles = [{"name": "pyramid-notebook", "services": ["pyramid-notebook"],
                            "scopes": ["admin:users", "servers", "tokens", "shares", "read:shares",
                                       "read:users:name", "access:servers"]}]
# The site calls the hub on every launch. A token from the config is hashed like a password
# (16384 SHA-512 rounds, ~2 ms of the hub's time per call) unless it is trusted to be a random
# key; a long one is (make it with `openssl rand -hex 32`), a short one keeps the stretching.
c.JupyterHub.trust_user_provided_tokens = len(env("PYRAMID_NOTEBOOK_HUB_API_TOKEN") or DEVELOPMENT_TOKEN) >= 32

# max_notebooks: the hub refuses more running servers (429), which the site shows as its 503 page.
c.JupyterHub.active_server_limit = int(env("PYRAMID_NOTEBOOK_MAX_NOTEBOOKS") or 20)

# idle_timeout and kill_timeout, hub-wide, by jupyterhub-idle-culler. (Each server also enforces
# the context's own values itself, so a per-notebook override works with any hub.)
idle, kill = int(env("PYRAMID_NOTEBOOK_IDLE_TIMEOUT") or 1800), int(env("PYRAMID_NOTEBOOK_KILL_TIMEOUT") or 3600)
if idle or kill:
    c.JupyterHub.services.append({"name": "idle-culler", "command": [
        sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={idle or 10 ** 9}", f"--max-age={kill}",
        f"--cull-every={max(10, min(60, (idle or kill) // 4))}"]})
    c.JupyterHub.load_roles.append({"name": "idle-culler", "services": ["idle-culler"],
                                    "scopes": ["list:users", "read:users:activity", "read:servers",
                                               "delete:servers"]})

# Local processes, one folder per user. As root (this machine's case) they run as root too:
# SimpleLocalProcessSpawner does not switch users, and Jupyter needs --allow-root.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(users, "{username}")
c.Spawner.cmd = SINGLEUSER_CMD
c.Spawner.args = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
c.Spawner.pre_spawn_hook = pre_spawn_hook
# A Jupyter server takes 3 s to start on an idle 2-core box, and much longer on a busy one.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
# Notice a server that stopped itself (idle or kill timeout) within seconds.
c.Spawner.poll_interval = 10
