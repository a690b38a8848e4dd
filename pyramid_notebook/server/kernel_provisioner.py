"""Kernels forked from the kernel zygote, through jupyter_client's kernel provisioner API.

:class:`ZygoteProvisioner` is registered as the ``pyramid-notebook-zygote`` entry point of the
``jupyter_client.kernel_provisioners`` group and chosen for every kernelspec that names no
provisioner of its own (``KernelProvisionerFactory.default_provisioner_name``, in the server's
configuration when ``pyramid_notebook.kernel_fork`` is on). Jupyter's kernel manager keeps doing
everything else — connection file, restart, interrupt, culling, the audit extension — and
:class:`~pyramid_notebook.server.kernel_start.SiteKernelManager` still builds the kernel's command
(private folder, ``-P`` launcher, memory limit). The provisioner only changes *how* that command
starts: when it is this package's IPython launcher for this Python, the zygote
(:mod:`pyramid_notebook.server.kernel_zygote`) forks the kernel, which then does what the command
would have done; any other command (another language, another Python, extra options), a refused
preload or a zygote that does not answer starts the plain way, as Jupyter's ``LocalProvisioner``.

The kernel's pid is the provisioner's ``pid`` (and its process group, ``pgid``): signals, interrupt
(SIGINT), kill and the resource display address the kernel itself. It is the zygote's child, not
the server's: exit is watched through a pidfd.
"""
import asyncio
import contextlib
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading

from jupyter_client.provisioning import LocalProvisioner

from pyramid_notebook.core.kernelpreload import site_preload
from pyramid_notebook.server import forked_kernels, kernel_zygote
from pyramid_notebook.server.kernel_limits import PROVISIONER_NAME  # noqa: F401 (the entry point's name, setup.py)
from pyramid_notebook.server.kernel_start import KERNEL_LAUNCHER, LIMIT_EXEC

#: Seconds a new zygote may take to import its modules before kernels start the plain way.
READY_TIMEOUT = 60.0
#: Seconds a fork request may take.
FORK_TIMEOUT = 10.0
#: Seconds a new kernel may take to bind its channels before the server connects them anyway.
BIND_TIMEOUT = 10.0
#: The connection file's ports a kernel binds (``transport`` ``ipc``: files named ``<ip>-<port>``).
CHANNEL_PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
log = logging.getLogger("pyramid_notebook.kernel_zygote")


