"""pyramid_notebook: give each user of a Pyramid site their own Jupyter Notebook shell.

Use ``config.include("pyramid_notebook")`` and map the views in
:mod:`pyramid_notebook.web.views` from your own views; see the README.
"""

SETTINGS_ACTION = "pyramid_notebook.settings"
#: URL path prefix of the package's browser assets (``notebook-bridge.js``).
ASSETS_PATH = "pyramid_notebook"


def includeme(config):
    """Read and validate the ``pyramid_notebook.*`` settings once.

    The parsed :class:`~pyramid_notebook.core.settings.NotebookSettings` and the
    notebook backend they choose (``pyramid_notebook.backend``: ``local``, a
    :class:`~pyramid_notebook.backends.local.manager.NotebookManager`, or ``jupyterhub``, a
    :class:`~pyramid_notebook.backends.hub.backend.HubBackend`) are stored on the registry. A missing or malformed setting raises
    :class:`pyramid.exceptions.ConfigurationError` naming it when the
    configuration is committed.
    """
    # Imported here so that the notebook daemon, which imports this package,
    # does not pay for Pyramid at start-up.
    from pyramid_notebook.backends.local.manager import NotebookManager
    from pyramid_notebook.core.settings import parse_settings

    def register():
        settings = parse_settings(config.get_settings(), maybe_dotted=config.maybe_dotted)
        config.registry.pyramid_notebook_settings = settings
        if settings.backend == "jupyterhub":
            from pyramid_notebook.backends.hub.backend import HubBackend

            config.registry.pyramid_notebook_manager = HubBackend.from_settings(settings)
        else:
            config.registry.pyramid_notebook_manager = NotebookManager.from_settings(settings)

    config.action(SETTINGS_ACTION, register)
    # The parent-page half of the save bridge: <site>/pyramid_notebook/notebook-bridge.js.
    config.include("pyramid_notebook.web.assets")
    # 400, not a 500 traceback, for addresses under the notebook routes that are not UTF-8.
    config.include("pyramid_notebook.web.badinput")
