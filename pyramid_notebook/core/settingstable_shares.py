"""The settings reference's entries for live shared sessions (issue 31), as ``(term, text)`` pairs:
:data:`pyramid_notebook.core.settingstable.SETTINGS` ends with them (kept here so that the table's
module stays under the package's size limit)."""

#: ``(term, text)`` of each entry, reStructuredText, in the order of the reference.
SHARE_SETTINGS = (
    (
        '``pyramid_notebook.share_principals`` (default: the ``shell_principals``) and '
        '``pyramid_notebook.share_max_seconds`` (default ``86400``)',
        """
        Who may share their running notebook with a team mate (``POST /notebook/shares``; see "Live
        sessions: grants" in ``docs/sharing.rst``; anyone logged in may list and revoke the grants they
        were given), and the longest a grant may last (a grant without ``expires_in`` lasts an hour).
        """),
    (
        '``pyramid_notebook.sqlalchemy_url`` (default: SQLite in ``<notebook_folder>/.state/.site/``)',
        """
        The SQLAlchemy database URL where grants are kept (``pyramid_notebook_shares``, created at start
        if missing), so that they survive a restart and every web node sees them: give several nodes one
        PostgreSQL (``postgresql+psycopg://user@host/db``). The add-on uses an engine of its own, never
        the site's session. Only used when sharing is on.
        """),
    (
        '``pyramid_notebook.user_lookup`` (default empty)',
        """
        Dotted name of a callable ``(request, user_id)`` returning the user's display name, or ``None``
        for an id the site does not know: sharing with an unknown id is then refused (400), and lists
        show names. It may return ``{"name": ..., "principals": [...]}`` instead: with the principals
        known, a ``collaborate`` grant to someone without the shell permission is made ``watch``.
        """),
    (
        '``pyramid_notebook.collaboration`` (default ``auto``)',
        """
        Real-time co-editing (jupyter-collaboration) in the notebook servers: ``always`` (every server
        and page), ``auto`` (a server loads it when it is first shared, without a restart: a guest's
        first page, or the owner's Share dialog, whose page then offers a reload; its pages load the
        browser side from then on) or ``off`` (a collaborate grant then shares without live
        co-editing). ``auto`` because loading it costs more than 5 % of page bytes and an idle server's
        memory (see "Live sessions: real-time collaboration" in ``docs/sharing.rst``).
        """),
)
