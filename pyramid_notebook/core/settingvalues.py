"""Parsers of single ``pyramid_notebook.*`` values: numbers, switches, origins, principals.

Each raises :class:`~pyramid.exceptions.ConfigurationError` naming the setting; used by
:func:`pyramid_notebook.core.settings.parse_settings`, which builds the frozen settings from them.
"""
import re

from pyramid.exceptions import ConfigurationError

from pyramid_notebook.core.urls import normalize_origin

PREFIX = "pyramid_notebook."


def parse_shell_principals(settings: dict) -> tuple:
    """``pyramid_notebook.shell_principals``: the principals granted the ``shell`` permission
    on the routes ``config.include("pyramid_notebook")`` adds (empty: add no routes).

    Separated by spaces or commas, e.g. ``role:editor alice``.
    """
    raw = settings.get(PREFIX + "shell_principals") or ""
    if not isinstance(raw, str):
        raw = " ".join(str(item) for item in raw)
    return tuple(dict.fromkeys(raw.replace(",", " ").split()))


def _int(settings, name, default, minimum=0, maximum=None):
    raw = settings.get(PREFIX + name)
    if raw is None or str(raw).strip() == "":
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigurationError(f"{PREFIX}{name} must be a whole number, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigurationError(f"{PREFIX}{name} must be {bounds}, got {value}")
    return value


def _bool(settings, name, default):
    raw = settings.get(PREFIX + name)
    if raw is None or str(raw).strip() == "":
        return default
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    raise ConfigurationError(f"{PREFIX}{name} must be true or false, got {raw!r}")


def _float(settings, name, default, minimum):
    raw = settings.get(PREFIX + name)
    if raw is None or str(raw).strip() == "":
        return default
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ConfigurationError(f"{PREFIX}{name} must be a number of seconds, got {raw!r}") from None
    if not value > minimum:
        raise ConfigurationError(f"{PREFIX}{name} must be more than {minimum}, got {value}")
    return value


_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+/?$")


def _frame_ancestors(settings) -> tuple:
    """Parse ``frame_ancestors``: ``'self'``, ``'none'`` or exact ``scheme://host[:port]`` origins."""
    raw = (settings.get(PREFIX + "frame_ancestors") or "").replace(",", " ").split()
    sources = []
    for item in raw:
        if item.lower() in ("'self'", "'none'"):
            sources.append(item.lower())
            continue
        origin = normalize_origin(item) if _ORIGIN.match(item) else ""
        if not origin:
            raise ConfigurationError(
                f"{PREFIX}frame_ancestors takes 'self', 'none' or exact origins such as https://app.example.com "
                f"(no paths, no wildcards: the save bridge answers exact origins only), got {item!r}")
        sources.append(origin)
    if "'none'" in sources and len(sources) > 1:
        raise ConfigurationError(f"{PREFIX}frame_ancestors: 'none' cannot be combined with other sources")
    return tuple(dict.fromkeys(sources))


def parse_principals(raw) -> tuple:
    """``admin_principals``: principals separated by spaces or commas, in order, once each."""
    return tuple(dict.fromkeys(str(raw or "").replace(",", " ").split()))


#: A lab extension's package name or one of its plugins' ids (``@scope/name``, ``name:plugin``).
_EXTENSION = re.compile(r"^[@A-Za-z0-9_.][A-Za-z0-9_./:@-]*$")


def parse_page_settings(settings) -> dict:
    """``warm_up`` and ``disabled_extensions`` (issue 34): what a fresh site pays at start, what the
    notebook's pages leave out."""
    return {"warm_up": _bool(settings, "warm_up", True), "disabled_extensions": parse_disabled_extensions(settings)}


def parse_disabled_extensions(settings) -> tuple:
    """``disabled_extensions``: lab extension names or plugin ids, separated by spaces or commas."""
    names = tuple(dict.fromkeys(str(settings.get(PREFIX + "disabled_extensions") or "").replace(",", " ").split()))
    for name in names:
        if not _EXTENSION.match(name):
            raise ConfigurationError(f"{PREFIX}disabled_extensions takes lab extension names or plugin ids such "
                                     f"as @jupyterlab/debugger-extension, got {name!r}")
    return names


#: Values of ``pyramid_notebook.collaboration`` (issue 31), and its default (docs/sharing.rst says why).
COLLABORATION_MODES = ("auto", "always", "off")
COLLABORATION = "auto"


def parse_collaboration(settings) -> str:
    """``collaboration``: real-time co-editing in the notebook servers, ``auto``, ``always`` or ``off``."""
    value = str(settings.get(PREFIX + "collaboration") or COLLABORATION).strip().lower()
    if value not in COLLABORATION_MODES:
        raise ConfigurationError(f"{PREFIX}collaboration must be one of {', '.join(COLLABORATION_MODES)}, "
                                 f"got {settings.get(PREFIX + 'collaboration')!r}")
    return value
