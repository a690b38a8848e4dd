"""Which lab extensions the notebook's pages load: none that is no part of the shell.

Every lab extension installed in the environment loads in every notebook server. Some come with
packages the *site* uses: nbdime (the site's notebook diffs) brings ``nbdime-jupyterlab``, built
against ``@jupyter/ydoc`` 3, which logs ``Unsatisfied version 4.0.0 ... @jupyter/ydoc`` and
``Cannot convert undefined or null to object`` on Notebook 7's pages (caught by
``tests/test_browser_console.py``). The page config's hook (Jupyter's ``page_config_hook``,
called by Notebook's and JupyterLab's page handlers) leaves them out of the page, so their code is
not even fetched. The site may name more (``pyramid_notebook.disabled_extensions``, the context's
``disabled_extensions``): lab extensions, whose code is then not fetched either, or single plugins
(``package:plugin``), which the page does not activate.
"""
import os

#: Lab extensions installed for the site's own use, left out of the notebook's pages.
HIDDEN_LABEXTENSIONS = ("nbdime-jupyterlab",)
#: The context key naming the site's further extensions and plugins to leave out.
CONTEXT_KEY = "disabled_extensions"


def hide_labextensions(page_config: dict, extra=()) -> dict:
    """``page_config`` without :data:`HIDDEN_LABEXTENSIONS` and ``extra`` (federated, and disabled if listed)."""
    hidden = tuple(dict.fromkeys(HIDDEN_LABEXTENSIONS + tuple(extra)))
    federated = page_config.get("federated_extensions")
    if isinstance(federated, list):
        page_config["federated_extensions"] = [
            ext for ext in federated if not (isinstance(ext, dict) and ext.get("name") in hidden)]
    disabled = page_config.get("disabledExtensions")
    if isinstance(disabled, list):
        page_config["disabledExtensions"] = disabled + [name for name in hidden if name not in disabled]
    return page_config


def site_disabled_extensions() -> tuple:
    """The context's ``disabled_extensions`` of this server (read once at start), or none."""
    from pyramid_notebook.core.contextfile import read_context

    pid_file = os.environ.get("PYRAMID_NOTEBOOK_PID_FILE")  # server/static_files.py's PID_FILE_ENV
    names = (read_context(pid_file) or {}).get(CONTEXT_KEY) if pid_file else None
    return tuple(name for name in names or () if isinstance(name, str))


def chain_page_config(serverapp, hook) -> None:
    """Make ``hook(handler, page_config) -> page_config`` the server's ``page_config_hook``, after the one it
    already has (each extension adds its part of the pages' config)."""
    settings = serverapp.web_app.settings
    previous = settings.get("page_config_hook")

    def page_config_hook(handler, page_config):
        if previous is not None:
            page_config = previous(handler, page_config)
        return hook(handler, page_config)

    settings["page_config_hook"] = page_config_hook


def install(serverapp) -> None:
    """Chain :func:`hide_labextensions` after any ``page_config_hook`` the server already has."""
    extra = site_disabled_extensions()
    chain_page_config(serverapp, lambda handler, page_config: hide_labextensions(page_config, extra))
