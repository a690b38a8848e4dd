"""The fork server's kernel zygotes: one per site (per preload), forked on a notebook server's request.

A notebook server the fork server forked asks, at its start, ``{"op": "zygote", "modules": [...]}``
on the fork server's control socket; the answer names the zygote's socket in the fork server's
folder (``{"ok": true, "name": "kz-….sock", "pid": N}``). The first request for a preload forks the
zygote from this (pristine) process (:func:`pyramid_notebook.server.site_zygote.site_main`); later
ones get the same zygote while it lives and its socket is in place (a stale zygote removes it).
See :mod:`pyramid_notebook.server.site_zygote` for the zygote itself.
"""
import contextlib
import hashlib
import json
import os
import socket

from pyramid_notebook.core.forking import fork_running
from pyramid_notebook.core.forkprotocol import short_path

#: What the fork server remembers of the zygotes asked for (in its folder): forked again at its next start.
REMEMBERED = "zygotes.json"
#: How many distinct zygotes it remembers (a site has one; a folder shared by sites, a few).
REMEMBER = 4
#: Zygotes forked: preload key -> (pid, socket name).
ZYGOTES = {}
#: Zygotes no longer handed out that may still run (serving their servers' kernels): reaped when they end.
RETIRED = []


def reap() -> None:
    """Forget zygotes that ended (waited for: they are our children)."""
    for key, (pid, _) in list(ZYGOTES.items()):
        if _ended(pid):
            del ZYGOTES[key]
    RETIRED[:] = [pid for pid in RETIRED if not _ended(pid)]


def _ended(pid) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True


def zygote_for(modules, dir_fd, pshell=None, close_in_child=()) -> dict:
    """The answer to a ``zygote`` request: the zygote of ``modules`` (and of the site's app that
    ``pshell``, ``[config_uri, folder]``, builds), forked now if none serves."""
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        return {"ok": False, "error": "modules: a list of module names"}
    if pshell is not None and not (isinstance(pshell, list) and len(pshell) == 2
                                   and all(isinstance(p, str) for p in pshell)):
        return {"ok": False, "error": "pshell: [config_uri, folder]"}
    reap()
    key = hashlib.sha256(json.dumps([modules, pshell]).encode()).hexdigest()[:12]
    if key in ZYGOTES:
        pid, name = ZYGOTES[key]
        if os.path.exists(short_path(dir_fd, name)):
            return {"ok": True, "name": name, "pid": pid}
        RETIRED.append(pid)  # stale: it removed its socket, and serves only the servers it has
        del ZYGOTES[key]
    name = f"kz-{key}-{os.getpid()}-{len(RETIRED)}.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old_umask = os.umask(0o177)  # 0600: only our uid may connect (the zygote checks the peer's uid too)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)
        listener.bind(short_path(dir_fd, name))
        listener.listen(64)
    finally:
        os.umask(old_umask)

    def zygote():  # pragma: no cover - runs in the zygote
        for closing in close_in_child:
            closing.close()
        from pyramid_notebook.server.site_zygote import site_main

        return site_main(listener, dir_fd, name, modules, pshell=pshell, title=key)

    pid = fork_running(zygote)
    listener.close()
    ZYGOTES[key] = (pid, name)
    _remember(dir_fd, [modules, pshell])
    return {"ok": True, "name": name, "pid": pid}


def _remembered(dir_fd) -> list:
    try:
        with open(os.open(REMEMBERED, os.O_RDONLY, dir_fd=dir_fd), encoding="utf-8") as f:
            found = json.load(f)
    except (OSError, ValueError):
        return []
    return [entry for entry in found if isinstance(entry, list) and len(entry) == 2] if isinstance(found, list) else []


def _remember(dir_fd, entry) -> None:
    entries = [entry] + [e for e in _remembered(dir_fd) if e != entry]
    tmp = f".{REMEMBERED}.{os.getpid()}"
    with contextlib.suppress(OSError):  # only the next start's head start depends on it
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, dir_fd=dir_fd), "w") as f:
            json.dump(entries[:REMEMBER], f)
        os.replace(tmp, REMEMBERED, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def prefork(dir_fd, close_in_child=()) -> None:
    """At the fork server's start: fork the zygotes its predecessor was asked for, so that the first
    kernel after a restart or a deploy is forked from a zygote that has already imported the site."""
    for modules, pshell in _remembered(dir_fd):
        with contextlib.suppress(Exception):  # a remembered entry that no longer makes sense is skipped
            zygote_for(modules, dir_fd, pshell, close_in_child=close_in_child)
