"""The audit trail (issue 22) through the relays and on the JupyterHub backend: the notebook server
records what the site never sees (nginx accel mode) and what runs on another machine (the hub's servers).
"""
import datetime
import json
import os

import pytest

from pyramid_notebook.core import audit
from tests.helpers import KernelChannel
from tests.test_audit import check_cells_recorded, check_no_secret, cli, open_kernel, run_both_protocols, ws_base


# --- the relays: the site (or nginx) carries the websockets -----------------------------------


class _Relay:
    """One way of serving the demo with relayed websockets: ``url``, ``folder``, ``stop()``."""

    def __init__(self, mode, tmp_path):
        from tests import test_accel, test_uwsgi

        self.stops = []
        if mode in ("uwsgi", "nginx-uwsgi"):
            if not os.path.exists(test_uwsgi.UWSGI):
                pytest.skip("needs uWSGI (pip install -e .[test])")
            server = test_uwsgi.UWSGIServer(tmp_path)
            self.stops.append(server.stop)
            self.url, self.folder = server.url, server.notebook_folder
            if mode == "nginx-uwsgi":
                if not os.path.exists(test_uwsgi.NGINX):
                    pytest.skip("needs nginx (scripts/test installs it)")
                nginx = test_uwsgi.Nginx(tmp_path, server.port)
                self.stops.append(nginx.stop)
                self.url = nginx.url
        elif mode == "asgi":
            from pyramid.paster import get_app

            from tests.conftest import write_demo_ini
            from tests.test_asgi import UvicornThread

            self.folder = str(tmp_path / "notebooks")
            os.makedirs(self.folder)
            ini = write_demo_ini(tmp_path, self.folder, **{
                "pyramid_notebook.websocket_proxy": "pyramid_notebook.relays.asgi_app.serve_websocket"})
            server = UvicornThread(get_app(ini, "main")).__enter__()
            self.stops.append(lambda: server.__exit__(None, None, None))
            self.url = server.url
        else:  # nginx accel mode: nginx relays, the site never sees the websocket's bytes
            stack = test_accel.Stack("waitress", tmp_path)
            self.stops.append(stack.stop)
            self.url, self.folder = stack.url, stack.folder

    def stop(self):
        from tests.helpers import stop_all_notebooks

        stop_all_notebooks(self.folder)
        for stop in reversed(self.stops):
            stop()


@pytest.mark.parametrize("mode", ["uwsgi", "nginx-uwsgi", "asgi", "accel"])
def test_cells_are_recorded_through_every_relay(mode, tmp_path):
    relay = _Relay(mode, tmp_path)
    try:
        before = datetime.datetime.now(datetime.timezone.utc)
        _, location, kernel, cookie = open_kernel(relay.url)
        codes = run_both_protocols(relay.url, kernel, cookie, ws_base(relay.url), mode)
        # uWSGI's own http11-socket gives the app REMOTE_ADDR 0.0.0.0; nginx in front says who it was.
        check_cells_recorded(relay.folder, codes, location.rsplit("/", 1)[1], kernel, before,
                             client=None if mode == "uwsgi" else "127.0.0.1")
        from pyramid_notebook.backends.local.manager import NotebookManager

        check_no_secret(relay.folder, NotebookManager(relay.folder).get_notebook_status("user"), cookie)
        assert cli("verify", relay.folder).returncode == 0
    finally:
        relay.stop()


# --- the JupyterHub backend: recorded where the single-user server runs -----------------------


def test_cells_are_recorded_on_the_hub(tmp_path):
    from tests import test_hub
    from tests.hubhelpers import CHP, JUPYTERHUB, Hub, WebNode

    if not (os.path.exists(JUPYTERHUB) and os.path.exists(CHP)):
        pytest.skip("needs jupyterhub and configurable-http-proxy (scripts/test installs them)")
    hub = Hub(tmp_path)
    node = None
    try:
        node = WebNode(tmp_path, hub, "node1", "pserve")
        s = test_hub.session(node)
        location = test_hub.launch(s, node)
        ws_url = test_hub.open_kernel(s, node, location)
        channel = KernelChannel(ws_url, origin=test_hub.ORIGIN, cookie=test_hub.cookie_header(s), host=test_hub.PUBLIC)
        try:
            assert channel.execute("'on the hub ' + str(6 * 7)") == "'on the hub 42'"
        finally:
            channel.close()
        # The spawner's root folder for the user (hub/jupyterhub_config.py: PYRAMID_NOTEBOOK_FOLDER/<user>).
        users = tmp_path / "hub-users"
        stream = users / "user" / audit.HUB_AUDIT_FOLDER / audit.AUDIT_FILE_NAME
        cell = [r for r in audit.read_records(str(stream)) if r.get("kind") == "execute"]
        assert [r["code"] for r in cell] == ["'on the hub ' + str(6 * 7)"]
        assert cell[0]["user"] == "user" and cell[0]["notebook"] == location.rsplit("/", 1)[1]
        shown = cli("show", str(users), "--json")
        assert "'on the hub ' + str(6 * 7)" in [json.loads(line).get("code") for line in shown.stdout.splitlines()]
        assert cli("verify", str(users)).returncode == 0
        # The contents API (the file browser) does not serve it.
        r = s.get(node.url + "/notebook/user/user/api/contents/.pyramid_notebook/audit.jsonl")
        assert r.status_code == 404
    finally:
        if node is not None:
            node.stop()
        hub.stop()
