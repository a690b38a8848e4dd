"""The site's modules, found by building the site's app once in a throwaway fork of the site's zygote.

A kernel whose startup is pshell's (:mod:`pyramid_notebook.core.pshell`) imports, after the fork,
everything the site's app factory imports: the site's package, what it ``config.include`` s, its
models and ORM, some 150 modules for the demo site, most of a forked kernel's start. The site's
zygote (:mod:`pyramid_notebook.server.site_zygote`) imports them once instead, for every user:

1. :func:`site_modules`: a throwaway fork builds the app from the startup's INI file, as Pyramid's
   ``bootstrap`` does (``get_app``, in the INI's folder), imports the modules named in its
   ``[pshell]`` section, and reports the modules that appeared, in import order. It then exits:
   whatever the site's factory opened (an engine, a thread) goes with it, never into the zygote.
2. :func:`importable_prefix`: a second throwaway fork imports them one by one, as the zygote would,
   and reports how many import without leaving a thread, a zmq context or a socket behind.
3. The zygote imports that many (:func:`pyramid_notebook.server.kernel_zygote.load`).

Nothing is probed for a startup that is not pshell's, and ``pyramid_notebook.kernel_preload``
still adds modules by name.
"""
import contextlib
import json
import os
import sys

from pyramid_notebook.core.forking import fork_running

#: Seconds a probe may take before it is killed (the zygote then preloads only what it was told).
PROBE_TIMEOUT = 60.0
#: Module names never preloaded: a test-suite's, and what only a command line runs.
SKIPPED_PARTS = ("tests", "test", "conftest", "__main__")


def in_fork(work, timeout=PROBE_TIMEOUT):
    """Run ``work()`` in a throwaway fork; its JSON answer, or None (it failed, or took too long)."""
    import select
    import signal

    read_end, write_end = os.pipe()

    def probe():  # pragma: no cover - runs in the probe
        os.close(read_end)
        with os.fdopen(write_end, "w") as answer:
            json.dump(work(), answer)
        return 0

    pid = fork_running(probe)
    os.close(write_end)
    data = b""
    try:
        with os.fdopen(read_end, "rb") as answers:
            while select.select([answers], [], [], timeout)[0]:
                chunk = os.read(answers.fileno(), 1 << 16)
                if not chunk:
                    break
                data += chunk
            else:
                data = b""
    finally:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None


def _build_app(config_uri, folder) -> list:  # pragma: no cover - runs in the probe
    """In the probe: what building the site's app imports, in import order."""
    import importlib

    from pyramid_notebook.core.inkernel import mark

    mark()  # building the app here starts none of the site's web-side work (core/inkernel.py)
    before = set(sys.modules)
    if folder:
        os.chdir(folder)
    from pyramid.paster import get_app
    from pyramid.scripts.common import get_config_loader

    get_app(config_uri)
    for value in get_config_loader(config_uri).get_settings("pshell").values():
        # [pshell] names objects by dotted name (its setup hook, its variables): their modules.
        name = str(value).strip().replace(":", ".")
        while name:
            with contextlib.suppress(Exception):
                importlib.import_module(name)
                break
            name = name.rpartition(".")[0]
    return [name for name in list(sys.modules) if name not in before and _wanted(name)]


def _wanted(name) -> bool:
    parts = name.split(".")
    return not any(p in SKIPPED_PARTS or p.startswith("test_") for p in parts)


def site_modules(config_uri, folder="") -> list:
    """The modules the app of ``config_uri`` imports (a throwaway fork builds it in ``folder``)."""
    found = in_fork(lambda: _build_app(config_uri, folder))
    return [name for name in found if isinstance(name, str)] if isinstance(found, list) else []


def _import_until_problem(names) -> int:  # pragma: no cover - runs in the probe
    from pyramid_notebook.server.kernel_zygote import load

    for count, name in enumerate(names):
        refusal, _ = load([name])
        if refusal:
            return count
    return len(names)


def importable_prefix(names) -> int:
    """How many of ``names`` import, in order, without leaving a thread or a socket behind."""
    if not names:
        return 0
    answer = in_fork(lambda: _import_until_problem(names))
    return answer if isinstance(answer, int) else 0
