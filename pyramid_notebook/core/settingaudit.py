"""The audit review's settings (issue 32): who reviews, which code is sensitive, whether it needs a reason.

Parsed by :func:`pyramid_notebook.core.settings.parse_settings`; kept here so that module stays under
the package's size limit. Documented in :mod:`pyramid_notebook.core.settingstable_audit`.
"""
import re

from pyramid.exceptions import ConfigurationError

from pyramid_notebook.core.settingvalues import PREFIX, parse_principals

#: Values of ``pyramid_notebook.audit_sensitive_reason``, the default first.
SENSITIVE_REASONS = ("off", "required")


def parse_sensitive_patterns(raw) -> tuple:
    """``audit_sensitive``: one regular expression per line (blank lines ignored); a bad one raises
    :class:`~pyramid.exceptions.ConfigurationError` naming its line."""
    patterns = []
    for number, line in enumerate(str(raw or "").splitlines(), 1):
        pattern = line.strip()
        if not pattern:
            continue
        try:
            re.compile(pattern)
        except re.error as e:
            raise ConfigurationError(f"{PREFIX}audit_sensitive, line {number} ({pattern!r}) is not a regular "
                                     f"expression: {e}") from None
        patterns.append(pattern)
    return tuple(dict.fromkeys(patterns))


def parse_audit_review_settings(settings, admin_principals=()) -> dict:
    """``auditor_principals`` (default: the admin principals), ``audit_sensitive``, ``audit_sensitive_reason``."""
    reason = str(settings.get(PREFIX + "audit_sensitive_reason") or SENSITIVE_REASONS[0]).strip().lower()
    if reason not in SENSITIVE_REASONS:
        raise ConfigurationError(f"{PREFIX}audit_sensitive_reason must be one of {', '.join(SENSITIVE_REASONS)}, "
                                 f"got {settings.get(PREFIX + 'audit_sensitive_reason')!r}")
    return {"auditor_principals": parse_principals(settings.get(PREFIX + "auditor_principals")) or
            tuple(admin_principals),
            "audit_sensitive": parse_sensitive_patterns(settings.get(PREFIX + "audit_sensitive")),
            "audit_sensitive_reason": reason}
