#!/usr/bin/env python
"""Run a kernel under the user's memory limit: ``limit_exec.py LIMIT CGROUP USER -- KERNEL ARGV...``.

Started by :class:`pyramid_notebook.server.kernel_start.SiteKernelManager` in place of the
kernel's own command, it puts itself under the limit and then becomes the kernel (``exec``), so
the kernel's pid, signals and exit status stay what Jupyter expects. Standalone on purpose (no
package imports), so that it costs one small interpreter start.

* ``CGROUP`` (``pyramid_notebook.memory_cgroup``) names a cgroup v2 folder the site may write:
  the user's group ``<CGROUP>/pyramid-notebook-<USER>`` gets ``memory.max = LIMIT`` (no swap) and
  the kernel joins it, so all of the user's kernels share one limit; past it, Linux's OOM killer
  stops a kernel of that group (Jupyter then says the kernel died), never another user's.
* Otherwise (no cgroup named, or it cannot be written) each kernel gets ``RLIMIT_DATA = LIMIT``:
  its heap and private anonymous memory, which is what an allocation takes. An allocation past
  it fails in the kernel with ``MemoryError`` and the kernel carries on. ``RLIMIT_AS`` is not
  used: an idle IPython kernel already reserves some 650 MB of address space it never touches.
"""
import os
import re
import resource
import sys

#: Environment variable the kernel finds its limit in (the IPython startup file reads it).
LIMIT_ENV = "PYRAMID_NOTEBOOK_MEMORY_LIMIT"
#: How the limit was applied: ``cgroup`` or ``rlimit``.
MODE_ENV = "PYRAMID_NOTEBOOK_MEMORY_LIMIT_MODE"


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def join_cgroup(parent, user, limit) -> str:
    """Put this process in ``parent``'s group for ``user`` with ``memory.max = limit``; its path."""
    group = os.path.join(parent, "pyramid-notebook-" + re.sub(r"[^A-Za-z0-9_.-]", "_", user)[:100])
    os.makedirs(group, exist_ok=True)
    _write(os.path.join(group, "memory.max"), str(limit))
    try:
        _write(os.path.join(group, "memory.swap.max"), "0")  # past the limit means stopped, not swapping
    except OSError:
        pass  # no swap accounting on this kernel: memory.max still holds
    _write(os.path.join(group, "cgroup.procs"), "0")  # "0": the writing process
    return group


def apply_limit(limit, cgroup, user) -> str:
    """Apply the limit to this process; return ``cgroup`` or ``rlimit``."""
    if cgroup:
        try:
            join_cgroup(cgroup, user, limit)
            return "cgroup"
        except OSError as e:
            print(f"pyramid_notebook: cannot use the cgroup {cgroup} ({e}); limiting each kernel instead",
                  file=sys.stderr)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    return "rlimit"


def main(argv) -> None:
    """Apply the limit, then exec the kernel's command."""
    if len(argv) < 5 or argv[3] != "--":
        print(__doc__.split("\n")[0], file=sys.stderr)
        sys.exit(2)
    limit, cgroup, user, cmd = int(argv[0]), argv[1], argv[2], argv[4:]
    if limit > 0:
        os.environ[MODE_ENV] = apply_limit(limit, cgroup, user)
        os.environ[LIMIT_ENV] = str(limit)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
