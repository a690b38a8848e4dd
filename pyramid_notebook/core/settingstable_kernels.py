"""The settings reference's entries for kernels forked from a zygote (issue 33), as ``(term, text)``
pairs: :data:`pyramid_notebook.core.settingstable.SETTINGS` ends with them (kept here so that the
table's module stays under the package's size limit)."""

#: ``(term, text)`` of each entry, reStructuredText, in the order of the reference.
KERNEL_SETTINGS = (
    (
        '``pyramid_notebook.kernel_fork`` (default ``true``)',
        """
        IPython kernels are forked from a *kernel zygote*, a process of the user's notebook server that
        has already imported IPython, ipykernel and the site's modules (``kernel_preload``, and what the
        ``startup`` script imports), instead of starting a fresh Python each: a new kernel answers
        sooner and shares those pages with the zygote (``server/kernel_zygote.py``, "Kernels" in
        ``docs/design.rst``). A preload that leaves a thread, a zmq context or a socket behind is refused
        (the server's log names the module) and kernels start the plain way; ``false`` always does.
        Local backend only (a JupyterHub's servers keep plain kernels).
        """),
    (
        '``pyramid_notebook.kernel_preload`` (default empty)',
        """
        Modules (separated by spaces or commas, e.g. ``my_site.models my_site.views``) the kernel zygote
        imports besides IPython, ipykernel and those the ``startup`` script imports at its top level
        (Pyramid's bootstrap for a pshell startup). They must not start a thread or open a connection
        at import. Changing one of their files replaces the zygote.
        """),
)
