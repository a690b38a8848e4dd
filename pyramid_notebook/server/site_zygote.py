"""The site's kernel zygote: one process per site that forks the kernels of every user's notebook server.

A zygote per notebook server (:mod:`pyramid_notebook.server.kernel_zygote`) costs its own pages per
user: about 20 MB of PSS, 38 MB with the site's modules preloaded. The site's zygote holds those
once for the whole site. The fork server (:mod:`pyramid_notebook.forkserver.zygotes`) forks it, while
the fork server is still pristine, when the first notebook server of a site asks for it; every
later server of the same site (the same preload) connects to the same one.

Which process: the fork server's child. It imports what the per-server zygote imports, listens on a
``SOCK_SEQPACKET`` Unix socket beside the fork server's (``0600``, in the notebook folder's
``.forkserver``) and answers only processes of its own uid. Each notebook server connects once, at
its start; the zygote then sends ``{"ready": true}`` (or ``{"refused": …}``, ``{"error": "stale"}``),
and answers each fork request as the per-server zygote does (same packets, same descriptors).

A kernel forked here is the zygote's child, not its server's: the zygote opens a pidfd on the
connecting server (from ``SO_PEERCRED``, not from anything the request says) and the kernel ends
when that server ends (:func:`~pyramid_notebook.server.kernel_zygote.watch_server`), not when the
zygote does. The server finds its kernels through the provisioner (signals, exit through a pidfd)
and lists them for the resource display and the operator console
(:mod:`pyramid_notebook.server.forked_kernels`).

A stale zygote (a preloaded file or package changed) answers ``stale``, closes its socket (the fork
server then starts a new one for the next server) and stays only as long as its clients and kernels.
"""
import contextlib
import json
import os
import selectors
import socket
import struct
import sys

from pyramid_notebook.server import kernel_zygote

#: Seconds between checks for exited kernels while nothing happens.
POLL = 2.0


def _peer(conn) -> tuple:
    """``(pid, uid)`` of the process at the other end of ``conn``."""
    pid, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return pid, uid


def site_main(listener, dir_fd, name, modules, pshell=None, title="") -> int:
    """In the site's zygote (forked by the fork server): preload, then serve every server that connects.

    ``listener`` is bound as ``name`` in the folder ``dir_fd`` (removed again when the zygote goes stale);
    ``pshell``, the startup's ``(config_uri, folder)``: the modules building that app imports are
    preloaded too (:mod:`pyramid_notebook.server.zygote_probe`).
    """
    kernel_zygote.prepare(keep=(listener.fileno(), dir_fd))
    with contextlib.suppress(ImportError):
        import setproctitle

        setproctitle.setproctitle(f"pyramid-notebook kernel zygote (site{' ' + title if title else ''})")
    refusal, missing, built, modules = kernel_zygote.preload(modules, more=lambda: _found(pshell))
    first = {"refused": refusal} if refusal else {"ready": True, "pid": os.getpid(), "missing": missing}
    return serve_site(listener, modules, built, first, (dir_fd, name))


def _found(pshell) -> list:
    """The site's modules that import safely here, in import order (none without a pshell startup)."""
    from pyramid_notebook.server import zygote_probe

    if not pshell:
        return []
    found = [name for name in zygote_probe.site_modules(*pshell) if name not in sys.modules]
    return found[:zygote_probe.importable_prefix(found)]


class _Site:
    """The serving loop's state: the listener (None once closed) and each client's server pidfd."""

    def __init__(self, listener, modules, built, first, where):
        self.listener, self.modules, self.built, self.first = listener, modules, built, first
        self.dir_fd, self.name = where
        self.inode = None
        with contextlib.suppress(OSError):  # the path's own inode: removed at the end only while it is ours
            self.inode = os.stat(self.name, dir_fd=self.dir_fd).st_ino
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, None)
        self.clients = {}  # socket -> pidfd of the server at its other end

    def close_listener(self) -> None:
        """Take no new servers (stale): the fork server starts another zygote for them."""
        if self.listener is None:
            return
        self.selector.unregister(self.listener)
        with contextlib.suppress(OSError):
            if os.stat(self.name, dir_fd=self.dir_fd).st_ino == self.inode:
                os.unlink(self.name, dir_fd=self.dir_fd)
        self.listener.close()
        self.listener = None

    def stale(self) -> bool:
        return bool(self.built) and kernel_zygote.fingerprint(self.modules) != self.built

    def accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        pid, uid = _peer(conn)
        if uid != os.getuid():
            conn.close()
            return
        try:
            if "ready" in self.first and self.stale():
                kernel_zygote.send(conn, {"error": "stale"})
                conn.close()
                self.close_listener()
                return
            pidfd = os.pidfd_open(pid)
            kernel_zygote.send(conn, self.first)
        except OSError:
            conn.close()
            return
        self.clients[conn] = pidfd
        self.selector.register(conn, selectors.EVENT_READ, pidfd)

    def drop(self, conn) -> None:
        self.selector.unregister(conn)
        os.close(self.clients.pop(conn))
        conn.close()

    def answer(self, conn, pidfd) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(conn, kernel_zygote.MAX_PACKET, 3)
        except OSError:
            data, fds = b"", []
        if not data:
            self.drop(conn)  # its server stopped (or replaced us)
            return
        try:
            request = json.loads(data)
            if "ready" not in self.first or self.stale():
                kernel_zygote.send(conn, {"error": "stale" if "ready" in self.first else "refused"})
                self.close_listener()
                return
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the kernel
                self.selector.close()
                kernel_zygote.become_kernel(conn, request, fds, server_pidfd=pidfd)
            kernel_zygote.send(conn, {"pid": pid})
        except Exception as e:  # a bad request never ends the zygote
            with contextlib.suppress(OSError):
                kernel_zygote.send(conn, {"error": repr(e)})
        finally:
            for fd in fds:
                os.close(fd)


def serve_site(listener, modules, built, first, where) -> int:
    """Accept servers and answer their fork requests; end once closed and no server is left.

    ``where``: ``(dir_fd, name)`` of the listener's path.
    """
    site = _Site(listener, modules, built, first, where)
    listener.setblocking(False)
    while site.listener is not None or site.clients:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:  # reap the kernels that exited
                pass
        for key, _ in site.selector.select(POLL):
            if key.fileobj is site.listener:
                site.accept()
            else:
                site.answer(key.fileobj, key.data)
    with contextlib.suppress(ChildProcessError):  # stay the parent of our kernels until they end
        while True:
            os.wait()
    return 0
