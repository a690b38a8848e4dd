"""The first click after a start or a deploy as fast as any other (issue 34): what a fresh site pays
once, paid at start in one background thread.

Traced on the demo site (``docs/performance.rst``, "Cold visits at the warm floor"): besides the
fork server importing Jupyter (started by the backend at the same moment,
:meth:`~pyramid_notebook.backends.base.NotebookBackend.on_site_start`) and the first compression of
the page's bundles (``pyramid_notebook.web.preload``), a fresh site's first launch imported some
forty modules in the web process (the startup script's pshell and ``transaction`` checks, the team
recipes' git library, the server API client; under uvicorn the ASGI relay's websocket client, on the
first kernel websocket), created the recipe library, read Notebook's files for
the bundle list, and its kernel was the first process in a while to import ipykernel (after a deploy
into a new environment: the first to compile its bytecode). Nothing else on a launch's path is done
once per process but the pages' Jinja2 templates (the progress page is a first launch's answer),
compiled here too, and every notebook server, forked or not, pays its own start alike. With
``pyramid_notebook.config_file`` set, the site's kernel zygote is forked too (the backend's
``warm_kernels``): the first launch's kernel is forked from a zygote that has imported the site.

:func:`includeme` subscribes ``_on_site_start`` to ``ApplicationCreated``: start-up never waits
(one daemonic thread at nice 19); nothing happens with ``pyramid_notebook.warm_up = false`` or before
the settings are usable. What was done and how long it took is on the registry,
``registry.pyramid_notebook_warmup`` (:class:`WarmUp`).
"""
import contextlib
import dataclasses
import importlib
import logging
import os
import subprocess
import threading
import time

from pyramid_notebook.web.sitestart import subscribe

logger = logging.getLogger(__name__)

#: Modules a first launch imported inside functions in the web process (traced, see above).
FIRST_CLICK_IMPORTS = (
    "pyramid_notebook.core.pshell", "pyramid.scripts.pshell", "code", "codeop", "difflib", "transaction",
    "pyramid_notebook.backends.serverapi", "pyramid_notebook.backends.local.inventory",
    "dulwich.repo", "dulwich.index", "dulwich.objects", "dulwich.object_store", "dulwich.pack",
    # The relays' own, imported on their first request: the ASGI relay's websocket client and
    # environ builder (under uvicorn), the compression of a first brotli copy.
    "websockets.asyncio.client", "websockets.exceptions", "a2wsgi.wsgi", "brotli",
)
#: What a kernel's interpreter imports first (ipykernel's application and IPython's shell).
KERNEL_IMPORTS = ("ipykernel.kernelapp", "ipykernel.ipkernel", "IPython.core.interactiveshell",
                  "jupyter_client.session", "zmq")
#: Seconds the kernel interpreter's import may take (a loaded machine, a cold disk).
KERNEL_TIMEOUT = 120.0
#: The warm-up thread's nice value: it never takes CPU from the site's requests.
NICE = 19


@dataclasses.dataclass
class WarmUp:
    """One site's warm-up: ``timings`` (step -> seconds) and ``errors`` (step -> message) so far;
    ``done`` is set when every step has run."""

    thread: threading.Thread = None
    timings: dict = dataclasses.field(default_factory=dict)
    errors: dict = dataclasses.field(default_factory=dict)
    done: threading.Event = dataclasses.field(default_factory=threading.Event)

    def wait(self, timeout=None) -> bool:
        """Wait until the warm-up is over; True if it is."""
        return self.done.wait(timeout)


def _import_first_click_modules():
    for name in FIRST_CLICK_IMPORTS:
        with contextlib.suppress(ImportError):  # an optional package (transaction) the launch does without too
            importlib.import_module(name)


def _kernel_interpreter(python: str):
    """Import what a kernel imports, once, in the interpreter kernels run with: their bytecode compiled
    (where its folders are writable) and their files in the system's cache for the first kernel."""
    code = "; ".join(f"import {name}" for name in KERNEL_IMPORTS)
    # Started from the warm-up thread, the child inherits its nice value (per thread on Linux): no
    # preexec_fn, which is unsafe in a process with threads.
    subprocess.run([python, "-P", "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=KERNEL_TIMEOUT, check=True)


def steps(registry) -> list:
    """``[(name, callable)]``: the warm-up's steps for this site, in order."""
    from pyramid_notebook.core.recipes import team_folder
    from pyramid_notebook.core.templates import compile_all
    from pyramid_notebook.web.preload import notebook_bundles

    settings = registry.pyramid_notebook_settings
    found = [("imports", _import_first_click_modules),
             ("recipe library", lambda: team_folder(settings)),
             ("bundle list", lambda: notebook_bundles(registry)), ("page templates", compile_all)]
    if settings.backend != "jupyterhub":  # the hub's kernels run elsewhere
        found.append(("kernel interpreter", lambda: _kernel_interpreter(settings.python)))
    if settings.config_file and getattr(registry, "pyramid_notebook_manager", None) is not None:
        found.append(("kernel zygote", lambda: _kernel_zygote(registry, settings.config_file)))
    return found


def _kernel_zygote(registry, config_file):
    """The site's kernel zygote for a pshell shell of ``config_file`` (what the shells' startup scripts are),
    forked and preloaded before the first click asks for a kernel."""
    from pyramid_notebook.core.startup import make_startup

    nb = {}
    make_startup(nb, config_file)
    registry.pyramid_notebook_manager.warm_kernels(nb)


def warm_up(registry) -> WarmUp:
    """Start the warm-up of the site of ``registry`` in a daemonic background thread; return it."""
    state = WarmUp()

    def run():
        with contextlib.suppress(OSError, AttributeError):
            # A thread id is a process id for setpriority on Linux: only this thread is reniced.
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        try:
            for name, step in steps(registry):
                started = time.perf_counter()
                try:
                    step()
                except Exception as e:  # noqa: BLE001 - a warm-up is a help: the first click pays it then
                    detail = getattr(e, "stderr", b"") or b""
                    state.errors[name] = f"{e} {detail.decode(errors='replace')[-300:]}".strip()
                    logger.warning("Warm-up step %r failed (the first click pays it instead): %s", name, e)
                state.timings[name] = time.perf_counter() - started
        finally:
            state.done.set()

    state.thread = threading.Thread(target=run, name="pyramid_notebook warm-up", daemon=True)
    state.thread.start()
    return state


def _on_site_start(event):
    registry = event.app.registry
    settings = getattr(registry, "pyramid_notebook_settings", None)
    if settings is None or not settings.warm_up:
        return
    registry.pyramid_notebook_warmup = warm_up(registry)


def includeme(config):
    """At site start (``ApplicationCreated``), :func:`warm_up` unless the site turned it off."""
    subscribe(config, _on_site_start)
