"""Jupyter's kernel manager as every pyramid_notebook server uses it (local daemon and JupyterHub's).

:class:`SiteKernelManager` starts every kernel (the warm one, the spare one, the page's, restarts):

* **on private sockets**: the kernel's five channels are Unix sockets (jupyter_client's ``ipc``
  transport) in a folder of its own, mode 0700, instead of loopback TCP ports any local account
  could connect to and read every cell's code and output from (the IOPub channel needs no key to
  listen). The folder is under the server's runtime folder (``$JUPYTER_RUNTIME_DIR/kernels``, in
  the user's private state folder in local mode) when the socket paths fit in the 107 bytes Linux
  allows a Unix socket path; otherwise in a short private folder the server makes
  (``$XDG_RUNTIME_DIR`` or the temporary folder, ``pyramid-notebook-kernels-<pid>-*``, mode 0700),
  removed when its last kernel stops and when the server exits (the next server removes one left
  by a server that was killed). Each kernel's folder is removed
  when the kernel stops (a restart keeps it: the restarted kernel binds the same sockets);
* **out of the user's reach**: an IPython kernel starts in that private folder, with Python's
  safe-path mode (``python -P``) and this package's launcher script (``server/private_ipykernel.py``:
  ipykernel's, whose pipe for forked children's output also goes on a Unix socket in that folder
  instead of a loopback TCP port), so neither the launcher (``python -m ipykernel_launcher``), nor
  what it imports, nor the site's startup script imports from the user's folder (a file
  ``ipykernel_launcher.py`` or ``json.py`` written there through the contents API would otherwise
  replace it). IPython 9 reads no config file from the working folder; the profile and its startup
  files are in the private ``IPYTHONDIR``. Only once the startup ran (the profile startup file of
  :mod:`pyramid_notebook.server.shells`, or the spare kernel's claim) does the kernel move into the
  notebook's folder and put it back on ``sys.path`` (:data:`ENTER_FOLDER`), as users expect;
* **under the user's memory limit**, when the site sets one (``server/kernel_limits.py``, ``server/limit_exec.py``).

Kernels of other languages (a kernelspec that is not ``python -m ipykernel…``) keep Jupyter's
start: in the notebook's folder, on loopback TCP (not every kernel speaks ``ipc``).
"""
import atexit
import os
import re
import shutil
import stat
import sys
import tempfile

from jupyter_server.services.kernels.kernelmanager import ServerKernelManager
from traitlets import Int, Unicode, default

#: The memory limit's wrapper, run as a script (no package imports: one small interpreter start).
LIMIT_EXEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "limit_exec.py")
#: The kernel's launcher, run as a script (ipykernel's, with its subprocess pipe on a Unix socket).
KERNEL_LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "private_ipykernel.py")
#: Environment variable naming the notebook's folder, which the kernel enters after its startup.
KERNEL_CWD_ENV = "PYRAMID_NOTEBOOK_KERNEL_CWD"
#: Environment variable naming the kernel's private folder (read by ``server/private_ipykernel.py``).
SOCKETS_ENV = "PYRAMID_NOTEBOOK_KERNEL_SOCKETS"
#: Name of a short sockets folder, followed by the server's pid (see :func:`sweep_dead_roots`).
ROOT_PREFIX = "pyramid-notebook-kernels-"
#: Longest path of a Unix socket on Linux (``sun_path`` is 108 bytes with its final NUL).
MAX_SOCKET_PATH = 107
#: Room a kernel's sockets take under the sockets folder: ``/k-XXXXXXXX/kernel-NN``, ``…/iopub-pipe``.
_KERNEL_PATH_ROOM = 32

