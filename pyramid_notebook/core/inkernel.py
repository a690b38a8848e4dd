"""Whether this process builds the site only to use it: a notebook kernel, or a kernel zygote's probe.

A kernel bootstraps the site's app the way ``pshell`` does (:mod:`pyramid_notebook.core.pshell`), and the
site's ``includeme`` subscribes its start-time work to ``ApplicationCreated``: the fork server's watcher,
the warm-up, the compression of the page's bundles, the audit trails' refresher, the grants' table. In a
web process that work is the point. In a kernel it was a watcher per kernel that spawned a fork server of
its own once the site's had stopped (a process nobody stops), and a warm-up and an audit verification per
user's kernel. So a kernel says what it is before it builds the app (:func:`mark`: the first line of every
shell's startup script, ``pyramid_notebook/server/shells.py``; the zygote's probe), and
:func:`pyramid_notebook.web.sitestart.subscribe` runs none of that work here.

A flag of this process, not an environment variable: a web server started from a notebook's cell is a
web server.
"""

_IN_KERNEL = [False]

#: The line a shell's startup script begins with (a kernel without this package runs the rest as before).
MARK_LINE = ("try:\n    import pyramid_notebook.core.inkernel as _pn_inkernel; _pn_inkernel.mark(); del _pn_inkernel\n"
             "except ImportError:\n    pass\n")


def mark() -> None:
    """This process is a notebook kernel (or a zygote's probe): the site it builds starts nothing."""
    _IN_KERNEL[0] = True


def in_kernel() -> bool:
    """True in a process that :func:`mark` marked."""
    return _IN_KERNEL[0]
