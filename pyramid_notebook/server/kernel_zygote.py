"""The kernel zygote: a process that has imported what a kernel imports, and forks a kernel per request.

A new IPython kernel spends about a second of CPU, and some 50 MB of private memory, importing
IPython, ipykernel, zmq, Pyramid and the site's package before it runs the site's startup — the
same for every kernel of every user. The zygote imports all that once; each kernel is then a
``fork()`` of it, sharing those pages copy-on-write (and, under the fork server, with every other
user's server: the fork server imported ipykernel and IPython before forking the notebook server
this zygote was forked from).

Which process: under the fork server, one zygote for the whole site
(:mod:`pyramid_notebook.server.site_zygote`, which uses this module's preload and fork). Otherwise,
or when the site's zygote cannot be had, one zygote per notebook server, forked by the daemon
(:func:`fork_zygote`, called by :func:`pyramid_notebook.server.kernel_provisioner.start`) at the one
moment the server is still pristine (before Jupyter starts a thread or a zmq context); its kernels
are the server's grandchildren. A replacement (fingerprint changed, zygote died) is a fresh
interpreter run as ``python -P -m pyramid_notebook.server.kernel_zygote FD PRELOAD_JSON``.

What it holds: the modules of ``core.kernelpreload.BASE_PRELOAD`` and the site's (``pyramid_notebook.kernel_preload``
and the modules the context's startup script imports, ``preload_modules``); no thread, no zmq
context, no socket but its own, no database connection. A preload that leaves one behind is
refused with a message naming the module (:func:`load`), and the server starts its kernels the
plain way.

Its protocol (``SOCK_SEQPACKET`` socket pair with the server): the zygote first sends
``{"ready": true}`` or ``{"refused": "…"}``; then each request is one JSON packet
(``argv``, ``env``, ``cwd``, ``umask``, ``limit``, ``title``) carrying the kernel's stdin, stdout and
stderr as ``SCM_RIGHTS`` descriptors, answered ``{"pid": N}`` or ``{"error": "stale"}``.
"""
import contextlib
import importlib
import importlib.util
import json
import os
import signal
import socket
import sys

from pyramid_notebook.core.forking import fork_running
from pyramid_notebook.core.kernelpreload import BASE_PRELOAD, PSHELL_PRELOAD, found_in_startup, preload_modules  # noqa: F401
from pyramid_notebook.server import loader_cache

#: The kernel's launcher (standalone script), imported under this module name.
LAUNCHER_MODULE = "pyramid_notebook_private_ipykernel"
_SERVER_FOLDER = os.path.dirname(os.path.abspath(__file__))
KERNEL_LAUNCHER = os.path.join(_SERVER_FOLDER, "private_ipykernel.py")
#: Largest packet of the protocol (a request carries the kernel's environment).
MAX_PACKET = 1 << 20


def _sockets() -> set:
    """Inodes of the sockets this process has open."""
    found = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/self/fd/{fd}")
                if target.startswith("socket:"):
                    found.add(target)
    return found


def pristine_problems() -> list:
    """What this process holds that a fork would share between kernels: threads, a zmq context."""
    import threading

    problems = []
    if threading.active_count() != 1:
        problems.append("threads " + ", ".join(t.name for t in threading.enumerate() if t is not threading.main_thread()))
    zmq = sys.modules.get("zmq")
    if zmq is not None and getattr(zmq.Context, "_instance", None) is not None:
        problems.append("a ZMQ context")
    return problems


def load(modules) -> tuple:
    """Import ``modules`` one by one; ``(refusal or "", names not importable)``.

    The refusal names the module whose import left a thread, a zmq context or a socket behind.
    """
    missing = []
    for name in modules:
        sockets = _sockets()
        try:
            importlib.import_module(name)
        except Exception as e:  # a module the kernel could not import either: it is not preloaded
            missing.append(f"{name} ({type(e).__name__}: {e})")
            continue
        problems = pristine_problems()
        if _sockets() - sockets:
            problems.append("a socket open (a database or network connection?)")
        if problems:
            return f"importing {name} left {' and '.join(problems)} behind: a forked kernel would share it", missing
    return "", missing