#: Run in the kernel after the site's startup: into the notebook's folder, which goes back on
#: ``sys.path`` where ``python -m`` and IPython put it (first, and ``''`` before site-packages).
ENTER_FOLDER = '''\
def _pyramid_notebook_enter_folder():
    import os
    import sys
    folder = os.environ.pop("PYRAMID_NOTEBOOK_KERNEL_CWD", "")
    if not folder or not os.path.isdir(folder):
        return
    os.chdir(folder)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    if "" not in sys.path:
        at = [i for i, p in enumerate(sys.path) if os.path.basename(p) in ("site-packages", "dist-packages")]
        sys.path.insert(at[0] if at else 0, "")
    ip = globals().get("get_ipython", lambda: None)()
    if ip is not None and ip.user_ns.get("_dh"):
        ip.user_ns["_dh"][:] = [folder]  # %cd -, %dhist: the notebook's folder is where it started


_pyramid_notebook_enter_folder()
del _pyramid_notebook_enter_folder
'''

_sockets_root = None  # the folder holding the kernels' socket folders, made on first use
_made_root = None     # ...when it is a private folder of this process's making (removed at exit)


def _private_folder(path: str) -> str:
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def sockets_root() -> str:
    """The private folder (0700) the kernels' socket folders go in; see the module docstring."""
    global _sockets_root, _made_root
    if _sockets_root and os.path.isdir(_sockets_root):
        return _sockets_root
    from jupyter_core.paths import jupyter_runtime_dir

    preferred = os.path.join(os.path.abspath(jupyter_runtime_dir()), "kernels")
    if len(os.fsencode(preferred)) + _KERNEL_PATH_ROOM <= MAX_SOCKET_PATH:
        _sockets_root = _private_folder(preferred)
        return _sockets_root
    for parent in (os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp"):
        if parent and os.path.isdir(parent) and len(os.fsencode(parent)) + 48 + _KERNEL_PATH_ROOM <= MAX_SOCKET_PATH:
            sweep_dead_roots(parent)
            _sockets_root = _made_root = tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-", dir=parent)
            atexit.unregister(remove_made_root)  # once: each kernel's stop removes it too, once it is empty
            atexit.register(remove_made_root)
            return _sockets_root
    raise RuntimeError("pyramid_notebook: no folder short enough for the kernels' Unix sockets")


def sweep_dead_roots(parent: str) -> None:
    """Remove this account's short sockets folders in ``parent`` whose server is gone.

    A server that could not stop cleanly (SIGKILL, a crash) leaves its folder behind, holding only
    dead sockets; the name carries the server's pid. Another account's folders are never touched.
    """
    for name in os.listdir(parent):
        match = re.fullmatch(re.escape(ROOT_PREFIX) + r"(\d+)-\w+", name)
        if not match or int(match.group(1)) == os.getpid():
            continue
        path = os.path.join(parent, name)
        try:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
                continue
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)  # (fd-based: safe against symlinks swapped in)
        except OSError:
            continue  # alive under another account (EPERM), or gone meanwhile


def remove_made_root() -> None:
    """Remove the short private sockets folder this process made, if any (at the server's exit)."""
    global _sockets_root, _made_root
    if _made_root:
        shutil.rmtree(_made_root, ignore_errors=True)
        if _sockets_root == _made_root:
            _sockets_root = None
        _made_root = None


def _drop_empty_made_root() -> None:
    """Remove the short folder once its last kernel stopped; the next kernel makes a new one."""
    global _sockets_root, _made_root
    if _made_root:
        try:
            os.rmdir(_made_root)
        except OSError:
            return  # other kernels still have their folders in it
        _sockets_root = _made_root = None


#: ``python -m …`` modules that start an IPython kernel.
IPYKERNEL_MODULES = ("ipykernel_launcher", "ipykernel", "ipykernel.kernelapp")


def _module_at(cmd) -> int:
    """Index of ``-m`` starting an IPython kernel in ``cmd``, or -1."""
    return next((i for i, a in enumerate(cmd[:-1]) if a == "-m" and cmd[i + 1] in IPYKERNEL_MODULES), -1)


