"""The site's calls about guests to an owner's running notebook server (issue 31, joining).

``POST <notebook_path>pyramid-notebook/guests`` (``server/guests.py``), with the server's secret and the
proof no browser request carries (:func:`pyramid_notebook.core.guests.guests_proof`, under the same key as
the shells endpoint's): revoke a grant (its guests' websockets close at once), or ask who is connected.
"""
import json
import secrets

import urllib3

from pyramid_notebook.backends.shells import shell_key
from pyramid_notebook.core.contextparts import SHELLS_PROOF_HEADER
from pyramid_notebook.core.guests import GUESTS_ENDPOINT, guests_proof

_HTTP = urllib3.PoolManager(num_pools=4, maxsize=2, retries=False)


class GuestsCallError(RuntimeError):
    """The notebook server did not answer the site's call about guests."""


def _call(running: dict, body: dict, timeout: float) -> dict:
    url = (f"http://{running.get('http_host') or '127.0.0.1'}:{running['http_port']}"
           f"{running.get('notebook_path') or '/notebook/'}{GUESTS_ENDPOINT}")
    xsrf = secrets.token_hex(16)  # Jupyter checks XSRF even with the secret (server/identity.py)
    data = json.dumps(body).encode()
    try:
        r = _HTTP.request("POST", url, body=data, redirect=False, timeout=urllib3.Timeout(connect=2, read=timeout),
                          headers={"Authorization": "token " + running.get("token", ""),
                                   "Content-Type": "application/json", "Cookie": "_xsrf=" + xsrf,
                                   "X-XSRFToken": xsrf, SHELLS_PROOF_HEADER: guests_proof(shell_key(running), data),
                                   "Connection": "close"})
    except urllib3.exceptions.HTTPError as e:
        raise GuestsCallError(f"The notebook server did not answer ({e.__class__.__name__}).") from None
    if r.status != 200:
        raise GuestsCallError(f"The notebook server refused the call (HTTP {r.status}).")
    try:
        answer = json.loads(r.data)
    except ValueError:
        raise GuestsCallError("The notebook server gave an unusable answer.") from None
    if not isinstance(answer, dict):
        raise GuestsCallError("The notebook server gave an unusable answer.")
    return answer


def revoke_guests(running: dict, grant_id: str, timeout: float = 5.0) -> int:
    """Tell the server ``grant_id`` ended: it closes its guests' websockets and refuses them. Returns how
    many websockets it closed."""
    return int(_call(running, {"revoke": grant_id}, timeout).get("closed") or 0)


def active_guests(running: dict, timeout: float = 2.0) -> dict:
    """``{grant id: [user ids with an open websocket]}`` of the server ``running`` describes."""
    found = _call(running, {"active": True}, timeout).get("active")
    return found if isinstance(found, dict) else {}
