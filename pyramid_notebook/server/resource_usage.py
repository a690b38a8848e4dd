"""Memory in the notebook's top bar: jupyter-resource-usage in every notebook server.

jupyter-resource-usage sums the memory of the server process and all its descendants
(``psutil.Process().children(recursive=True)``, PSS where Linux has it). A forked notebook
server (the fork server's child) starts its kernels itself, so they are its children and are
counted; the fork server, the server's parent, is not. The limit it shows is the user's
``memory_limit``.

Notebook 7 has no JupyterLab status bar: the extension shows itself in the top bar
(``@jupyter-server/resource-usage:topbar-item``), which is off by default; an ``overrides.json``
in the server's own settings folder turns it on (a user may still turn it off in Settings).
"""
import json
import os

#: The server extension's module.
EXTENSION = "jupyter_resource_usage"
#: The frontend plugin that shows "Mem: 120 / 2048 MB" in Notebook 7's top bar.
TOPBAR_PLUGIN = "@jupyter-server/resource-usage:topbar-item"


def display_config(context) -> dict:
    """``ResourceUseDisplay`` config: the limit shown, CPU tracked, PSS when the system has it."""
    return {
        "mem_limit": int(context.get("memory_limit") or 0),
        "track_cpu_percent": True,
        # Its Prometheus gauges are refreshed every second by walking every process of the machine
        # (psutil's children(recursive=True) reads each /proc/N/stat): nobody scrapes a user's server,
        # and with a hundred idle users those walks alone kept two cores busy.
        "enable_prometheus_metrics": False,
        # PSS (memory_full_info) counts the pages a forked server shares with its fork server once.
        "process_memory_metrics": [{"name": "memory_full_info", "attribute": "pss"}]
        if os.path.exists("/proc/self/smaps_rollup") else [{"name": "memory_info", "attribute": "rss"}],
    }


def write_settings_overrides(settings_dir, default_settings_dir=None) -> str:
    """Write ``overrides.json`` enabling the top bar item into ``settings_dir``; return the folder.

    Overrides already in ``default_settings_dir`` (the installation's, which ``settings_dir``
    replaces as the app's settings folder) are kept.
    """
    overrides = {}
    if default_settings_dir:
        try:
            with open(os.path.join(default_settings_dir, "overrides.json"), encoding="utf-8") as f:
                overrides = json.load(f)
        except (OSError, ValueError):
            overrides = {}
    overrides.setdefault(TOPBAR_PLUGIN, {})["enable"] = True
    os.makedirs(settings_dir, mode=0o700, exist_ok=True)
    with open(os.path.join(settings_dir, "overrides.json"), "w", encoding="utf-8") as f:
        json.dump(overrides, f, indent=2)
    return settings_dir


def installed_settings_dir() -> str:
    """The Notebook app's default settings folder (``<prefix>/share/jupyter/lab/settings``)."""
    try:
        # The notebook app imports it anyway when it starts; the web process never calls this.
        from jupyterlab.commands import get_app_dir
    except ImportError:
        return ""
    return os.path.join(get_app_dir(), "settings")


def apply_to_serverapp(serverapp, context, settings_dir) -> None:
    """The same, for a server already configured (JupyterHub's single-user server, at link time).

    ``ResourceUseDisplay`` is read when the extension loads, after every extension has linked;
    extension apps that linked before us copied the config already, so their trait is set too.
    """
    serverapp.config.ResourceUseDisplay.update(display_config(context))
    folder = write_settings_overrides(settings_dir, installed_settings_dir())
    serverapp.config.LabServerApp.app_settings_dir = folder  # the notebook's and JupyterLab's
    for apps in serverapp.extension_manager.extension_apps.values():
        for app in apps:
            if app.has_trait("app_settings_dir"):
                app.app_settings_dir = folder
