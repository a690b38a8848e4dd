"""The operator console (/notebook-admin/) and its metrics, on the real demo in waitress with real notebooks."""
import re

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import CLICK, KernelChannel, login, wait_for

ADMIN = "/notebook-admin/"
JSON = {"Accept": "application/json"}
METRICS_TOKEN = "scraper-secret-123"


def launch(session, base_url, shell="shell1"):
    r = session.get(f"{base_url}/{shell}", allow_redirects=False, headers=CLICK)
    assert r.status_code == 302, r.text
    return r.headers["Location"]


def rows_by_user(session, base_url):
    r = session.get(base_url + ADMIN, headers=JSON)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    return {row["user"]: row for row in r.json()}


def with_warm_kernels(session, base_url, *users):
    """The rows once each user's warm kernel shows, with its notebook."""
    def ready():
        rows = rows_by_user(session, base_url)
        if all(rows.get(u, {}).get("kernels") and rows[u]["kernels"][0]["notebooks"] for u in users):
            return rows
        return None
    return wait_for(ready, timeout=60, interval=0.5, message="the warm kernels in the console")


def csrf_token(session, base_url):
    page = session.get(base_url + ADMIN)
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def metric_values(text):
    """``{(name, frozenset(labels)): value}`` of a Prometheus text page, parsed by prometheus_client."""
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return values


def test_console_lists_every_users_notebook_with_kernels_and_memory(make_demo_server):
    server = make_demo_server(**{"pyramid_notebook.metrics_token": METRICS_TOKEN})
    admin, other = login(server.url, "user"), login(server.url, "user2")
    launch(admin, server.url, "shell1")
    launch(other, server.url, "shell2")
    rows = with_warm_kernels(admin, server.url, "user", "user2")
    for user, shell in (("user", "Shell 1"), ("user2", "Shell 2")):
        row = rows[user]
        assert row["running"] is True and row["state"] == "running"
        assert row["memory"] > 10 * 2 ** 20, row  # a Jupyter server and an IPython kernel
        assert row["memory_kind"] in ("pss", "rss")
        assert row["shell"] == shell
        assert row["started"] and row["last_activity"]
        kernel = row["kernels"][0]
        assert kernel["execution_state"] in ("idle", "busy", "starting")
        assert kernel["notebooks"][0].startswith("default-") and kernel["memory"] > 0
        assert row["cpu_percent"] is not None
        assert "token" not in row and server.manager.get_notebook_status(user)["token"] not in repr(row)

    page = admin.get(server.url + ADMIN)
    assert page.status_code == 200 and 'id="notebook-admin-table"' in page.text
    assert '"user": "user2"' in page.text and 'id="audit"' in page.text
    assert page.headers["X-Frame-Options"] == "DENY"

    # Metrics: both launches counted with their duration, the running notebooks and their memory.
    r = requests.get(server.url + ADMIN + "metrics", headers={"Authorization": "Bearer " + METRICS_TOKEN})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    values = metric_values(r.text)
    assert values[("pyramid_notebook_launches_total", frozenset({("backend", "local")}))] == 2
    assert values[("pyramid_notebook_launch_duration_seconds_count", frozenset({("backend", "local")}))] == 2
    assert values[("pyramid_notebook_running_notebooks", frozenset())] == 2
    assert values[("pyramid_notebook_memory_bytes", frozenset({("user", "user")}))] > 0
    assert values[("pyramid_notebook_memory_bytes", frozenset({("user", "user2")}))] > 0
    assert sum(v for (name, _), v in values.items() if name == "pyramid_notebook_kernels") >= 2
    assert ("pyramid_notebook_open_websockets", frozenset()) in values
    # A relaunch of a running notebook is not a launch; a proxied request is counted.
    launch(admin, server.url, "shell1")
    admin.get(server.url + "/notebook/api/status")
    values = metric_values(admin.get(server.url + ADMIN + "metrics").text)
    assert values[("pyramid_notebook_launches_total", frozenset({("backend", "local")}))] == 2
    assert values[("pyramid_notebook_proxied_requests_total", frozenset({("kind", "http")}))] >= 1