def fingerprint(modules) -> str:
    """What the zygote was built from: the fork server's fingerprint, ipykernel's version, the preloaded files."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    from pyramid_notebook.core.forkprotocol import fingerprint as package_fingerprint

    digest = hashlib.sha256(json.dumps(package_fingerprint(sys.executable), sort_keys=True).encode())
    for package in ("ipykernel", "ipython", "pyzmq", "pyramid"):
        with contextlib.suppress(PackageNotFoundError):
            digest.update(f"{package} {version(package)}\n".encode())
    for name in modules:  # the site's modules: a deploy that changes one replaces the zygote
        path = getattr(sys.modules.get(name), "__file__", None)
        with contextlib.suppress(OSError, TypeError):
            st = os.stat(path)
            digest.update(f"{path} {st.st_mtime_ns} {st.st_size}\n".encode())
    return digest.hexdigest()[:16]


def send(sock, message: dict) -> None:
    """One packet of the zygote protocol."""
    sock.send(json.dumps(message).encode())


def _prctl_death_signal() -> None:
    """Die with the notebook server (its kernels then follow, as ipykernel's parent check makes them)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG


def _safe_path() -> None:
    """``sys.path`` as ``python -P`` gives it: no working folder, no script folder of ours."""
    drop = {_SERVER_FOLDER, os.path.join(os.path.dirname(_SERVER_FOLDER), "forkserver")}
    sys.path[:] = [p for p in sys.path if p and os.path.isabs(p) and os.path.abspath(p) not in drop]


def prepare(keep=()) -> None:
    """In a new zygote: die with our parent, close what we inherited (but ``keep``), reset signals."""
    _prctl_death_signal()
    keep = {0, 1, 2, *keep}
    for fd in range(3, 1024):
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
    # What a fresh Python starts with, as its kernels would have (SIGPIPE ignored: BrokenPipeError instead).
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    _safe_path()
    os.chdir("/")
    # As ipykernel sets it before it imports debugpy, which otherwise warns on stderr at import.
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")


def preload(modules, more=None) -> tuple:
    """Import ``modules`` (then those ``more()`` names) and the kernel's launcher.

    ``(refusal or "", missing, fingerprint, every module imported by name)``.
    """
    modules = list(modules)
    refusal, missing = load(modules)
    if not refusal and more is not None:
        extra = [name for name in more() if name not in sys.modules]
        refusal, also = load(extra)
        missing, modules = missing + also, modules + extra
    if not refusal:
        spec = importlib.util.spec_from_file_location(LAUNCHER_MODULE, KERNEL_LAUNCHER)
        launcher = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(launcher)
        sys.modules[LAUNCHER_MODULE] = launcher
        refusal = "; ".join(pristine_problems())
    if refusal:
        return refusal, missing, "", modules
    loader_cache.warm_config_loaders()
    built = fingerprint(modules)
    import gc

    gc.collect()
    gc.freeze()  # what is imported stays out of the kernels' collections: their pages stay shared
    return "", missing, built, modules


def zygote_main(sock, modules) -> int:
    """In the zygote: preload, say ready or refused, then fork kernels until the server goes."""
    prepare(keep=(sock.fileno(),))
    with contextlib.suppress(ImportError):
        import setproctitle

        setproctitle.setproctitle(f"pyramid-notebook kernel zygote (server {os.getppid()})")
    refusal, missing, built, _ = preload(modules)
    if refusal:
        send(sock, {"refused": refusal})
        return 3
    send(sock, {"ready": True, "pid": os.getpid(), "missing": missing})
    return serve(sock, modules, built)


def serve(sock, modules, built) -> int:
    """Answer fork requests until the server closes its end; a stale zygote stops serving."""
    sock.settimeout(2.0)
    while True:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:  # reap the kernels that exited
                pass
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_PACKET, 3)
        except TimeoutError:
            continue
        except OSError:
            data, fds = b"", []
        if not data:
            break  # the server is gone (or replaced us)
        try:
            request = json.loads(data)
            if fingerprint(modules) != built:
                send(sock, {"error": "stale"})
                break
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the kernel
                become_kernel(sock, request, fds)
            send(sock, {"pid": pid})
        except Exception as e:  # a bad request never ends the zygote
            with contextlib.suppress(OSError):
                send(sock, {"error": repr(e)})
        finally:
            for fd in fds:
                os.close(fd)
    sock.close()
    with contextlib.suppress(ChildProcessError):  # stay the parent of our kernels until they end
        while True:
            os.wait()
    return 0


