"""pyramid_notebook: give each user of a Pyramid site their own Jupyter Notebook shell.

Use ``config.include("pyramid_notebook")`` and set ``pyramid_notebook.shell_principals``
(:mod:`pyramid_notebook.web.routes`), or map the views in :mod:`pyramid_notebook.web.views`
from your own views; see the README.
"""
import logging

SETTINGS_ACTION = "pyramid_notebook.settings"
#: URL path prefix of the package's browser assets (``notebook-bridge.js``).
ASSETS_PATH = "pyramid_notebook"


def includeme(config):
    """Read and validate the ``pyramid_notebook.*`` settings once.

    The parsed :class:`~pyramid_notebook.core.settings.NotebookSettings` and the
    notebook backend they choose (``pyramid_notebook.backend``: ``local``, a
    :class:`~pyramid_notebook.notebookmanager.NotebookManager`, or ``jupyterhub``, a
    :class:`~pyramid_notebook.backends.hub.backend.HubBackend`) are stored on the registry. A
    malformed setting raises :class:`pyramid.exceptions.ConfigurationError` naming it when the
    configuration is committed. A *missing* setting (``notebook_folder``; ``hub_url``,
    ``hub_api_token`` on the hub) does not stop the site: one warning is logged and the
    notebook answers 503 naming it. With ``pyramid_notebook.shell_principals`` set, the
    shell's routes and views are added too (:mod:`pyramid_notebook.web.routes`).
    """
    # Imported here so that the notebook daemon, which imports this package,
    # does not pay for Pyramid at start-up.
    from pyramid_notebook.backends.local.manager import NotebookManager
    from pyramid_notebook.core.settings import MissingSetting, parse_settings
    from pyramid_notebook.relays.choice import relay_from_settings

    def register():
        try:
            settings = parse_settings(config.get_settings(), maybe_dotted=config.maybe_dotted)
        except MissingSetting as e:
            logging.getLogger(__name__).warning("The notebook is unavailable (503) until this is set: %s", e)
            config.registry.pyramid_notebook_missing = str(e)
            return
        config.registry.pyramid_notebook_missing = ""
        config.registry.pyramid_notebook_settings = settings
        config.registry.pyramid_notebook_relay = relay_from_settings(settings)
        if settings.backend == "jupyterhub":
            from pyramid_notebook.backends.hub.backend import HubBackend

            config.registry.pyramid_notebook_manager = HubBackend.from_settings(settings)
        else:
            config.registry.pyramid_notebook_manager = NotebookManager.from_settings(settings)

    config.action(SETTINGS_ACTION, register)
    # The backend's background start-up (the local backend's fork server) once the app exists, so
    # that the first click after the site starts, or after a deploy, is as fast as the rest.
    # Not in a notebook kernel that bootstraps the site (web/sitestart.py).
    from pyramid_notebook.web.sitestart import subscribe

    subscribe(config, _on_site_start)
    # A view's Refusal is answered as it is (a 403 of ours is not the site's forbidden view's login page).
    from pyramid_notebook.core.pages import Refusal, refusal_view

    config.add_exception_view(refusal_view, context=Refusal)
    # The parent-page half of the save bridge: <site>/pyramid_notebook/notebook-bridge.js.
    config.include("pyramid_notebook.web.assets")
    # 400, not a 500 traceback, for addresses under the notebook routes that are not UTF-8.
    config.include("pyramid_notebook.web.badurl")
    # The 503 page for missing settings; the INI-only shell routes.
    config.include("pyramid_notebook.web.routes")
    # The operator console at /notebook-admin/, when pyramid_notebook.admin_principals names who may see it.
    config.include("pyramid_notebook.web.admin")
    # Its audit review at /notebook-admin/audit, for pyramid_notebook.auditor_principals (default: the admins).
    config.include("pyramid_notebook.web.auditreview")
    config.include("pyramid_notebook.web.recipes")
    # Live shared sessions' grants (/notebook/shares), when pyramid_notebook.share_principals (or shell_principals) is set.
    config.include("pyramid_notebook.web.shares")
    # The console's Watch (an administrator watches a running notebook), when the console and sharing are on.
    config.include("pyramid_notebook.web.supervision")
    # The notebook page's bundles compressed at start, in the background (web/preload.py).
    config.include("pyramid_notebook.web.preload")
    # What a fresh site's first click pays once (imports, the kernel's interpreter), at start (web/warmup.py).
    config.include("pyramid_notebook.web.warmup")


def preload_links(request, permission="shell", context=None) -> str:
    """``<link rel="prefetch">`` tags of the notebook page's bundles, for a site page with a shell button.

    Empty for a user without ``permission``; see ``pyramid_notebook.web.preload`` and the README.
    """
    from pyramid_notebook.web.preload import preload_links as links

    return links(request, permission, context)


def _on_site_start(event):
    """``ApplicationCreated``: let the notebook backend start what it starts in the background."""
    manager = getattr(event.app.registry, "pyramid_notebook_manager", None)
    if manager is not None:
        manager.on_site_start()
