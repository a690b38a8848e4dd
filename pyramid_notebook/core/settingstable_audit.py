"""The settings reference's entries for the audit review (issue 32), as ``(term, text)`` pairs:
:data:`pyramid_notebook.core.settingstable.SETTINGS` ends with them (kept here so that the table's
module stays under the package's size limit)."""

#: ``(term, text)`` of each entry, reStructuredText, in the order of the reference.
AUDIT_REVIEW_SETTINGS = (
    (
        '``pyramid_notebook.auditor_principals`` (default: the ``admin_principals``)',
        """
        Principals (space separated) who may review the audit trail at ``/notebook-admin/audit``: search
        every session's cells and terminal lines, see whether each user's trail verifies, mark sessions
        reviewed or flagged with a note, export them (see "Audit review" in ``docs/audit.rst``). An
        auditor never reviews their own sessions.
        """),
    (
        '``pyramid_notebook.audit_sensitive`` (default empty)',
        """
        Regular expressions (Python's ``re``), one per line, e.g. ``DROP\\s+TABLE`` and ``\\.delete\\(``:
        a session with a cell or terminal line matching one is flagged by itself until an auditor
        reviews it. A pattern that does not compile stops the site at start, naming its line.
        """),
    (
        '``pyramid_notebook.audit_sensitive_reason`` (default ``off``)',
        """
        ``required``: the notebook asks the user why before a cell matching ``audit_sensitive`` runs, and
        records the reason with the cell; ``off``: matching cells run as any other (and flag their session).
        """),
)
