"""The kernel manager's former name: see :class:`pyramid_notebook.server.kernel_start.SiteKernelManager`.

It starts every kernel under the user's memory limit when the site sets one, and always on private
sockets and out of the user's reach. Kept so that a config naming the old class keeps working.
"""
from pyramid_notebook.server.kernel_start import LIMIT_EXEC, SiteKernelManager  # noqa: F401

#: Older name of :class:`~pyramid_notebook.server.kernel_start.SiteKernelManager`.
LimitedKernelManager = SiteKernelManager
