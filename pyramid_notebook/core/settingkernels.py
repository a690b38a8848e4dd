"""The settings of the users' kernels: memory limit (issue 23) and forking from a zygote (issue 33).

Parsed by :func:`pyramid_notebook.core.settings.parse_settings`; kept here so that module stays
under the package's size limit.
"""
import os

from pyramid.exceptions import ConfigurationError

from pyramid_notebook.core.settingvalues import PREFIX, _bool

#: ``pyramid_notebook.kernel_fork``'s default: IPython kernels forked from the kernel zygote.
KERNEL_FORK = True


def parse_kernel_settings(settings) -> dict:
    """``memory_limit``, ``memory_cgroup``, ``kernel_fork`` and ``kernel_preload``."""
    from pyramid_notebook.core.sizes import parse_size

    raw_limit = (str(settings.get(PREFIX + "memory_limit") or "")).strip()
    try:
        memory_limit = parse_size(raw_limit) if raw_limit else 0
    except ValueError:
        raise ConfigurationError(f"{PREFIX}memory_limit must be a size such as 2G or 400M, got {raw_limit!r}") \
            from None
    if memory_limit and memory_limit < 64 << 20:
        raise ConfigurationError(f"{PREFIX}memory_limit must be at least 64M (a kernel needs that to start), "
                                 f"got {raw_limit!r}")
    cgroup = (settings.get(PREFIX + "memory_cgroup") or "").strip()
    if cgroup and not os.path.isabs(cgroup):
        raise ConfigurationError(f"{PREFIX}memory_cgroup must be an absolute path under /sys/fs/cgroup, "
                                 f"got {cgroup!r}")
    preload = tuple((settings.get(PREFIX + "kernel_preload") or "").replace(",", " ").split())
    for name in preload:
        if not all(part.isidentifier() for part in name.split(".")):
            raise ConfigurationError(f"{PREFIX}kernel_preload must list module names (my_site.models), got {name!r}")
    return {"memory_limit": memory_limit, "memory_cgroup": cgroup,
            "kernel_fork": _bool(settings, "kernel_fork", KERNEL_FORK), "kernel_preload": preload}
