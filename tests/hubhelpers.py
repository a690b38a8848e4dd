"""A real JupyterHub (hub/jupyterhub_config.py) and real web nodes serving hub.ini, on free loopback ports."""
import os
import subprocess
import sys

import requests

from tests.helpers import free_port, serve_on_free_port, stop_process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
JUPYTERHUB = os.path.join(BIN, "jupyterhub")
CHP = os.path.join(ROOT, ".venv", "node", "node_modules", ".bin", "configurable-http-proxy")
HUB_TOKEN = "test-service-token-" + os.urandom(8).hex()
BROKEN_USER = "broken"
#: Another site page allowed to frame notebooks (pyramid_notebook.frame_ancestors of both web nodes).
FRAMER = "https://portal.example.test"

# The shipped config, plus one spawner that fails, so that a failed spawn can be tested.
OVERLAY = f'''
load_subconfig({os.path.join(ROOT, "hub", "jupyterhub_config.py")!r})
_shipped_hook = c.Spawner.pre_spawn_hook

def _hook(spawner):
    _shipped_hook(spawner)
    if spawner.user.name == {BROKEN_USER!r}:  # a server that exits at once
        spawner.cmd = [{sys.executable!r}, "-c", "raise SystemExit(3)"]
        spawner.http_timeout = 5

c.Spawner.pre_spawn_hook = _hook
'''


def _answers(url, status=None):
    try:
        code = requests.get(url, timeout=2, allow_redirects=False).status_code
        return code == status if status else code < 500
    except requests.RequestException:
        return False


class Hub:
    """``jupyterhub -f hub/jupyterhub_config.py`` (with the overlay) in a temporary state folder."""

    def __init__(self, tmp_path, max_notebooks=2):
        self.state = tmp_path / "hub-state"
        config = tmp_path / "jupyterhub_test_config.py"
        config.write_text(OVERLAY)
        self.log_path = tmp_path / "hub.log"
        self.log = open(self.log_path, "wb")

        def launch(port):
            self.env = dict(os.environ, PYRAMID_NOTEBOOK_HUB_PORT=str(port),
                            PYRAMID_NOTEBOOK_HUB_API_PORT=str(free_port()),
                            PYRAMID_NOTEBOOK_HUB_PROXY_API_PORT=str(free_port()),
                            PYRAMID_NOTEBOOK_HUB_API_TOKEN=HUB_TOKEN, PYRAMID_NOTEBOOK_HUB_STATE=str(self.state),
                            PYRAMID_NOTEBOOK_FOLDER=str(tmp_path / "hub-users"),
                            PYRAMID_NOTEBOOK_MAX_NOTEBOOKS=str(max_notebooks))
            # Started from a folder of its own: the config must not depend on the working folder.
            return subprocess.Popen([JUPYTERHUB, "-f", str(config)], cwd=tmp_path, env=self.env,
                                    stdout=self.log, stderr=subprocess.STDOUT)

        # 200 from the hub itself: its proxy answers 404 before the hub has added its own route.
        self.port, self.proc = serve_on_free_port(
            launch, lambda port: _answers(f"http://127.0.0.1:{port}/notebook/hub/api/", 200), timeout=300,
            message="JupyterHub to answer", log=lambda: self.log_path.read_text(errors="replace"),
            stop=lambda proc: self._stop(proc))
        self.url = f"http://127.0.0.1:{self.port}/notebook/"

    def backend(self):
        """A HubBackend of our own, as a web node has (the admin's view in tests)."""
        from pyramid_notebook.backends.hub.backend import HubBackend

        return HubBackend(self.url, HUB_TOKEN, startup_timeout=180)

    def stop(self):
        """Stop the hub by pid; it stops its servers (cleanup_servers), the proxy and the culler."""
        self._stop(self.proc)

    def _stop(self, proc):
        stop_process(proc, timeout=60)  # and, should they outlive it, its children by pid
        self.log.close()


class WebNode:
    """One web node: ``pserve hub.ini`` (or ``uwsgi --ini hub.ini``) on its own port, own processes."""

    def __init__(self, tmp_path, hub, name, command="pserve"):
        self.log_path = tmp_path / f"{name}.log"
        self.log = open(self.log_path, "wb")
        ini = os.path.join(ROOT, "hub.ini")
        cmd = [os.path.join(BIN, "pserve"), ini] if command == "pserve" else \
            [os.path.join(BIN, "uwsgi"), "--ini", os.path.join(ROOT, "hub", "uwsgi.ini")]

        def launch(port):
            env = dict(hub.env, PYRAMID_NOTEBOOK_DEMO_PORT=str(port),
                       PYRAMID_NOTEBOOK_FRAME_ANCESTORS=f"'self' {FRAMER}")
            return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=self.log, stderr=subprocess.STDOUT)

        self.port, self.proc = serve_on_free_port(
            launch, lambda port: _answers(f"http://127.0.0.1:{port}/login"), timeout=180,
            message=f"web node {name} to serve", log=lambda: self.log_path.read_text(errors="replace"),
            stop=lambda proc: self._stop(proc))
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self._stop(self.proc)

    def _stop(self, proc):
        stop_process(proc)  # die-on-term: the uWSGI master stops its workers
        self.log.close()
