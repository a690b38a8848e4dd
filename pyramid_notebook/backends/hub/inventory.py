"""Every hub user's notebook for the admin console: the hub's REST API (``users``), then each
ready server's own API through the hub's proxy, with a token that reaches only that server.

Memory and CPU come from the server's jupyter-resource-usage (``api/metrics/v1``): the server
and its kernels, PSS where the server's system has it. The log is the spawner's, which the
hub does not serve: ``log_tail`` is empty.
"""
from pyramid_notebook.backends.base import BackendUnavailable
from pyramid_notebook.backends.serverapi import server_report, shell_name


def _all_users(backend):
    offset = 0
    while True:
        status, data = backend.api("GET", f"users?offset={offset}&limit=200",
                                   headers={"Accept": "application/jupyterhub-pagination+json"})
        if status != 200:
            raise BackendUnavailable(f"JupyterHub answered {status} to the list of users")
        yield from data["items"]
        following = (data.get("_pagination") or {}).get("next")
        if not following:
            return
        offset = following["offset"]


def hub_inventory(backend, server_state, options_context) -> list:
    """One row per hub user (see ``NotebookBackend.notebook_inventory``).

    ``server_state(model)`` and ``options_context(model)`` are the backend's readings of a hub
    server model (passed in: this module is imported by the backend, not the other way round).
    """
    rows = []
    for user in _all_users(backend):
        model = (user.get("servers") or {}).get("")
        options = options_context(model)
        state = server_state(model)
        row = {"user": options.get("username") or user["name"], "hub_user": user["name"],
               "running": state == "ready", "state": state, "started": (model or {}).get("started"),
               "last_activity": (model or {}).get("last_activity") or user.get("last_activity"),
               "shell": shell_name(options), "context_hash": options.get("context_hash"), "kernels": [],
               "memory": 0, "memory_kind": None, "memory_limit": int(options.get("memory_limit") or 0),
               "cpu_percent": None, "log_tail": []}
        if state == "ready":
            base_url = f"http://{backend.proxy_host}:{backend.proxy_port}{backend.notebook_path(user['name'])}"
            report = server_report(backend._http, base_url, backend.user_token(user["name"]))
            row["kernels"] = report["kernels"]
            row["last_activity"] = report["last_activity"] or row["last_activity"]
            metrics = report["metrics"] or {}
            if metrics:
                row["memory_kind"] = "pss" if metrics.get("pss") is not None else "rss"
                row["memory"] = int(metrics.get("pss") or metrics.get("rss") or 0)
                row["cpu_percent"] = metrics.get("cpu_percent")
        rows.append(row)
    return rows
