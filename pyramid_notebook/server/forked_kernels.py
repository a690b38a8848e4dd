"""This server's forked kernels, where its process tree no longer shows them.

A kernel forked from the site's zygote (:mod:`pyramid_notebook.server.site_zygote`) is the zygote's
child, not the server's. Two readers summed the server's descendants to get a user's memory:

* jupyter-resource-usage, in this server's top bar: :func:`count_in_resource_display` adds these
  kernels to what it sums;
* the operator console, in the web process: this server writes ``{kernel id: pid}`` to
  ``forked-kernels.json`` in its state folder (``statefolder.FORKED_KERNELS_FILE``),
  which the inventory reads and checks against each process's command line (a reused pid is not
  counted).
"""
import contextlib
import json
import os

from pyramid_notebook.core.statefolder import FORKED_KERNELS_FILE
from pyramid_notebook.server.static_files import PID_FILE_ENV

#: Kernel id -> pid of every kernel this server had forked and that has not ended.
FORKED = {}


def _write() -> None:
    pid_file = os.environ.get(PID_FILE_ENV)
    if not pid_file:
        return
    path = os.path.join(os.path.dirname(pid_file), FORKED_KERNELS_FILE)
    with contextlib.suppress(OSError):  # only the console's memory figures depend on it
        tmp = f"{path}.{os.getpid()}"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(FORKED, f)
        os.replace(tmp, path)


def add(kernel_id, pid) -> None:
    """A kernel was forked."""
    FORKED[str(kernel_id)] = int(pid)
    _write()


def remove(kernel_id) -> None:
    """A forked kernel ended."""
    if FORKED.pop(str(kernel_id), None) is not None:
        _write()


def count_in_resource_display() -> None:
    """Make jupyter-resource-usage count this server's forked kernels among its descendants.

    Its metrics handler and its Prometheus loader sum ``psutil.Process().children(recursive=True)``
    inline; they are given a ``psutil`` whose ``Process()`` (this process) lists the forked kernels
    too. Nothing else of theirs changes.
    """
    import importlib
    import types

    import psutil

    class ServerProcess(psutil.Process):
        """This notebook server's process: its descendants and the kernels it had forked (and theirs)."""

        def children(self, recursive=False):
            found = super().children(recursive)
            if self.pid != os.getpid():
                return found
            seen = {p.pid for p in found}
            for pid in list(FORKED.values()):
                with contextlib.suppress(psutil.Error):
                    kernel = psutil.Process(pid)
                    found += [p for p in [kernel] + (kernel.children(recursive) if recursive else [])
                              if p.pid not in seen]
            return found

    shim = types.ModuleType("psutil")
    shim.__dict__.update(psutil.__dict__)
    shim.Process = ServerProcess
    for name in ("jupyter_resource_usage.api", "jupyter_resource_usage.metrics"):
        with contextlib.suppress(ImportError):
            module = importlib.import_module(name)
            if getattr(module, "psutil", None) is psutil:
                module.psutil = shim
