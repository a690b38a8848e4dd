"""Jupyter server extension: make a JupyterHub single-user server a pyramid_notebook notebook.

The site starts the user's hub server with its notebook context as ``user_options``; the hub's
spawn hook (:func:`pyramid_notebook.hubspawn.pre_spawn_hook`) puts it in the server's environment
as ``PYRAMID_NOTEBOOK_CONTEXT`` (JSON), and ``python -m pyramid_notebook.server.hub_singleuser``
enables this extension. Linked before the server builds its kernel manager and web application,
it does what the local daemon does through its config file:

* the context's startup script is registered as in local mode (:mod:`pyramid_notebook.server.shells`,
  enabled beside this extension: ``IPYTHONDIR`` is the user's ``<root_dir>/.ipython``), and
  ``default-<hash>.ipynb`` with the greeting is created once, never overwritten; other contexts'
  shells open in the same server;
* the "Shut down and return to site" control gets its URL (page config) and the prebuilt
  labextension is put on the notebook's and JupyterLab's ``extra_labextensions_path``;
* who may frame the pages (``frame_ancestors``, the site's ``pyramid_notebook.frame_ancestors``)
  becomes the server's ``Content-Security-Policy`` instead of JupyterHub's ``frame-ancestors
  'none'``, and the save bridge answers the context's ``parent_origins``, as in local mode;
* ``allow_origin`` is the site's origin, kernel websockets have ``TCP_NODELAY``, and ``idle_timeout``
  / ``kill_timeout`` are enforced by the server itself (Jupyter's culling and no-activity shutdown,
  and a dead man's switch), whatever the hub's culler does;
* the site's calls to the shells endpoint are told from a browser's by the context's per-start
  ``shell_key`` (the key of an HMAC over the request), which the site sent with ``user_options``;
  it is kept out of the environment the kernels inherit;
* kernels start with the site's kernel manager
  (``pyramid_notebook.server.kernel_start.SiteKernelManager``): on Unix sockets in a private
  folder, out of the user's folder until the site's startup ran, under the memory limit if any;
* the identity provider is JupyterHub's, with the person the site signs on each request, the Origin
  check kept on for token-authenticated requests and no token in the page config
  (:mod:`pyramid_notebook.server.hub_identity`); the authorizer refuses a watcher's writes
  (:mod:`pyramid_notebook.server.authorizer`), and guests are served under their grant's prefix
  (``server/guests.py``, enabled beside this extension), as in a local server.
"""
import json
import os
import signal
import threading

from pyramid_notebook.core.contextparts import notebook_part
from pyramid_notebook.server import shells
from pyramid_notebook.server.config import LABEXTENSION_FOLDER, site_server_config
from pyramid_notebook.server.shells import spare_policy
from pyramid_notebook.server import kernel_limits, resource_usage

#: Environment variable carrying the notebook context (JSON) into the single-user server.
CONTEXT_ENV = "PYRAMID_NOTEBOOK_CONTEXT"
#: The hub server's identity provider and authorizer (:mod:`.hub_identity`, :mod:`.authorizer`).
IDENTITY_PROVIDER = "pyramid_notebook.server.hub_identity.SiteProxiedIdentityProvider"
AUTHORIZER = "pyramid_notebook.server.authorizer.PersonAuthorizer"


def _jupyter_server_extension_points():
    return [{"module": __name__}]


def read_context() -> dict:
    """The context from ``$PYRAMID_NOTEBOOK_CONTEXT``, or ``{}``."""
    try:
        context = json.loads(os.environ.get(CONTEXT_ENV) or "{}")
    except ValueError:
        return {}
    return context if isinstance(context, dict) else {}


