"""Open another context's shell in a user's running server, instead of restarting it.

Both backends call :func:`open_shell` when a launch's server part matches the running server's
(:func:`pyramid_notebook.core.contextparts.same_server`) but its notebook part differs. It asks
the server's own endpoint (``server/shells.py``), over the same route and with the same secret
the site's proxy uses, plus a proof no browser request carries (an HMAC of the body under the
server's per-start key, :func:`shell_key`), to register the context and start its welcome notebook's kernel; the
launch returns once that kernel's session exists, as it waits for the warm kernel's.
"""
import json
import secrets

import urllib3

from pyramid_notebook.core.contextparts import SHELLS_ENDPOINT, SHELLS_PROOF_HEADER, notebook_part, shells_proof


class ShellOpenError(RuntimeError):
    """The running server did not open the shell; ``status`` is its HTTP answer (0: no answer)."""

    def __init__(self, message, status=0):
        super().__init__(message)
        self.status = status


def shell_context(running: dict, context: dict, notebook_name: str) -> dict:
    """The running server's context, as the launch of ``context`` sees it: its own notebook and hash."""
    opened = dict(running)
    opened.update(notebook_part(context), notebook_name=notebook_name)
    return opened


def shell_key(running: dict) -> str:
    """The key of the server's proof: the hub's per-start ``shell_key``, or the local daemon's secret."""
    return running.get("shell_key") or running.get("token") or ""


def open_shell(http: urllib3.PoolManager, running: dict, context: dict, timeout: float = 60.0) -> dict:
    """Open ``context``'s shell in the server ``running`` describes; return :func:`shell_context`.

    Raises :class:`ShellOpenError` if the server cannot be reached or refuses.
    """
    url = (f"http://{running.get('http_host') or '127.0.0.1'}:{running['http_port']}"
           f"{running.get('notebook_path') or '/notebook/'}{SHELLS_ENDPOINT}")
    # Jupyter checks XSRF even with the secret (server/identity.py): a pair of our own making passes.
    xsrf = secrets.token_hex(16)
    body = json.dumps(notebook_part(context)).encode()
    try:
        r = http.request("POST", url, body=body,
                         headers={"Authorization": "token " + running.get("token", ""),
                                  "Content-Type": "application/json", "Cookie": "_xsrf=" + xsrf,
                                  "X-XSRFToken": xsrf,
                                  # What no browser request carries (the relays add the secret to all).
                                  SHELLS_PROOF_HEADER: shells_proof(shell_key(running), body),
                                  # No pooled socket outlives the notebook (CLOSE_WAIT) after it stops.
                                  "Connection": "close"},
                         timeout=urllib3.Timeout(connect=5, read=timeout), redirect=False)
    except urllib3.exceptions.HTTPError as e:
        raise ShellOpenError(f"The notebook server did not answer ({e.__class__.__name__}).") from None
    if r.status != 201:
        raise ShellOpenError(f"The notebook server could not open this shell (HTTP {r.status}).", r.status)
    try:
        name = json.loads(r.data)["notebook_name"]
    except (ValueError, KeyError, TypeError):
        raise ShellOpenError("The notebook server gave an unusable answer.", r.status) from None
    return shell_context(running, context, name)
