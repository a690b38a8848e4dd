"""Jupyter's ``api/status``, asked with the notebook's secret: does a server answer, and since when is it idle.

One probe for every caller (the local backend's readiness wait, the hub backend's check of a ready
server, the operators' listing), so they agree on the URL and on what counts as an answer.
"""
import json

import urllib3

_POOL = urllib3.PoolManager(retries=False)


def status_url(host: str, port, notebook_path: str) -> str:
    """The ``api/status`` URL of the server at ``host:port`` under ``notebook_path``."""
    return f"http://{host}:{int(port)}{notebook_path or '/notebook/'}api/status"


def get_status(host: str, port, notebook_path: str, token: str, timeout: float = 3.0, http=None):
    """The server's status (``{"last_activity": ..., "kernels": ..., ...}``), or ``None`` when it does not answer."""
    headers = {"Authorization": f"token {token or ''}"}
    if http is None:
        # The shared pool keeps no socket open to a notebook that may stop (it would linger in
        # CLOSE_WAIT): callers with a pool of their own close its idle sockets themselves.
        headers["Connection"] = "close"
    try:
        r = (http or _POOL).request("GET", status_url(host, port, notebook_path), headers=headers,
                                    timeout=timeout if isinstance(timeout, urllib3.Timeout) else
                                    urllib3.Timeout(connect=timeout, read=timeout), redirect=False)
    except urllib3.exceptions.HTTPError:
        return None
    if r.status != 200:
        return None
    try:
        answer = json.loads(r.data)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None