def is_ipykernel(cmd) -> bool:
    """True if ``cmd`` is ``python … -m ipykernel_launcher …`` (or ``-m ipykernel``)."""
    return _module_at(list(cmd)) > 0


def safe_command(cmd) -> list:
    """``python -P KERNEL_LAUNCHER …`` for ``python -m ipykernel_launcher …`` (see ``server/private_ipykernel.py``).

    Python's safe-path mode (``-P``): the working folder never goes on ``sys.path``.
    """
    cmd = list(cmd)
    at = _module_at(cmd)
    options = [a for a in cmd[1:at] if a != "-P"]
    return cmd[:1] + ["-P"] + options + [KERNEL_LAUNCHER] + cmd[at + 2:]


class SiteKernelManager(ServerKernelManager):
    """Jupyter's kernel manager: private sockets, a start out of the user's reach, the memory limit."""

    memory_limit = Int(0, help="Bytes the user's kernels may use; 0: no limit.").tag(config=True)
    memory_cgroup = Unicode("", help="cgroup v2 folder to create the user's group in; empty: rlimits.").tag(
        config=True)
    memory_user = Unicode("", help="The user, naming their cgroup.").tag(config=True)

    #: This kernel's private folder: its sockets, and its working folder until its startup ran.
    private_folder = Unicode("")
    #: The notebook's folder, which the kernel enters after its startup.
    notebook_folder = Unicode("")

    @default("transport")
    def _default_transport(self):
        return "ipc"

    def _make_private_folder(self) -> None:
        if self.private_folder and os.path.isdir(self.private_folder):
            return  # a restart: the same folder, sockets and connection file
        self.private_folder = tempfile.mkdtemp(prefix="k-", dir=sockets_root())  # mode 0700
        if self.transport == "ipc":
            # jupyter_client binds "<ip>-<port>" with small port numbers (1, 2, ...).
            self.ip = os.path.join(self.private_folder, "kernel")

    async def _async_pre_start_kernel(self, **kw):
        """The kernel's command and Popen arguments, changed as the module docstring says."""
        spec = self.kernel_spec
        ipython = spec is not None and is_ipykernel(spec.argv)
        if not ipython:  # another language's kernel may not speak ipc: Jupyter's default start
            if self.transport != "tcp":
                from jupyter_client.localinterfaces import localhost

                self.transport, self.ip = "tcp", localhost()
            cmd, kw = await super()._async_pre_start_kernel(**kw)
            return self._limited(cmd), kw
        self._make_private_folder()
        # The base class saves these arguments for restarts, which so start the same way.
        cwd = os.path.abspath(kw.get("cwd") or os.getcwd())
        if cwd != self.private_folder:
            self.notebook_folder = cwd
        kw["env"] = dict(kw.get("env") or os.environ, **{KERNEL_CWD_ENV: self.notebook_folder,
                                                          SOCKETS_ENV: self.private_folder})
        kw["cwd"] = self.private_folder
        cmd, kw = await super()._async_pre_start_kernel(**kw)
        if is_ipykernel(cmd):
            cmd = safe_command(cmd)
        return self._limited(cmd), kw

    def _limited(self, cmd) -> list:
        """``cmd`` under the memory limit, if any."""
        if self.memory_limit > 0:
            # -I -S: the wrapper needs nothing from site-packages; it then execs the kernel.
            cmd = [sys.executable, "-I", "-S", LIMIT_EXEC, str(self.memory_limit), self.memory_cgroup,
                   self.memory_user or "user", "--"] + list(cmd)
        return list(cmd)

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        await super()._async_launch_kernel(kernel_cmd, **kw)
        if self.notebook_folder and self.provisioner is not None:
            # Relative paths the server resolves for this kernel (debugger, file links) are the notebook's.
            self.provisioner.cwd = self.notebook_folder

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart and self.private_folder:
            shutil.rmtree(self.private_folder, ignore_errors=True)
            self.private_folder = ""
            _drop_empty_made_root()
