"""The kernel manager every server uses, and the user's memory limit on their kernels (``pyramid_notebook.memory_limit``).

Jupyter's kernel manager is always replaced by
:class:`~pyramid_notebook.server.kernel_start.SiteKernelManager` (private sockets, a start out of
the user's reach); with a limit, it starts every kernel
(the warm one, the page's, restarts) through :mod:`pyramid_notebook.server.limit_exec`: a cgroup
v2 group per user where the site may create one, otherwise a per-kernel ``RLIMIT_DATA``. The
notebook server itself is not limited: it must stay up to tell the user what happened.

A kernel whose allocation is refused raises ``MemoryError``; the IPython startup file written by
:func:`write_startup_file` adds one line under that traceback naming the limit ("stopped at the
2 GiB limit"), so the user knows it is the site's limit and not the machine's.
"""
import os

from pyramid_notebook.core.sizes import format_size

#: The kernel manager class of every server (imports Jupyter, so it has a module of its own).
KERNEL_MANAGER_CLASS = "pyramid_notebook.server.kernel_start.SiteKernelManager"
#: The kernel provisioner of ``pyramid_notebook.kernel_fork`` (the entry point ``setup.py`` registers).
PROVISIONER_NAME = "pyramid-notebook-zygote"
#: Name of the IPython startup file; sorts before the site's ``00-pyramid-notebook.py``.
STARTUP_FILE = "000-pyramid-notebook-memory.py"

STARTUP = '''# Written by pyramid_notebook: name the site's memory limit under a MemoryError.
def _pyramid_notebook_memory_limit():
    import os
    limit = int(os.environ.get("PYRAMID_NOTEBOOK_MEMORY_LIMIT") or 0)
    ip = get_ipython()
    if not limit or ip is None:
        return
    message = "The allocation was stopped at the {size} limit of this notebook (pyramid_notebook.memory_limit)."

    def handler(shell, etype, value, tb, tb_offset=None):
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        print(message)

    ip.set_custom_exc((MemoryError,), handler)


_pyramid_notebook_memory_limit()
del _pyramid_notebook_memory_limit
'''


def server_config(context) -> dict:
    """Jupyter config entries: the site's kernel manager, with the context's ``memory_limit`` (0: none),
    and the zygote's provisioner when the context's ``kernel_fork`` is on."""
    limit = max(0, int(context.get("memory_limit") or 0))
    config = {
        "MappingKernelManager": {"kernel_manager_class": KERNEL_MANAGER_CLASS},
        "SiteKernelManager": {"memory_limit": limit, "memory_cgroup": context.get("memory_cgroup") or "",
                              "memory_user": context.get("username") or ""},
    }
    if context.get("kernel_fork"):  # IPython kernels forked from the kernel zygote (server/kernel_provisioner.py)
        config["KernelProvisionerFactory"] = {"default_provisioner_name": PROVISIONER_NAME}
    return config


def write_startup_file(startup_dir, context) -> None:
    """Write (or remove) the IPython startup file that explains a ``MemoryError``."""
    path = os.path.join(startup_dir, STARTUP_FILE)
    limit = int(context.get("memory_limit") or 0)
    if limit <= 0:
        if os.path.exists(path):
            os.unlink(path)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(STARTUP.replace("{size}", format_size(limit)))
