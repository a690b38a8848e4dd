"""The operator console on the JupyterHub backend: the hub's users and their servers' own APIs."""
import os

import pytest
import requests

from tests.helpers import KernelChannel, wait_for
from tests.hubhelpers import CHP, JUPYTERHUB, Hub, WebNode
from tests.test_admin import metric_values
from tests.test_hub import ORIGIN, PUBLIC, cookie_header, launch, open_kernel, session

pytestmark = [
    pytest.mark.skipif(not (os.path.exists(JUPYTERHUB) and os.path.exists(CHP)),
                       reason="needs jupyterhub and configurable-http-proxy (scripts/test installs them)"),
    pytest.mark.timeout(900),
]
TOKEN = "hub-metrics-token"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    hub = Hub(tmp_path_factory.mktemp("hub"))
    hub.env.update(PYRAMID_NOTEBOOK_MEMORY_LIMIT="512M", PYRAMID_NOTEBOOK_METRICS_TOKEN=TOKEN)
    started = None
    try:
        started = WebNode(tmp_path_factory.mktemp("nodes"), hub, "node1", "pserve")
        yield hub, started
    finally:
        if started is not None:
            started.stop()
        hub.stop()


def test_console_lists_hub_servers_with_kernels_and_memory(node):
    hub, web = node
    s = session(web)
    location = launch(s, web)
    channel = KernelChannel(open_kernel(s, web, location), origin=ORIGIN, cookie=cookie_header(s), host=PUBLIC)
    try:
        # The user's limit reaches the hub's server and its kernels.
        assert channel.execute("import resource; resource.getrlimit(resource.RLIMIT_DATA)[0]") == str(512 * 2 ** 20)
    finally:
        channel.close()

    def row():
        rows = {r["user"]: r for r in s.get(web.url + "/notebook-admin/", headers={"Accept": "application/json"}).json()}
        found = rows.get("user")
        return found if found and found["kernels"] and found["memory"] else None
    found = wait_for(row, timeout=60, interval=0.5, message="the hub user's server in the console")
    assert found["running"] is True and found["state"] == "ready"
    assert found["shell"] == "Shell 2" and found["memory_limit"] == 512 * 2 ** 20
    assert found["memory"] > 10 * 2 ** 20 and found["kernels"][0]["notebooks"] == [location.rsplit("/", 1)[1]]
    r = requests.get(web.url + "/notebook-admin/metrics", headers={"Authorization": "Bearer " + TOKEN, "Host": PUBLIC})
    values = metric_values(r.text)
    assert values[("pyramid_notebook_running_notebooks", frozenset())] >= 1
    assert values[("pyramid_notebook_memory_bytes", frozenset({("user", "user")}))] > 0
    assert values[("pyramid_notebook_launches_total", frozenset({("backend", "jupyterhub")}))] == 1
    # user2 is no administrator.
    assert session(web, "user2").get(web.url + "/notebook-admin/").status_code == 403
