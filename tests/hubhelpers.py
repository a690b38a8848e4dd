"""A real JupyterHub (hub/jupyterhub_config.py) and real web nodes serving hub.ini, on free loopback ports."""
import os
import signal
import subprocess
import sys

import psutil
import requests

from tests.helpers import free_port, wait_for

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
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/notebook/"
        self.state = tmp_path / "hub-state"
        config = tmp_path / "jupyterhub_test_config.py"
        config.write_text(OVERLAY)
        self.env = dict(os.environ, PYRAMID_NOTEBOOK_HUB_PORT=str(self.port),
                        PYRAMID_NOTEBOOK_HUB_API_PORT=str(free_port()),
                        PYRAMID_NOTEBOOK_HUB_PROXY_API_PORT=str(free_port()),
                        PYRAMID_NOTEBOOK_HUB_API_TOKEN=HUB_TOKEN, PYRAMID_NOTEBOOK_HUB_STATE=str(self.state),
                        PYRAMID_NOTEBOOK_FOLDER=str(tmp_path / "hub-users"),
                        PYRAMID_NOTEBOOK_MAX_NOTEBOOKS=str(max_notebooks))
        self.log_path = tmp_path / "hub.log"
        self.log = open(self.log_path, "wb")
        # Started from a folder of its own: the config must not depend on the working folder.
        self.proc = subprocess.Popen([JUPYTERHUB, "-f", str(config)], cwd=tmp_path, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        # 200 from the hub itself: its proxy answers 404 before the hub has added its own route.
        wait_for(lambda: self.proc.poll() is not None or _answers(self.url + "hub/api/", 200), timeout=120,
                 message="JupyterHub to answer")
        assert self.proc.poll() is None, self.log_path.read_text(errors="replace")[-3000:]

    def backend(self):
        """A HubBackend of our own, as a web node has (the admin's view in tests)."""
        from pyramid_notebook.backends.hub.backend import HubBackend

        return HubBackend(self.url, HUB_TOKEN, startup_timeout=180)

    def stop(self):
        """Stop the hub by pid; it stops its servers (cleanup_servers), the proxy and the culler."""
        children = psutil.Process(self.proc.pid).children(recursive=True)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        _, alive = psutil.wait_procs(children, timeout=20)
        for p in alive:
            p.kill()
        self.log.close()


class WebNode:
    """One web node: ``pserve hub.ini`` (or ``uwsgi --ini hub.ini``) on its own port, own processes."""

    def __init__(self, tmp_path, hub, name, command="pserve"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(hub.env, PYRAMID_NOTEBOOK_DEMO_PORT=str(self.port),
                   PYRAMID_NOTEBOOK_FRAME_ANCESTORS=f"'self' {FRAMER}")
        self.log_path = tmp_path / f"{name}.log"
        self.log = open(self.log_path, "wb")
        ini = os.path.join(ROOT, "hub.ini")
        cmd = [os.path.join(BIN, "pserve"), ini] if command == "pserve" else \
            [os.path.join(BIN, "uwsgi"), "--ini", os.path.join(ROOT, "hub", "uwsgi.ini")]
        self.proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.proc.poll() is not None or _answers(self.url + "/login"), timeout=90,
                 message=f"web node {name} to serve")
        assert self.proc.poll() is None, self.log_path.read_text(errors="replace")[-3000:]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)  # die-on-term: the uWSGI master stops its workers
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
