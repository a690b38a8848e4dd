"""The settings reference's entries for kernels forked from a zygote (issue 33), as ``(term, text)``
pairs: :data:`pyramid_notebook.core.settingstable.SETTINGS` ends with them (kept here so that the
table's module stays under the package's size limit)."""

#: ``(term, text)`` of each entry, reStructuredText, in the order of the reference.
KERNEL_SETTINGS = (
    (
        '``pyramid_notebook.kernel_fork`` (default ``true``)',
        """
        IPython kernels are forked from a *kernel zygote*, a process that has already imported IPython,
        ipykernel and the site's modules, instead of starting a fresh Python each: a new kernel answers
        in a fraction of the time. Under the fork server (the default) there is one zygote for the whole
        site, and it finds the site's modules itself (what building the app from a pshell startup's INI
        file imports, found in a throwaway process); without it each notebook server forks its own
        (``server/kernel_zygote.py``, ``server/site_zygote.py``, "Kernels" in ``docs/design.rst``). A
        preload that leaves a thread, a zmq context or a socket behind is refused (the server's log
        names the module) and kernels start the plain way; ``false`` always does. Local backend only (a
        JupyterHub's servers keep plain kernels).
        """),
    (
        '``pyramid_notebook.kernel_preload`` (default empty)',
        """
        Modules (separated by spaces or commas, e.g. ``my_site.models my_site.views``) the kernel zygote
        imports besides IPython, ipykernel, those the ``startup`` script imports at its top level
        (Pyramid's bootstrap for a pshell startup) and, for the site's zygote, those the site's app
        imports: for a site whose startup is not pshell's, or a per-server zygote. They must not start
        a thread or open a connection at import. Changing one of their files replaces the zygote.
        """),
)