class ZygoteClient:
    """The server's handle on its zygote: fork requests (serialised), replacement, refusal."""

    def __init__(self, modules, sock=None, pid=None, shared=False, context=None):
        self.modules = list(modules)
        #: The server's context, to ask the fork server for the site's zygote again (None: never).
        self.context = context
        self.sock, self.pid, self.process = sock, pid, None
        #: The site's zygote (the fork server's child, serving every server): never ours to kill or reap.
        self.shared = shared
        self.state = "starting" if sock is not None else "dead"
        self.refusal = ""
        self._lock = threading.Lock()
        self._retired = []  # (pid, Popen or None) of zygotes that stopped serving: reaped once they exit

    def _recv(self, timeout) -> dict:
        self.sock.settimeout(timeout)
        data = self.sock.recv(kernel_zygote.MAX_PACKET)
        if not data:
            raise ConnectionError("the kernel zygote closed its socket")
        return json.loads(data)

    def fork(self, request: dict):
        """The forked kernel's pid, or None: start it the plain way (the reason is logged)."""
        with self._lock:
            self._reap_retired()
            if self.state in ("refused", "off"):
                return None
            if self.state == "dead":
                self.replace()
            try:
                if self.state == "starting":
                    answer = self._recv(READY_TIMEOUT)
                    if answer.get("error"):  # the site's zygote is stale: ours replaces it
                        raise ValueError(f"the kernel zygote answered {answer['error']}")
                    if answer.get("refused"):
                        self.state, self.refusal = "refused", answer["refused"]
                        log.warning("pyramid_notebook: kernels start the plain way: the kernel zygote refused its "
                                    "preload: %s (pyramid_notebook.kernel_preload, kernel_fork)", self.refusal)
                        self._reap()
                        return None
                    self.state = "ready"
                    if answer.get("missing"):
                        log.info("pyramid_notebook: kernel zygote: not preloaded: %s", "; ".join(answer["missing"]))
                with open(os.devnull, "rb") as null:
                    socket.send_fds(self.sock, [json.dumps(request).encode()], [null.fileno(), 1, 2])
                answer = self._recv(FORK_TIMEOUT)
            except (OSError, ValueError) as e:  # dead (SIGKILL), hung or garbled: never again
                log.warning("pyramid_notebook: the kernel zygote did not answer (%s); a new one is started, "
                            "this kernel starts the plain way", e)
                self._discard()
                self.replace()
                return None
            if answer.get("pid"):
                return int(answer["pid"])
            log.info("pyramid_notebook: kernel zygote answered %s: replaced; this kernel starts the plain way",
                     answer.get("error"))
            self._discard()
            self.replace()
            return None

    def _reap(self) -> None:
        """A stale zygote lives on until its kernels have ended: reaped later, not waited for."""
        self._retired.append((self.pid, self.process))
        self._reap_retired()

    def _reap_retired(self) -> None:
        still = []
        for pid, process in self._retired:
            if process is not None:
                done = process.poll() is not None
            else:
                try:
                    done = os.waitpid(pid, os.WNOHANG)[0] != 0
                except ChildProcessError:
                    done = True
            if not done:
                still.append((pid, process))
        self._retired = still

    def _discard(self) -> None:
        """Close our end: a stale zygote then exits once its kernels have; a hung one is killed."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.shared:  # the site's: other servers' kernels still come from it
            self.state, self.pid, self.shared = "dead", None, False
            return
        if self.pid:
            with contextlib.suppress(OSError):
                os.kill(self.pid, 0)
                if self.state != "ready":  # it did not answer: it will not serve again
                    os.kill(self.pid, signal.SIGKILL)
            self._reap()
        self.state, self.pid, self.process = "dead", None, None

    def replace(self) -> None:
        """The site's zygote again, if the fork server has one (a new one, after a restart or a deploy);
        else a fresh zygote of our own (a new interpreter: this server is no longer fit to fork one)."""
        if FORK_SERVER is not None and self.context is not None:
            site = site_zygote(self.context)
            if site is not None:
                self.sock, self.pid, self.process, self.shared, self.state = site.sock, site.pid, None, True, "starting"
                return
        self.shared = False
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-m", "pyramid_notebook.server.kernel_zygote", str(theirs.fileno()),
                 json.dumps(self.modules)], pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, cwd="/",
                env={k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "PYRAMID_NOTEBOOK_"))})
        except OSError as e:
            ours.close()
            log.warning("pyramid_notebook: no kernel zygote (%s): kernels start the plain way", e)
            self.state = "off"
            return
        finally:
            theirs.close()
        self.sock, self.pid, self.state = ours, self.process.pid, "starting"


#: This server's zygote client (see :func:`start`); None: kernels start the plain way.
CLIENT = None
#: ``(folder, socket name)`` of the fork server that forked this server (set by it), or None.
FORK_SERVER = None


def site_zygote(context):
    """A client of the site's zygote for ``context``, which the fork server forks (or already runs); None
    if it cannot. With a pshell startup, that zygote preloads what building the site's app imports too."""
    from pyramid_notebook.core.forkprotocol import ForkServerError, request, short_path

    folder, name = FORK_SERVER
    modules, pshell = site_preload(context)
    message = {"op": "zygote", "modules": modules, "pshell": pshell}
    try:
        answer = request(folder, "", message, timeout=FORK_TIMEOUT, name=name)
    except ForkServerError as e:
        log.info("pyramid_notebook: no site kernel zygote (%s): this server forks its own", e)
        return None
    if not answer.get("ok"):
        log.info("pyramid_notebook: no site kernel zygote (%s): this server forks its own", answer.get("error"))
        return None
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(short_path(dir_fd, answer["name"]))
    except OSError as e:
        sock.close()
        log.info("pyramid_notebook: the site kernel zygote did not answer (%s): this server forks its own", e)
        return None
    finally:
        os.close(dir_fd)
    return ZygoteClient(modules, sock, int(answer["pid"]), shared=True, context=context)


def start(context: dict):
    """Connect to the site's zygote, or fork this server's own now, while the daemon is pristine.

    Called before Jupyter starts.
    """
    global CLIENT
    modules = kernel_zygote.preload_modules(context)
    CLIENT = site_zygote(context) if FORK_SERVER is not None else None
    if CLIENT is None:
        CLIENT = own_zygote(modules)
    forked_kernels.count_in_resource_display()  # after the fork: it imports the server's half
    return CLIENT


def own_zygote(modules):
    """Fork this server's own zygote (or, when this process cannot, start one)."""
    sock, pid = kernel_zygote.fork_zygote(modules)
    if sock is None:
        log.warning("pyramid_notebook: the kernel zygote is started anew (%s)", pid)
        return ZygoteClient(modules)
    return ZygoteClient(modules, sock, pid)


