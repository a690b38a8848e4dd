"""Plaster's search for an INI file's loader, done once in a kernel zygote for all its kernels.

Which process: the kernel zygote (:mod:`pyramid_notebook.server.kernel_zygote`), before it forks.
"""
import contextlib
import sys


def warm_config_loaders() -> None:
    """Find the INI file's plaster loader once, here, for every kernel forked later.

    Pyramid's ``bootstrap`` (and pshell's own configuration) ask plaster for the ``file+ini`` loader,
    twice per kernel; plaster finds it by parsing the metadata of every installed distribution,
    about 70 ms of the site's startup. The installed distributions are part of the fingerprint: the
    answer cannot change under a zygote that still serves.
    """
    loaders = sys.modules.get("plaster.loaders")
    if loaders is None or getattr(loaders.find_loaders, "pyramid_notebook_cached", False):
        return
    find, found = loaders.find_loaders, {}

    def find_loaders(scheme, protocols=None):
        key = (str(scheme).lower(), tuple(protocols or ()))
        if key not in found:
            found[key] = find(scheme, protocols=protocols)
        return list(found[key])

    find_loaders.pyramid_notebook_cached = True
    find_loaders.__doc__ = find.__doc__
    loaders.find_loaders = find_loaders
    with contextlib.suppress(Exception):  # what pshell and bootstrap ask for an INI file; its factory imported
        for info in find_loaders("file+ini", protocols=["wsgi"]):
            getattr(info, "factory", None)
