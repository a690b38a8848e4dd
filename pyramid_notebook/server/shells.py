"""Jupyter server extension: several shells side by side in one server, each with its own kernel.

A site's shell buttons each describe a notebook context. Its notebook part (the startup
script and greeting, see :mod:`pyramid_notebook.core.contextparts`) is *registered* here:
the startup script is kept as ``<digest>.py`` in the contexts folder
(``$IPYTHONDIR/pyramid_notebook_contexts/``, the private state folder in local mode), and the
welcome notebook ``default-<digest>.ipynb`` is created once in the user's folder.

Every kernel runs one IPython profile startup file, :func:`dispatcher_script`, which picks the
startup script of *its* notebook: Jupyter starts a notebook's kernel with ``JPY_SESSION_NAME``
set to the notebook's path, so a kernel of ``default-<digest>.ipynb`` runs that context's
script, and any other notebook (one the user creates in the file browser, a copy, a renamed
one) runs the script of the shell opened last (the ``last`` file). Kernels of other contexts
are never touched, so no variable leaks from one shell to another.

The web process opens a shell in a running server with ``POST <base_url>pyramid-notebook/shells``
(the context's notebook part as JSON, authenticated with the server's secret like every
proxied request, and with a proof no browser request carries: an HMAC of the body under the
server's per-start key in :data:`~pyramid_notebook.core.contextparts.SHELLS_PROOF_HEADER`; without
it the endpoint answers 404, and the site's relays refuse every browser request under
``<base_url>pyramid-notebook/`` anyway): the context is registered and a session with a started kernel is made for
its welcome notebook (or the existing one is reused); the answer is the session's model with
``notebook_name``. The browser then finds that session, as it finds the warm kernel's.
"""
import hmac
import json
import os
import re

from pyramid_notebook.core.contextparts import (
    SHELLS_ENDPOINT, SHELLS_PROOF_HEADER, context_digest, default_notebook_name, shells_proof,
)
from pyramid_notebook.core.inkernel import MARK_LINE
from pyramid_notebook.server.kernel_start import ENTER_FOLDER
from pyramid_notebook.server.spare_kernel import DEFAULT_SPARE
from pyramid_notebook.server.config import (  # noqa: F401 (culling_config, WELCOME: importable from here too)
    WELCOME, culling_config, write_default_notebook, write_private,
)

#: Folder, in the IPython folder, holding one startup script per registered context.
CONTEXTS_FOLDER = "pyramid_notebook_contexts"
#: File in the contexts folder naming the digest of the shell opened last.
LAST_FILE = "last"
#: Key of the server's :class:`~pyramid_notebook.server.spare_kernel.SpareKernel` in the web app's settings.
SPARE_SETTING = "pyramid_notebook_spare_kernel"
#: Key of the site's proof key (``PyramidNotebook.shell_key``) in the web app's settings.
SHELL_KEY_SETTING = "pyramid_notebook_shell_key"
#: The profile startup file every kernel runs.
STARTUP_FILE = "00-pyramid-notebook.py"
_DIGEST = re.compile(r"^[0-9a-f]{8}$")

DISPATCHER = '''\
# pyramid_notebook: run the startup script of this notebook's shell (see pyramid_notebook/server/shells.py).
def _pyramid_notebook_startup(folder={folder!r}):
    import os
    import re
    if os.environ.get("PYRAMID_NOTEBOOK_SPARE_KERNEL"):  # started ahead; its shell runs the script (spare_kernel.py)
        return None
    name = os.path.basename(os.environ.get("JPY_SESSION_NAME") or "")
    match = re.fullmatch(r"default-([0-9a-f]{{8}})\\.ipynb", name)
    path = os.path.join(folder, match.group(1) + ".py") if match else ""
    if not os.path.isfile(path):  # not a shell's welcome notebook: the shell opened last
        try:
            with open(os.path.join(folder, "last"), encoding="utf-8") as f:
                path = os.path.join(folder, f.read().strip() + ".py")
        except OSError:
            return None
    try:
        with open(path, encoding="utf-8") as f:
            return compile(f.read(), path, "exec")
    except OSError:
        return None


# The kernel started in a private folder (server/kernel_start.py); it enters the notebook's folder once
# the site's startup ran, even if that failed. A spare kernel does so when a shell claims it.
import os as _pyramid_notebook_os
if not _pyramid_notebook_os.environ.get("PYRAMID_NOTEBOOK_SPARE_KERNEL"):
    _pyramid_notebook_code = _pyramid_notebook_startup()
    try:
        if _pyramid_notebook_code is not None:
            exec(_pyramid_notebook_code)
    finally:
        exec({enter!r})
    del _pyramid_notebook_code
del _pyramid_notebook_startup, _pyramid_notebook_os
'''


def dispatcher_script(folder: str) -> str:
    """The profile startup file that runs the startup script of the kernel's own context."""
    return DISPATCHER.format(folder=folder, enter=ENTER_FOLDER)


def install(ipython_dir: str) -> str:
    """Write the dispatcher as the profile's startup file; return the contexts folder."""
    folder = os.path.join(ipython_dir, CONTEXTS_FOLDER)
    startup_dir = os.path.join(ipython_dir, "profile_default", "startup")
    for d in (folder, startup_dir):
        os.makedirs(d, mode=0o700, exist_ok=True)
    write_private(os.path.join(startup_dir, STARTUP_FILE), dispatcher_script(folder))
    return folder