def zygote_request(cmd, kw):
    """The zygote's request for SiteKernelManager's ``cmd``, or None when it is not ours to fork."""
    cmd = list(cmd)
    limit = None
    if len(cmd) > 8 and cmd[3] == LIMIT_EXEC and cmd[7] == "--":
        limit, cmd = [int(cmd[4]), cmd[5], cmd[6]], cmd[8:]
    if len(cmd) < 3 or cmd[1:3] != ["-P", KERNEL_LAUNCHER]:
        return None
    if os.path.realpath(cmd[0]) != os.path.realpath(sys.executable):
        return None  # another Python: our zygote cannot become it
    env = dict(kw.get("env") or os.environ)
    return {"argv": cmd[3:], "env": env, "cwd": kw.get("cwd") or os.getcwd(), "umask": _umask(),
            "limit": limit, "title": cmd}


def _umask() -> int:
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status") as f:
            return int(next(line for line in f if line.startswith("Umask:")).split()[1], 8)
    return 0o022


class ZygoteProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, whose IPython kernels are forked from the kernel zygote."""

    forked = False
    pidfd = None
    exit_code = None

    @property
    def has_process(self) -> bool:
        """True while a kernel (forked or plain) is ours."""
        return self.forked or super().has_process

    async def launch_kernel(self, cmd, **kwargs):
        """Ask the zygote for the kernel; the plain start when it cannot."""
        request = zygote_request(cmd, kwargs)
        pid = None
        if request is not None and CLIENT is not None:
            pid = await asyncio.get_running_loop().run_in_executor(None, CLIENT.fork, request)
        self.log.debug("pyramid_notebook: kernel %s %s", self.kernel_id, f"forked from the zygote: {pid}" if pid else
                       f"started the plain way ({'no zygote' if CLIENT is None else CLIENT.state}, "
                       f"{'our launcher' if request else 'another command'})")
        if pid is None:
            return await super().launch_kernel(cmd, **kwargs)
        self.forked, self.exit_code, self.pid, self.pgid = True, None, pid, pid
        forked_kernels.add(self.kernel_id, pid)
        try:
            self.pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self.pidfd, self.exit_code = None, 1  # already gone
        except OSError:  # no pidfd on this system (Linux < 5.3): poll the pid (the zygote reaps it at once)
            self.pidfd = None
        self.cwd = kwargs.get("cwd") or os.getcwd()
        await self._bound()
        return self.connection_info

    async def _bound(self, timeout=BIND_TIMEOUT) -> None:
        """Return once the kernel has bound its channels (their ipc files exist), or after ``timeout``.

        A forked kernel is launched in a millisecond, and the server then connects its channels
        straight away: before the kernel has bound them, zmq retries each connection only after its
        reconnect interval (100 ms), and the kernel's first status can be published before a
        subscription arrives, which costs the page's first connection a nudge retry (0.5 s), one
        notebook in three. Waiting here for the bind makes those connections succeed at once.
        """
        info = self.connection_info or {}
        if info.get("transport") != "ipc":
            return
        paths = [f"{info['ip']}-{info[name]}" for name in CHANNEL_PORTS if info.get(name)]
        deadline = asyncio.get_running_loop().time() + timeout
        while not all(os.path.exists(p) for p in paths) and await self.poll() is None:
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.005)

    async def poll(self):
        """None while the forked kernel runs, else its exit (1: the zygote reaps it, not us)."""
        if not self.forked:
            return await super().poll()
        if self.exit_code is None and self.pidfd is not None:
            readable, _, _ = select.select([self.pidfd], [], [], 0)
            if readable:
                self.exit_code = 1
        elif self.exit_code is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.exit_code = 1
            except OSError:
                pass
        return self.exit_code

    async def wait(self):
        """Wait for the forked kernel to end (callers bound it with a timeout, see ``kill``)."""
        if not self.forked:
            return await super().wait()
        while await self.poll() is None:
            await asyncio.sleep(0.05)
        self._forget()
        return self.exit_code

    def _forget(self) -> None:
        forked_kernels.remove(self.kernel_id)
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        self.forked = False

    async def send_signal(self, signum: int) -> None:
        """To the kernel's process group (its subprocesses too), as jupyter_client does."""
        if not self.forked:
            return await super().send_signal(signum)
        if await self.poll() is not None:
            return
        try:
            os.killpg(self.pgid, signum)
        except OSError:
            if self.pidfd is None:
                raise
            signal.pidfd_send_signal(self.pidfd, signum)

    async def kill(self, restart: bool = False) -> None:
        """SIGKILL the kernel."""
        if not self.forked:
            return await super().kill(restart)
        with contextlib.suppress(OSError):
            await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        """SIGTERM the kernel."""
        if not self.forked:
            return await super().terminate(restart)
        with contextlib.suppress(OSError):
            await self.send_signal(signal.SIGTERM)

    async def cleanup(self, restart: bool = False) -> None:
        """Close the pidfd of a kernel that ended."""
        if self.forked and await self.poll() is not None:
            self._forget()
        await super().cleanup(restart)
