"""Jupyter server extension: make a JupyterHub single-user server a pyramid_notebook notebook.

The site starts the user's hub server with its notebook context as ``user_options``; the hub's
spawn hook (:func:`pyramid_notebook.hubside.spawn.pre_spawn_hook`) puts it in the server's environment
as ``PYRAMID_NOTEBOOK_CONTEXT`` (JSON), and ``python -m pyramid_notebook.server.hub_singleuser``
enables this extension. Linked before the server builds its kernel manager and web application,
it does what the local daemon does through its config file:

* the context's startup script becomes the kernels' IPython startup file (``IPYTHONDIR`` is the
  user's ``<root_dir>/.ipython``, as in local mode), and ``default-<hash>.ipynb`` with the greeting
  is created once, never overwritten;
* the "Shut down and return to site" control gets its URL (page config) and the prebuilt
  labextension is put on the notebook's and JupyterLab's ``extra_labextensions_path``;
* who may frame the pages (``frame_ancestors``, the site's ``pyramid_notebook.frame_ancestors``)
  becomes the server's ``Content-Security-Policy`` instead of JupyterHub's ``frame-ancestors
  'none'``, and the save bridge answers the context's ``parent_origins``, as in local mode;
* ``allow_origin`` is the site's origin, kernel websockets have ``TCP_NODELAY``, and ``idle_timeout``
  / ``kill_timeout`` are enforced by the server itself (Jupyter's culling and no-activity shutdown,
  and a dead man's switch), whatever the hub's culler does;
* the identity provider is JupyterHub's, with two changes (:class:`SiteProxiedIdentityProvider`):
  the Origin check stays on for token-authenticated requests (every request the site proxies
  carries the user's token, which JupyterHub would otherwise exempt), and the token is never
  echoed into the page config.
"""
import json
import os
import signal
import threading

from pyramid_notebook.core.framing import content_security_policy
from pyramid_notebook.server import kernel_limits, resource_usage
from pyramid_notebook.server.notebook_daemon import LABEXTENSION_FOLDER, _write_private, write_default_notebook

#: Environment variable carrying the notebook context (JSON) into the single-user server.
CONTEXT_ENV = "PYRAMID_NOTEBOOK_CONTEXT"


def _jupyter_server_extension_points():
    return [{"module": __name__}]


def read_context() -> dict:
    """The context from ``$PYRAMID_NOTEBOOK_CONTEXT``, or ``{}``."""
    try:
        context = json.loads(os.environ.get(CONTEXT_ENV) or "{}")
    except ValueError:
        return {}
    return context if isinstance(context, dict) else {}


_provider_class = None


def _identity_provider_class():
    """:class:`SiteProxiedIdentityProvider`, made on first use (it needs jupyterhub importable)."""
    global _provider_class
    if _provider_class is not None:
        return _provider_class
    from jupyterhub.singleuser.extension import JupyterHubIdentityProvider

    class SiteProxiedIdentityProvider(JupyterHubIdentityProvider):
        """JupyterHub's identity provider, keeping the Origin check and the token out of pages."""

        def should_check_origin(self, handler) -> bool:
            """Always: the site adds the token to every request, browsers' included."""
            return True

        def page_config_hook(self, handler, page_config):
            """JupyterHub's page config, without the request's token (the site's secret)."""
            page_config = super().page_config_hook(handler, page_config)
            page_config["token"] = ""
            return page_config

    _provider_class = SiteProxiedIdentityProvider
    return _provider_class


def _add_labextension(serverapp):
    # Extension apps that linked before us copied the config already: set their trait as well.
    config = serverapp.config.LabServerApp
    config.extra_labextensions_path = [LABEXTENSION_FOLDER] + list(config.get("extra_labextensions_path", []))
    for apps in serverapp.extension_manager.extension_apps.values():
        for app in apps:
            if app.has_trait("extra_labextensions_path") and LABEXTENSION_FOLDER not in app.extra_labextensions_path:
                app.extra_labextensions_path = [LABEXTENSION_FOLDER] + list(app.extra_labextensions_path)


def _prepare_files(root_dir, context):
    startup_dir = os.path.join(root_dir, ".ipython", "profile_default", "startup")
    os.makedirs(startup_dir, mode=0o700, exist_ok=True)
    _write_private(os.path.join(startup_dir, "00-pyramid-notebook.py"), context.get("startup") or "")
    kernel_limits.write_startup_file(startup_dir, context)
    os.environ["IPYTHONDIR"] = os.path.join(root_dir, ".ipython")  # kernels inherit it
    if context.get("notebook_name"):
        write_default_notebook(os.path.join(root_dir, context["notebook_name"]), context.get("greeting") or "")


def _link_jupyter_server_extension(serverapp):
    context = read_context()
    if not context:
        serverapp.log.warning("pyramid_notebook: no %s in the environment; nothing to set up", CONTEXT_ENV)
        return
    if os.environ.get("JUPYTERHUB_SERVICE_URL"):  # JupyterHub's single-user server
        # Set in the config too: extension apps linked before us pass the config on again.
        provider = _identity_provider_class()
        serverapp.config.ServerApp.identity_provider_class = provider
        serverapp.identity_provider_class = provider
    serverapp.allow_origin = context.get("allow_origin") or ""
    serverapp.kernel_websocket_connection_class = \
        "pyramid_notebook.server.websocket.NoDelayKernelWebsocketConnection"
    settings = dict(serverapp.tornado_settings)
    page_config = dict(settings.get("page_config_data") or {})
    page_config["pyramidNotebookShutdownUrl"] = context.get("shutdown_url") or ""
    page_config["pyramidNotebookParentOrigins"] = " ".join(context.get("parent_origins") or [])
    settings["page_config_data"] = page_config
    # Set before the web app exists: JupyterHub only puts its "frame-ancestors 'none'" where none is.
    base_url = os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or serverapp.base_url
    settings["headers"] = dict(settings.get("headers") or {}, **{
        "Content-Security-Policy": content_security_policy(context.get("frame_ancestors"), base_url)})
    serverapp.tornado_settings = settings
    templates = list(context.get("extra_template_paths") or [])
    if templates:
        serverapp.extra_template_paths = templates + list(serverapp.extra_template_paths)
    idle = int(context.get("idle_timeout") or 0)
    if idle > 0:
        # As in local mode: Jupyter culls idle kernels, then the server stops when nothing happens.
        serverapp.config.MappingKernelManager.update({
            "cull_idle_timeout": idle, "cull_interval": max(1, min(60, idle // 4)), "cull_connected": True,
            "cull_busy": False})
        serverapp.shutdown_no_activity_timeout = idle
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