def test_console_is_for_administrators_only(make_demo_server):
    server = make_demo_server(**{"pyramid_notebook.metrics_token": METRICS_TOKEN})
    user2 = login(server.url, "user2")
    for path in ("", "stop", "stop-idle", "metrics"):
        assert user2.get(server.url + ADMIN + path).status_code == 403, path
        assert user2.get(server.url + ADMIN + path, headers=JSON).status_code == 403, path
    assert user2.post(server.url + ADMIN + "stop", data={"user": "user"}).status_code == 403
    # Anonymous browsers go to the login page; anonymous scrapers without the token get 403.
    r = requests.get(server.url + ADMIN, headers={"Accept": "text/html"}, allow_redirects=False)
    assert r.status_code == 302 and "/login?came_from=/notebook-admin/" in r.headers["Location"]
    assert requests.get(server.url + ADMIN, headers=JSON).status_code == 403
    assert requests.get(server.url + ADMIN + "metrics").status_code == 403
    assert requests.get(server.url + ADMIN + "metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert requests.get(server.url + ADMIN + "metrics",
                        headers={"Authorization": "Bearer " + METRICS_TOKEN}).status_code == 200
    assert login(server.url, "user").get(server.url + ADMIN + "metrics").status_code == 200


def test_no_console_without_admin_principals(make_demo_server):
    server = make_demo_server(**{"pyramid_notebook.admin_principals": ""})
    assert login(server.url, "user").get(server.url + ADMIN).status_code == 404


def test_stop_takes_a_post_with_the_csrf_token(make_demo_server):
    server = make_demo_server()
    admin, other = login(server.url, "user"), login(server.url, "user2")
    launch(other, server.url)
    token = csrf_token(admin, server.url)
    stop = server.url + ADMIN + "stop"
    # A GET, a POST without the token, and a cross-site POST (even with the token) stop nothing.
    r = admin.get(stop, params={"user": "user2"}, headers=CLICK)
    assert r.status_code == 200 and "pyramid-notebook-confirm" in r.text
    r = admin.post(stop, data={"user": "user2"}, headers=CLICK)
    assert r.status_code == 200 and "pyramid-notebook-confirm" in r.text
    r = admin.post(stop, data={"user": "user2", "csrf_token": token},
                   headers={"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"})
    assert r.status_code == 200 and "pyramid-notebook-confirm" in r.text
    r = admin.post(stop, data={"user": "user2", "csrf_token": "forged"}, headers={"Origin": server.url})
    assert r.status_code == 200 and "pyramid-notebook-confirm" in r.text
    assert server.manager.is_running("user2")
    # The console's own POST stops it.
    r = admin.post(stop, data={"user": "user2", "csrf_token": token}, headers=dict(JSON, Origin=server.url))
    assert r.status_code == 200 and r.json()["stopped"] == ["user2"], r.text
    assert not server.manager.is_running("user2")
    row = rows_by_user(admin, server.url)["user2"]
    assert row["running"] is False and row["kernels"] == []
    # A form POST without JavaScript goes back to the console.
    launch(other, server.url)
    r = admin.post(stop, data={"user": "user2", "csrf_token": token}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"].endswith(ADMIN)
    assert not server.manager.is_running("user2")


def test_stop_all_idle_spares_a_busy_notebook(make_demo_server):
    server = make_demo_server()
    admin, other = login(server.url, "user"), login(server.url, "user2")
    admin.get(launch(admin, server.url))  # the notebook page gives the session the notebook's cookie
    launch(other, server.url)
    rows = with_warm_kernels(admin, server.url, "user", "user2")
    # user's kernel runs a long cell: busy.
    port = server.manager.get_notebook_status("user")["http_port"]
    cookie = "; ".join(f"{c.name}={c.value}" for c in admin.cookies if c.path.startswith("/notebook"))
    channel = KernelChannel(f"ws://127.0.0.1:{port}/notebook/api/kernels/{rows['user']['kernels'][0]['id']}/channels",
                            origin=server.url, cookie=cookie)
    try:
        channel.send("shell", "execute_request", {"code": "import time; time.sleep(120)", "silent": False,
                                                  "store_history": False, "user_expressions": {},
                                                  "allow_stdin": False, "stop_on_error": True})
        wait_for(lambda: rows_by_user(admin, server.url)["user"]["kernels"][0]["execution_state"] == "busy",
                 timeout=60, interval=0.5, message="user's kernel to be busy")
        wait_for(lambda: rows_by_user(admin, server.url)["user2"]["kernels"][0]["execution_state"] != "busy",
                 timeout=60, interval=0.5, message="user2's kernel not to be busy")
        token = csrf_token(admin, server.url)
        r = admin.get(server.url + ADMIN + "stop-idle", headers=CLICK)
        assert r.status_code == 200 and server.manager.is_running("user2"), "a GET stops nothing"
        r = admin.post(server.url + ADMIN + "stop-idle", data={"csrf_token": token}, headers=JSON)
        assert r.json()["stopped"] == ["user2"], r.text
        assert server.manager.is_running("user") and not server.manager.is_running("user2")
    finally:
        channel.close()
