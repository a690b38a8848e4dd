"""A notebook context has two parts: what the server runs with, and what one notebook starts with.

The **server part** is everything a running Jupyter server cannot change without a restart:
time-outs, the allowed origin and framing, the websocket URL, template paths, the base path,
the shutdown URL, and any key a site adds that this library does not know. The **notebook
part** (:data:`NOTEBOOK_KEYS`: the ``startup`` script, the ``greeting`` and the ``shell_name`` the
operator console shows) only says how one shell's kernel and welcome notebook start.

A launch whose server part matches the running server's opens that context's own welcome
notebook, ``default-<context hash>.ipynb``, with its own kernel in the running server
(``server/shells.py``); only a change of the server part restarts the server.
"""
from pyramid_notebook.core.names import make_dict_hash

#: Keys that belong to one notebook (its kernel and welcome notebook), not to the server.
NOTEBOOK_KEYS = ("startup", "greeting", "shell_name")
#: Context key: hash of the server part (see :func:`server_hash`).
SERVER_HASH_KEY = "server_hash"
#: Keys that are hashes of the context itself, never part of either hash.
HASH_KEYS = ("context_hash", SERVER_HASH_KEY)
#: Path, under the server's base URL, of the endpoint that opens a shell in a running server.
SHELLS_ENDPOINT = "pyramid-notebook/shells"
#: Path, under the server's base URL, of every endpoint the library's server extensions add: the
#: site's own calls only, never a browser's (:func:`is_server_only_path`, :func:`shells_proof`).
SERVER_ONLY_PREFIX = "pyramid-notebook/"
#: Header carrying :func:`shells_proof` on the site's own ``POST`` to :data:`SHELLS_ENDPOINT`.
SHELLS_PROOF_HEADER = "X-Pyramid-Notebook-Proof"


def shells_proof(key: str, body: bytes) -> str:
    """HMAC-SHA256 of a shells request's body under the server's per-start key.

    The relays add the per-start secret to every browser request as ``Authorization``, so that header
    proves nothing here; this proof is computed by the site itself and no browser request carries it.
    """
    import hashlib
    import hmac

    return hmac.new(key.encode(), SHELLS_ENDPOINT.encode() + b"\0" + bytes(body), hashlib.sha256).hexdigest()


def is_server_only_path(path: str, notebook_path: str) -> bool:
    """True if the (decoded) request ``path`` reaches the library's endpoints under ``notebook_path``.

    Compared after collapsing repeated slashes, resolving dot segments and ignoring case, so that no
    spelling a server might route there slips past; refusing a stranger spelling is harmless.
    """
    import posixpath
    from urllib.parse import unquote

    def normal(p):
        p = unquote(unquote(p)).lstrip("/")  # (normpath keeps a leading "//")
        return posixpath.normpath("/" + p).lower().rstrip("/") + "/"

    return normal(path).startswith(normal((notebook_path or "/") + SERVER_ONLY_PREFIX))


def server_hash(context: dict, runtime_keys=()) -> str:
    """Hash of the server part of a filled-in ``context`` (without ``runtime_keys``)."""
    skip = set(NOTEBOOK_KEYS) | set(HASH_KEYS) | set(runtime_keys)
    return make_dict_hash({k: v for k, v in context.items() if k not in skip})


def notebook_part(context: dict) -> dict:
    """What one shell needs: its ``context_hash`` and the notebook keys."""
    part = {k: context.get(k) or "" for k in NOTEBOOK_KEYS}
    part["context_hash"] = context.get("context_hash") or ""
    return part


def context_digest(context_hash) -> str:
    """The short form of a context hash that names its welcome notebook and startup script."""
    return str(context_hash or "")[:8]


def default_notebook_name(context: dict) -> str:
    """``default-<hash>.ipynb``: one welcome notebook per distinct context."""
    digest = context_digest(context.get("context_hash"))
    return f"default-{digest}.ipynb" if digest else "default.ipynb"


def same_server(running, context) -> bool:
    """True if ``context`` can open in the server running with ``running`` without a restart."""
    wanted = context.get(SERVER_HASH_KEY)
    return bool(running and wanted and running.get(SERVER_HASH_KEY) == wanted)
