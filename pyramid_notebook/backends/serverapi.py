"""What a running notebook server says about itself: its status, kernels and their notebooks.

Asked with the server's secret (``Authorization: token ...``) from the web process, for the
admin console (:mod:`pyramid_notebook.web.admin`); each backend knows where the server is and
which token it takes. Short timeouts: a server that does not answer is shown as such, never
waited for.
"""
import json

import urllib3

_TIMEOUT = urllib3.Timeout(connect=1, read=3)


def _get(http, base_url, token, path):
    try:
        # Connection: close: no pooled socket outlives a notebook that stops (CLOSE_WAIT).
        r = http.request("GET", base_url + path, headers={"Authorization": "token " + (token or ""),
                                                          "Connection": "close"},
                         timeout=_TIMEOUT, retries=False, redirect=False)
    except urllib3.exceptions.HTTPError:
        return None
    if r.status != 200:
        return None
    try:
        return json.loads(r.data)
    except ValueError:
        return None


def server_report(http, base_url, token) -> dict:
    """``{"answers", "last_activity", "kernels", "metrics"}`` of the server at ``base_url``.

    ``base_url`` is the server's address with its base path (``http://127.0.0.1:29001/notebook/``).
    ``kernels``: one dict per kernel with ``id``, ``name``, ``execution_state`` (busy/idle/...),
    ``last_activity``, ``connections`` and ``notebooks`` (the paths of its sessions).
    ``metrics``: jupyter-resource-usage's ``api/metrics/v1`` answer, or None.
    """
    status = _get(http, base_url, token, "api/status")
    if status is None:
        return {"answers": False, "last_activity": None, "kernels": [], "metrics": None}
    kernels = _get(http, base_url, token, "api/kernels") or []
    sessions = _get(http, base_url, token, "api/sessions") or []
    notebooks = {}
    for session in sessions:
        kernel_id = (session.get("kernel") or {}).get("id")
        if kernel_id:
            notebooks.setdefault(kernel_id, []).append(session.get("path") or session.get("name") or "")
    rows = [{"id": k.get("id"), "name": k.get("name"), "execution_state": k.get("execution_state"),
             "last_activity": k.get("last_activity"), "connections": k.get("connections", 0),
             "notebooks": notebooks.get(k.get("id"), [])} for k in kernels if isinstance(k, dict)]
    return {"answers": True, "last_activity": status.get("last_activity"), "kernels": rows,
            "metrics": _get(http, base_url, token, "api/metrics/v1")}


def shell_name(context) -> str:
    """What the admin page calls the shell a context runs: its ``shell_name``, else its greeting's
    first line, else the start of its hash."""
    context = context or {}
    if context.get("shell_name"):
        return str(context["shell_name"])
    for line in str(context.get("greeting") or "").splitlines():
        text = line.strip(" *#-`").replace("**", "").strip()
        if text:
            return text[:80]
    digest = str(context.get("context_hash") or "")
    return f"context {digest[:8]}" if digest else ""