def register(ipython_dir: str, root_dir: str, part: dict) -> str:
    """Register a context's notebook part; return its welcome notebook's name (relative to ``root_dir``).

    Its startup script is then :func:`script_path` ``(ipython_dir, name)``.

    The context becomes the one new notebooks start with (the shell opened last).
    """
    digest = context_digest(part.get("context_hash"))
    if not _DIGEST.match(digest):  # a daemon started by hand: no hash, or one of its own making
        digest = "default"
    folder = install(ipython_dir)
    # Its first line marks the kernel (core/inkernel.py): the site it bootstraps starts no web-side work.
    write_private(os.path.join(folder, digest + ".py"), MARK_LINE + (part.get("startup") or ""))
    write_private(os.path.join(folder, LAST_FILE), digest)
    name = default_notebook_name(part)
    write_default_notebook(os.path.join(root_dir, name), part.get("greeting") or "")
    return name


def script_path(ipython_dir: str, name: str) -> str:
    """The startup script registered for welcome notebook ``name``."""
    match = re.fullmatch(r"default-([0-9a-f]{8})\.ipynb", name)
    return os.path.join(ipython_dir, CONTEXTS_FOLDER, (match.group(1) if match else "default") + ".py")


async def open_session(serverapp, path: str, spare=None, script: str = "") -> dict:
    """The session of notebook ``path``, started now (kernel included) unless one lives already.

    With ``spare`` (:class:`~pyramid_notebook.server.spare_kernel.SpareKernel`), its kernel is the
    spare one if there is one, running ``script``; then another spare is started.
    """
    sessions = serverapp.session_manager
    if await sessions.session_exists(path=path):  # also drops a session whose kernel was culled
        return await sessions.get_session(path=path)
    kernel_id = await spare.claim(path, script) if spare is not None else None
    model = await sessions.create_session(path=path, name=path, type="notebook", kernel_id=kernel_id,
                                          kernel_name=serverapp.kernel_manager.default_kernel_name)
    if spare is not None:
        spare.fill_later()
    return model


def spare_policy(context: dict):
    """A context's ``spare_kernel`` as the server's config takes it: ``True``, ``False`` or ``"always"``.

    ``always`` (the default) waits for a second shell, as ``True``, when the context starts no warm
    kernel (``warm_kernel = false``: no kernel before the user asks for one).
    """
    value = context.get("spare_kernel", DEFAULT_SPARE)
    if value == "always":
        return True if context.get("warm_kernel") is False else "always"
    return bool(value)


def _handler_class():
    from jupyter_server.auth.decorator import authorized
    from jupyter_server.base.handlers import APIHandler
    from tornado import web

    class ShellsHandler(APIHandler):
        """``POST``: register a context's notebook part and start its welcome notebook's kernel."""

        auth_resource = "kernels"

        async def prepare(self):
            """404 unless the request carries the site's proof: this endpoint is the site's, never a browser's."""
            key = self.settings.get(SHELL_KEY_SETTING) or ""
            proof = self.request.headers.get(SHELLS_PROOF_HEADER) or ""
            if not (key and hmac.compare_digest(proof.encode(), shells_proof(key, self.request.body or b"").encode())):
                raise web.HTTPError(404)
            await super().prepare()

        @web.authenticated
        @authorized
        async def post(self):
            """Open the shell described by the JSON body; answer with its session."""
            try:
                part = json.loads(self.request.body or b"{}")
                if not isinstance(part, dict) or not all(isinstance(part.get(k, ""), str)
                                                         for k in ("context_hash", "startup", "greeting")):
                    raise ValueError("expected {context_hash, startup, greeting} strings")
                if not re.match(r"^[0-9a-f]{64}$", part.get("context_hash") or ""):
                    raise ValueError("context_hash must be a SHA-256 hex digest")
                root_dir = os.path.abspath(os.path.expanduser(self.serverapp.root_dir))
                ipython_dir = os.environ["IPYTHONDIR"]
                name = register(ipython_dir, root_dir, part)
            except (ValueError, KeyError) as e:
                raise web.HTTPError(400, f"Unusable shell context: {e}") from None
            model = await open_session(self.serverapp, name, self.settings.get(SPARE_SETTING),
                                       script_path(ipython_dir, name))
            self.set_status(201)
            self.finish(json.dumps(dict(model, notebook_name=name), default=str))

    return ShellsHandler


def _jupyter_server_extension_points():
    return [{"module": __name__}]


def _load_jupyter_server_extension(serverapp):
    from jupyter_server.utils import url_path_join

    from pyramid_notebook.server.spare_kernel import START_DELAY, SpareKernel, policy

    spare = serverapp.web_app.settings[SPARE_SETTING] = SpareKernel(serverapp)
    if policy(serverapp) == "always":
        serverapp.io_loop.add_callback(spare.fill_later, START_DELAY)

    # The key of the site's proof (local daemon: the per-start secret; JupyterHub: the per-start key the
    # site sent with the context); none: the endpoint answers nobody.
    serverapp.web_app.settings[SHELL_KEY_SETTING] = str((serverapp.config.get("PyramidNotebook") or {})
                                                        .get("shell_key") or "")
    route = url_path_join(serverapp.web_app.settings["base_url"], SHELLS_ENDPOINT)
    serverapp.web_app.add_handlers(".*$", [(route, _handler_class())])
