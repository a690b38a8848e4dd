"""Jupyter's kernel manager, starting each kernel under the user's memory limit.

See :mod:`pyramid_notebook.server.kernel_limits` (the config that selects it) and
:mod:`pyramid_notebook.server.limit_exec` (what applies the limit).
"""
import os
import sys

from jupyter_server.services.kernels.kernelmanager import ServerKernelManager
from traitlets import Int, Unicode

LIMIT_EXEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "limit_exec.py")


class LimitedKernelManager(ServerKernelManager):
    """Jupyter's kernel manager, starting each kernel under the user's memory limit."""

    memory_limit = Int(0, help="Bytes the user's kernels may use; 0: no limit.").tag(config=True)
    memory_cgroup = Unicode("", help="cgroup v2 folder to create the user's group in; empty: rlimits.").tag(
        config=True)
    memory_user = Unicode("", help="The user, naming their cgroup.").tag(config=True)

    async def _async_pre_start_kernel(self, **kw):
        cmd, kw = await super()._async_pre_start_kernel(**kw)
        if self.memory_limit > 0:
            # -I -S: the wrapper needs nothing from site-packages; it then execs the kernel.
            cmd = [sys.executable, "-I", "-S", LIMIT_EXEC, str(self.memory_limit), self.memory_cgroup,
                   self.memory_user or "user", "--"] + list(cmd)
        return cmd, kw
