"""What a notebook server imports and loads only once the notebook page asks for it, done in the fork
server before it forks, so that those pages are shared by every user's server instead of copied.

The first notebook page makes a fresh server import some 195 more modules: Jupyter's REST handlers,
and for ``GET api/nbconvert`` (File › Save and Export Notebook As) nbconvert with every exporter
(bleach, bs4, mistune…), for ``lab/api/translations`` babel's locale data. Preloaded here they cost
the fork server about 12.6 MB once and save each server about 8.5 MB of PSS after its first page (USS 41 against
51 MB: ``bench/servers.py``, docs/performance.rst). Extensions were measured too and are not where
a server's memory is (``jupyter_lsp`` off: 0.5 MB).

``PYRAMID_NOTEBOOK_FORK_SERVER_PAGE_PRELOAD=0`` in the fork server's environment leaves it out (the
bench's "before" side).
"""
import contextlib
import importlib
import os

#: Imported before the fork, if installed.
PAGE_PRELOAD = (
    "jupyter_server.services.api.handlers", "jupyter_server.services.config.handlers",
    "jupyter_server.services.contents.handlers", "jupyter_server.services.events.handlers",
    "jupyter_server.services.kernels.handlers", "jupyter_server.services.kernelspecs.handlers",
    "jupyter_server.services.nbconvert.handlers", "jupyter_server.services.security.handlers",
    "jupyter_server.services.sessions.handlers", "jupyter_server.services.shutdown", "jupyter_server.view.handlers",
    "jupyter_server.kernelspecs.handlers", "jupyter_server.nbconvert.handlers", "jupyter_resource_usage.server_extension",
    "notebook_shim.nbserver", "ipykernel.kernelspec", "jinja2.ext", "difflib", "tornado.platform.asyncio",
    "jupyter_core.migrate", "nbconvert", "babel.dates", "babel.numbers", "anyio._backends._asyncio",
    "jupyterlab_server.translation_utils",
)
#: The environment variable that turns it off ("0").
PAGE_PRELOAD_ENV = "PYRAMID_NOTEBOOK_FORK_SERVER_PAGE_PRELOAD"


def warm_page_caches() -> None:
    """Import :data:`PAGE_PRELOAD`, load every exporter class and babel's English names (what the first
    page's requests load: ``get_export_names``/``get_exporter`` scan and import the ``nbconvert.exporters``
    entry points)."""
    if os.environ.get(PAGE_PRELOAD_ENV) == "0":
        return
    for name in PAGE_PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    with contextlib.suppress(ImportError):
        from nbconvert.exporters.base import get_export_names, get_exporter

        for name in get_export_names():
            with contextlib.suppress(Exception):  # an exporter that cannot load is skipped by the handler too
                get_exporter(name)
    with contextlib.suppress(Exception):
        from jupyterlab_server.translation_utils import get_display_name

        get_display_name("en", "en")