def become_kernel(sock, request, fds, server_pidfd=None) -> None:  # pragma: no cover - runs in the forked kernel
    """In the fork: shed the zygote's state, then run ipykernel as ``python -P private_ipykernel.py …``.

    ``server_pidfd``: the kernel's notebook server, when the zygote is the site's (not the server's):
    the kernel then ends with its server, whatever becomes of the zygote.
    """
    code = 1
    try:
        sock.close()
        with contextlib.suppress(ImportError):  # first: the kernel's usual command line, by which it is found
            import setproctitle

            setproctitle.setproctitle(" ".join(request.get("title") or [KERNEL_LAUNCHER]))
        os.setsid()  # its own process group, as jupyter_client starts kernels: interrupts reach its children
        for fd, target in zip(fds, (0, 1, 2)):
            os.dup2(fd, target)
        if server_pidfd is not None:
            os.dup2(server_pidfd, 3)
        os.closerange(3 if server_pidfd is None else 4, 65536)  # the request's descriptors, all the zygote held
        sys.stdin = open(0, "r", closefd=False)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        os.environ.clear()
        os.environ.update(request.get("env") or {})
        # ipykernel's parent check (jupyter_client's launcher sets JPY_PARENT_PID to the server; ipykernel
        # read it when the zygote imported it): the parent is the zygote, which dies with the server; a
        # kernel whose zygote is gone exits, never an orphan.
        if server_pidfd is None:
            os.environ["JPY_PARENT_PID"] = parent = str(os.getppid())
        else:  # the site's zygote may be replaced while its kernels run: they watch their server instead
            parent = "0"
            watch_server(3)
        os.umask(int(request.get("umask", 0o022)))
        os.chdir(request["cwd"])
        limit = request.get("limit")
        if limit and int(limit[0]) > 0:  # as limit_exec.py does before it execs a plain kernel
            from pyramid_notebook.server import limit_exec

            os.environ[limit_exec.MODE_ENV] = limit_exec.apply_limit(int(limit[0]), limit[1], limit[2])
            os.environ[limit_exec.LIMIT_ENV] = str(int(limit[0]))
        reseed()
        sys.argv = [KERNEL_LAUNCHER] + list(request.get("argv") or []) + [f"--IPKernelApp.parent_handle={parent}"]
        sys.orig_argv = list(request.get("title") or sys.argv)
        sys.modules[LAUNCHER_MODULE].main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def watch_server(pidfd) -> None:  # pragma: no cover - runs in the forked kernel
    """End this kernel when the notebook server behind ``pidfd`` ends (a thread, as ipykernel's parent poller)."""
    import select
    import threading

    def wait():
        select.select([pidfd], [], [])
        os._exit(1)

    threading.Thread(target=wait, name="pyramid-notebook-server-watch", daemon=True).start()


def reseed() -> None:
    """New random state in a fork: no two kernels draw the same numbers or temporary names."""
    import random
    import tempfile

    random.seed()
    tempfile.tempdir = None
    tempfile._name_sequence = None  # noqa: SLF001 - its generator would repeat the zygote's names
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        with contextlib.suppress(Exception):
            numpy.random.seed()


def fork_zygote(modules):
    """Fork the zygote from this (pristine) process; ``(socket, pid)``, or ``(None, reason)``."""
    problems = pristine_problems()
    if problems:
        return None, "this process already holds " + " and ".join(problems)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

    def zygote():  # pragma: no cover - runs in the zygote
        ours.close()
        return zygote_main(theirs, modules)

    pid = fork_running(zygote)
    theirs.close()
    return ours, pid


def main(argv) -> int:
    """``python -P -m pyramid_notebook.server.kernel_zygote FD PRELOAD_JSON``: a replacement zygote."""
    sock = socket.socket(fileno=int(argv[0]))
    return zygote_main(sock, json.loads(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