def _add_labextension(serverapp):
    # Extension apps that linked before us copied the config already: set their trait as well.
    config = serverapp.config.LabServerApp
    config.extra_labextensions_path = [LABEXTENSION_FOLDER] + list(config.get("extra_labextensions_path", []))
    for apps in serverapp.extension_manager.extension_apps.values():
        for app in apps:
            if app.has_trait("extra_labextensions_path") and LABEXTENSION_FOLDER not in app.extra_labextensions_path:
                app.extra_labextensions_path = [LABEXTENSION_FOLDER] + list(app.extra_labextensions_path)


def _prepare_files(root_dir, context):
    os.environ["IPYTHONDIR"] = os.path.join(root_dir, ".ipython")  # kernels inherit it
    # Every kernel runs the startup script of its notebook's own context (server/shells.py).
    shells.register(os.environ["IPYTHONDIR"], root_dir, notebook_part(context))
    kernel_limits.write_startup_file(os.path.join(os.environ["IPYTHONDIR"], "profile_default", "startup"), context)


def _link_jupyter_server_extension(serverapp):
    context = read_context()
    if not context:
        serverapp.log.warning("pyramid_notebook: no %s in the environment; nothing to set up", CONTEXT_ENV)
        return
    if os.environ.get("JUPYTERHUB_SERVICE_URL"):  # JupyterHub's single-user server
        # Set in the config too: extension apps linked before us pass the config on again. By name: the
        # audit recorder imports this module, and the authorizer imports the recorder.
        serverapp.config.ServerApp.identity_provider_class = IDENTITY_PROVIDER
        serverapp.identity_provider_class = IDENTITY_PROVIDER
        # A watcher reads only (the person the site signs, as in a local server; the hub checked access).
        serverapp.config.ServerApp.authorizer_class = AUTHORIZER
        serverapp.authorizer_class = AUTHORIZER
    # Set before the web app exists: JupyterHub only puts its "frame-ancestors 'none'" where none is.
    base_url = os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or serverapp.base_url
    server, kernel_manager = site_server_config(context, base_url)
    settings = dict(serverapp.tornado_settings)
    shared_settings = server.pop("tornado_settings")
    settings["page_config_data"] = dict(settings.get("page_config_data") or {}, **shared_settings["page_config_data"])
    settings["headers"] = dict(settings.get("headers") or {}, **shared_settings["headers"])
    serverapp.tornado_settings = settings
    server["extra_template_paths"] = server["extra_template_paths"] + list(serverapp.extra_template_paths)
    for name, value in server.items():
        setattr(serverapp, name, value)
    if kernel_manager:
        serverapp.config.MappingKernelManager.update(kernel_manager)
    serverapp.config.PyramidNotebook.spare_kernel = spare_policy(context)
    # The key of the site's proof on its shells requests (server/shells.py), sent per start with the
    # context. Kept from the environment the kernels and terminals inherit.
    serverapp.config.PyramidNotebook.shell_key = str(context.pop("shell_key", "") or "")
    # The site's recipe library, shown as team-recipes/ when this server can reach it (server/team_recipes.py).
    serverapp.config.PyramidNotebook.team_recipes = str(context.get("team_recipes") or "")
    os.environ[CONTEXT_ENV] = json.dumps(context)
    _add_labextension(serverapp)
    # Memory in the top bar, and the user's memory limit on every kernel (issue 23).
    for section, values in kernel_limits.server_config(context).items():
        serverapp.config[section].update(values)
    root_dir = os.path.abspath(os.path.expanduser(serverapp.root_dir))
    resource_usage.apply_to_serverapp(serverapp, context, os.path.join(root_dir, ".jupyter", "app-settings"))
    _prepare_files(os.path.abspath(os.path.expanduser(serverapp.root_dir)), context)


def _load_jupyter_server_extension(serverapp):
    kill_timeout = int(read_context().get("kill_timeout") or 0)
    if kill_timeout > 0:
        # Dead man's switch, as the local daemon has: SIGTERM makes Jupyter stop its kernels and exit.
        timer = threading.Timer(kill_timeout, os.kill, (os.getpid(), signal.SIGTERM))
        timer.daemon = True
        timer.start()
