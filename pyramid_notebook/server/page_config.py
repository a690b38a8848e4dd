"""Which lab extensions the notebook's pages load: none that is no part of the shell.

Every lab extension installed in the environment loads in every notebook server. Some come with
packages the *site* uses: nbdime (the site's notebook diffs) brings ``nbdime-jupyterlab``, built
against ``@jupyter/ydoc`` 3, which logs ``Unsatisfied version 4.0.0 ... @jupyter/ydoc`` and
``Cannot convert undefined or null to object`` on Notebook 7's pages (caught by
``tests/test_browser_console.py``). The page config's hook (Jupyter's ``page_config_hook``,
called by Notebook's and JupyterLab's page handlers) leaves them out of the page, so their code is
not even fetched.
"""

#: Lab extensions installed for the site's own use, left out of the notebook's pages.
HIDDEN_LABEXTENSIONS = ("nbdime-jupyterlab",)


def hide_labextensions(page_config: dict) -> dict:
    """``page_config`` without :data:`HIDDEN_LABEXTENSIONS` (federated, and disabled if listed)."""
    federated = page_config.get("federated_extensions")
    if isinstance(federated, list):
        page_config["federated_extensions"] = [
            ext for ext in federated if not (isinstance(ext, dict) and ext.get("name") in HIDDEN_LABEXTENSIONS)]
    disabled = page_config.get("disabledExtensions")
    if isinstance(disabled, list):
        page_config["disabledExtensions"] = disabled + [name for name in HIDDEN_LABEXTENSIONS if name not in disabled]
    return page_config


def install(serverapp) -> None:
    """Chain :func:`hide_labextensions` after any ``page_config_hook`` the server already has."""
    settings = serverapp.web_app.settings
    previous = settings.get("page_config_hook")

    def page_config_hook(handler, page_config):
        if previous is not None:
            page_config = previous(handler, page_config)
        return hide_labextensions(page_config)

    settings["page_config_hook"] = page_config_hook
