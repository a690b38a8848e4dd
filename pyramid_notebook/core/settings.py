"""The ``pyramid_notebook.*`` settings, parsed and validated once at start-up."""
import dataclasses
import logging
import os
import sys
from typing import Callable, Optional

from pyramid.exceptions import ConfigurationError

from pyramid_notebook.core.recipes import parse_recipe_settings
from pyramid_notebook.core.settingkernels import parse_kernel_settings
from pyramid_notebook.core.settingaudit import parse_audit_review_settings
from pyramid_notebook.core.shares import parse_share_settings
from pyramid_notebook.core.settingvalues import (  # noqa: F401 (parse_*: importable from here as before)
    PREFIX, _bool, _float, _frame_ancestors, _int, parse_collaboration, parse_page_settings, parse_principals,
    parse_shell_principals,
)
logger = logging.getLogger(__name__)


class MissingSetting(ConfigurationError):
    """A setting the notebook needs is not set at all.

    ``config.include("pyramid_notebook")`` does not stop the site for this one: it logs
    a warning and the notebook's routes answer 503 naming the setting (wrong values
    still raise :class:`~pyramid.exceptions.ConfigurationError` at start-up).
    """


class NotebookNotConfigured(RuntimeError):
    """Raised on a request that needs the notebook while a required setting is missing."""


def default_python() -> str:
    """The Python of this environment, even when embedded in uWSGI.

    Under uWSGI ``sys.executable`` is the uwsgi binary, which cannot run the daemon.
    """
    exe = sys.executable or ""
    if os.path.basename(exe).startswith("python"):
        return exe
    for name in (f"python{sys.version_info[0]}.{sys.version_info[1]}", "python3", "python"):
        candidate = os.path.join(sys.prefix, "bin", name)
        if os.access(candidate, os.X_OK):
            return candidate
    return exe


@dataclasses.dataclass(frozen=True)
class NotebookSettings:
    """Validated ``pyramid_notebook.*`` settings; see the README for each one."""

    #: Folder holding one sub-folder per user: their files, logs and state.
    notebook_folder: str
    #: Hard cap: a notebook stops itself this many seconds after it started.
    kill_timeout: int = 3600
    #: Callable ``(request, port) -> response`` that proxies websockets, or ``None``
    #: to point the browser straight at the notebook's localhost port (pserve mode).
    websocket_proxy: Optional[Callable] = None
    #: Serve notebook pages from this origin (``https://shell.example.com``) instead.
    alternative_domain: str = ""
    #: First localhost port handed to notebook servers.
    port_base: int = 29000
    #: How many ports from ``port_base`` on may be used.
    port_range: int = 100
    #: Seconds a launch waits for a new notebook server to answer.
    startup_timeout: float = 60.0
    #: Python interpreter that runs the daemons (default: the web server's own).
    python: str = dataclasses.field(default_factory=default_python)
    #: Seconds without activity after which a notebook shuts itself down; 0 = never.
    idle_timeout: int = 0
    #: Seconds after which a kernel no browser tab is connected to, idle all along, is shut down
    #: (Jupyter's kernel culling): the kernels of shells the user left. 0 = never.
    kernel_idle_timeout: int = 3600
    #: A kernel started ahead for the next shell: ``"always"`` (default) from a few seconds after
    #: the server's start, ``True`` once the user opened a second shell in the server, ``False`` never.
    spare_kernel: object = False
    #: How many users may have a notebook running at once.
    max_notebooks: int = 20
    #: Where the notebook's "Shut down and return to site" control goes; empty: the
    #: URL of the site's ``shutdown_notebook`` route, if it has one.
    shutdown_url: str = ""
    # --- launch speed (issue 13) ---
    #: Fork notebook servers from a process that has already imported Jupyter.
    fork_server: bool = True
    #: Start the default notebook's kernel (and its startup script) as soon as the server runs.
    warm_kernel: bool = True
    #: A browser's cold launch answers at once with a progress page instead of a frozen tab.
    progress_page: bool = False
    # --- the notebook backend (issue 15) ---
    #: ``local`` (daemons on this machine) or ``jupyterhub`` (servers spawned by a JupyterHub).
    backend: str = "local"
    #: The hub's URL through its proxy, with its base_url (``http://127.0.0.1:8000/notebook/``).
    hub_url: str = ""
    #: The site's JupyterHub service token.
    hub_api_token: str = ""
    #: Where the site calls the hub's REST API; empty: ``<hub_url>hub/api/``.
    hub_api_url: str = ""
    # --- nginx accel mode (issue 11) ---
    #: Path prefix of nginx's internal notebook location (``/_pyramid_notebook/``): the proxy
    #: view answers with ``X-Accel-Redirect`` and nginx relays; empty: the site relays itself.
    accel_redirect: str = ""
    # --- embedding (issue 14) ---
    #: CSP ``frame-ancestors`` sources allowed to frame notebook pages (``'self'`` or exact
    #: origins); empty: the site itself (``'self'``, plus the site's origin when notebook
    #: pages are served from ``alternative_domain``).
    frame_ancestors: tuple = ()
    # --- the INI-only set-up (issue 20) ---
    #: Principals granted the ``shell`` permission on the routes the include adds.
    shell_principals: tuple = ()
    #: The site's INI file: the shell routes' kernels get what ``pshell <config_file>`` gives.
    config_file: str = ""
    #: Callable ``(request) -> principals``: the add-on decides the routes' ACLs with these (issue 35).
    principals: Optional[Callable] = None
    # --- the audit trail (issue 22) ---
    #: Record every cell and terminal line, before it runs, in the user's audit stream.
    audit: bool = True
    #: Ask the user why at launch: ``required``, ``optional`` or ``off``.
    audit_reason: str = "off"
    #: Days of records ``pyramid-notebook audit prune`` keeps; 0 = keep everything.
    audit_keep_days: int = 0
    #: INI file whose logging configuration the notebook servers apply, so that the
    #: ``pyramid_notebook.audit`` logger's records leave the box; empty: their stderr log.
    audit_log_config: str = ""
    #: The kernel debugger: ``refuse`` (off: it can run code the trail would not show) or
    #: ``record`` (every debugger request that can run code is recorded first).
    audit_debugger: str = "refuse"
    # --- operator console (issue 23) ---
    #: Principals (``role:admin``) who may see ``/notebook-admin/``; empty: no console route.
    admin_principals: tuple = ()
    #: The audit review (issue 32, core/settingaudit.py): who reviews, sensitive patterns, their reason prompt.
    auditor_principals: tuple = ()
    audit_sensitive: tuple = ()
    audit_sensitive_reason: str = "off"
    #: Bearer token a scraper may show for ``/notebook-admin/metrics``; empty: admins only.
    metrics_token: str = ""
    #: Memory each user's kernels may use, in bytes (``2G`` in the INI file); 0: no limit.
    memory_limit: int = 0
    #: A cgroup v2 folder the site may create groups in (one per user, ``memory.max``); empty:
    #: per-kernel resource limits instead.
    memory_cgroup: str = ""
    #: IPython kernels forked from a zygote that preloaded them (issue 33); the modules it preloads.
    kernel_fork: bool = True
    kernel_preload: tuple = ()
    # --- perceived speed (issue 24) ---
    #: Folder of the compressed copies of static files; empty: ``<notebook_folder>/.compress-cache``;
    #: ``off``: static files are sent uncompressed.
    compress_cache: str = ""
    #: Compress the notebook page's bundles into that cache at site start, in the background (issue 34).
    precompress: bool = True
    #: Pay a first click's one-off costs at start (issue 34); extensions left out of the notebook's pages.
    warm_up: bool = True
    disabled_extensions: tuple = ()
    # --- team recipes (issue 36): git folder, publishers, outputs, size cap; then live sessions (issue 31) ---
    recipes_folder: str = ""
    recipe_principals: tuple = ()
    recipe_strip_outputs: bool = False
    recipe_max_bytes: int = 20 << 20
    sqlalchemy_url: str = ""
    share_max_seconds: int = 86400
    share_principals: tuple = ()
    user_lookup: Optional[Callable] = None
    #: Real-time collaboration in the notebook servers: ``auto`` (pages of shared servers), ``always``, ``off``.
    collaboration: str = "auto"


def _spare_kernel(settings):
    if str(settings.get(PREFIX + "spare_kernel") or "").strip().lower() == "always":
        return "always"
    try:
        return _bool(settings, "spare_kernel", NotebookSettings.spare_kernel)
    except ConfigurationError:
        raise ConfigurationError(f"{PREFIX}spare_kernel must be true, false or always, "
                                 f"got {settings.get(PREFIX + 'spare_kernel')!r}") from None


def parse_settings(settings: dict, maybe_dotted=None) -> NotebookSettings:
    """Build :class:`NotebookSettings` from a Pyramid settings dict.

    Raises :class:`pyramid.exceptions.ConfigurationError` naming the setting that
    is missing or malformed.
    """
    for name in unknown_settings(settings):
        logger.warning("Unknown setting %s%s ignored: the known ones are in the settings reference "
                       "(pyramid_notebook.core.settingstable)", PREFIX, name)
    backend = (settings.get(PREFIX + "backend") or "local").strip()
    if backend not in BACKENDS:
        raise ConfigurationError(f"{PREFIX}backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    folder = (settings.get(PREFIX + "notebook_folder") or "").strip()
    if not folder and backend == "jupyterhub":
        folder = os.path.join(os.getcwd(), "notebooks")  # unused: the hub keeps the users' files
    # A missing setting is reported after every given value was checked: wrong values fail first.
    missing = None
    if not folder:
        missing = MissingSetting(
            f"{PREFIX}notebook_folder is missing: set it to a folder where each user's notebook files go")
    else:
        folder = os.path.abspath(os.path.expanduser(folder))
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise ConfigurationError(f"{PREFIX}notebook_folder {folder!r} exists but is not a folder")

    websocket_proxy = _callable(settings, "websocket_proxy", maybe_dotted)

    alternative_domain = (settings.get(PREFIX + "alternative_domain") or "").strip().rstrip("/")
    if alternative_domain and not alternative_domain.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"{PREFIX}alternative_domain must be an origin like https://shell.example.com, "
            f"got {alternative_domain!r}"
        )

    port_base = _int(settings, "port_base", NotebookSettings.port_base, 1024, 65535)
    port_range = _int(settings, "port_range", NotebookSettings.port_range, 1, 65536 - port_base)
    python = (settings.get(PREFIX + "python") or "").strip() or default_python()
    shutdown_url = (settings.get(PREFIX + "shutdown_url") or "").strip()
    if shutdown_url and not shutdown_url.startswith(("/", "http://", "https://")):
        raise ConfigurationError(
            f"{PREFIX}shutdown_url must be a path like /notebook/shutdown or a full URL, got {shutdown_url!r}")
    try:
        hub = _hub_settings(settings, backend, websocket_proxy)
    except MissingSetting as e:
        missing, hub = missing or e, {"backend": backend}
    parsed = NotebookSettings(
        **hub,
        accel_redirect=_accel_redirect(settings),
        notebook_folder=folder,
        kill_timeout=_int(settings, "kill_timeout", NotebookSettings.kill_timeout, 1),
        websocket_proxy=websocket_proxy,
        alternative_domain=alternative_domain,
        port_base=port_base,
        port_range=port_range,
        startup_timeout=_float(settings, "startup_timeout", NotebookSettings.startup_timeout, 0),
        python=python,
        shutdown_url=shutdown_url,
        idle_timeout=_int(settings, "idle_timeout", NotebookSettings.idle_timeout, 0),
        kernel_idle_timeout=_int(settings, "kernel_idle_timeout", NotebookSettings.kernel_idle_timeout, 0),
        spare_kernel=_spare_kernel(settings),
        max_notebooks=_int(settings, "max_notebooks", NotebookSettings.max_notebooks, 1),
        fork_server=_bool(settings, "fork_server", NotebookSettings.fork_server),
        warm_kernel=_bool(settings, "warm_kernel", NotebookSettings.warm_kernel),
        progress_page=_bool(settings, "progress_page", NotebookSettings.progress_page),
        frame_ancestors=_frame_ancestors(settings),
        shell_principals=parse_shell_principals(settings),
        config_file=_config_file(settings),
        principals=_callable(settings, "principals", maybe_dotted),
        **_audit_settings(settings),
        **_console_settings(settings),
        compress_cache=_compress_cache(settings),
        precompress=_bool(settings, "precompress", NotebookSettings.precompress),
        **parse_page_settings(settings),
        **parse_recipe_settings(settings, folder),
        **parse_share_settings(settings, folder), user_lookup=_callable(settings, "user_lookup", maybe_dotted),
        collaboration=parse_collaboration(settings),
    )
    if missing is not None:
        raise missing
    return parsed


def _callable(settings, name, maybe_dotted):
    """A setting naming a callable (dotted name), or ``None`` when empty."""
    dotted = (settings.get(PREFIX + name) or "").strip()
    if not dotted:
        return None
    try:
        value = (maybe_dotted or _resolve)(dotted)
    except Exception as e:  # ImportError, AttributeError, ValueError from the resolver
        raise ConfigurationError(f"{PREFIX}{name} {dotted!r} cannot be imported: {e}") from None
    if not callable(value):
        raise ConfigurationError(f"{PREFIX}{name} {dotted!r} is not callable")
    return value


def unknown_settings(settings: dict) -> list:
    """``pyramid_notebook.<name>`` settings that are not in the table (typos); names with a
    further dot (``pyramid_notebook.demo.*``) belong to others and are left alone."""
    from pyramid_notebook.core.settingstable import setting_names

    known = setting_names()
    names = (key[len(PREFIX):] for key in settings if isinstance(key, str) and key.startswith(PREFIX))
    return sorted(name for name in names if "." not in name and name not in known)


def _config_file(settings) -> str:
    """``pyramid_notebook.config_file``: the site's INI file (write ``%(__file__)s``), or empty."""
    value = (settings.get(PREFIX + "config_file") or "").strip()
    if not value:
        return ""
    path = value.split("#", 1)[0]
    if not os.path.isfile(path):
        raise ConfigurationError(f"{PREFIX}config_file {value!r} is not a file: set it to the site's INI file, "
                                 "e.g. %(__file__)s")
    return os.path.abspath(path) + (value[len(path):] if "#" in value else "")


#: Values of ``pyramid_notebook.audit_reason``.
AUDIT_REASONS = ("off", "optional", "required")
#: Values of ``pyramid_notebook.audit_debugger``.
AUDIT_DEBUGGER = ("refuse", "record")


def _audit_settings(settings) -> dict:
    """The ``audit*`` settings (see :mod:`pyramid_notebook.core.audit`)."""
    reason = (settings.get(PREFIX + "audit_reason") or "off").strip().lower()
    if reason not in AUDIT_REASONS:
        raise ConfigurationError(f"{PREFIX}audit_reason must be one of {', '.join(AUDIT_REASONS)}, got {reason!r}")
    debugger = (settings.get(PREFIX + "audit_debugger") or "refuse").strip().lower()
    if debugger not in AUDIT_DEBUGGER:
        raise ConfigurationError(f"{PREFIX}audit_debugger must be one of {', '.join(AUDIT_DEBUGGER)}, got {debugger!r}")
    log_config = (settings.get(PREFIX + "audit_log_config") or "").strip()
    if log_config:
        log_config = os.path.abspath(os.path.expanduser(log_config))
        if not os.path.isfile(log_config):
            raise ConfigurationError(f"{PREFIX}audit_log_config {log_config!r} is not a file")
    return {"audit": _bool(settings, "audit", True), "audit_reason": reason,
            "audit_keep_days": _int(settings, "audit_keep_days", 0, 0), "audit_log_config": log_config,
            "audit_debugger": debugger}


def _console_settings(settings) -> dict:
    """``admin_principals``, ``metrics_token`` (issue 23), and the kernels' (core/settingkernels.py)."""
    principals = parse_principals(settings.get(PREFIX + "admin_principals"))
    return {"admin_principals": principals, "metrics_token": (settings.get(PREFIX + "metrics_token") or "").strip(),
            **parse_kernel_settings(settings), **parse_audit_review_settings(settings, principals)}


#: Values of ``pyramid_notebook.backend``.
BACKENDS = ("local", "jupyterhub")


def _hub_settings(settings, backend, websocket_proxy) -> dict:
    """The ``hub_*`` settings, checked when the JupyterHub backend is chosen."""
    hub = {"backend": backend}
    for name in ("hub_url", "hub_api_token", "hub_api_url"):
        hub[name] = (settings.get(PREFIX + name) or "").strip()
    if backend != "jupyterhub":
        return hub
    for name in ("hub_url", "hub_api_url"):
        if hub[name] and not hub[name].startswith(("http://", "https://")):
            raise ConfigurationError(f"{PREFIX}{name} must be a URL like http://127.0.0.1:8000/notebook/, "
                                     f"got {hub[name]!r}")
    if not hub["hub_url"]:
        raise MissingSetting(f"{PREFIX}hub_url is missing: the JupyterHub's URL through its proxy, with its "
                                 "base_url (the path of your notebook_proxy route), e.g. http://127.0.0.1:8000/notebook/")
    if not hub["hub_api_token"]:
        raise MissingSetting(f"{PREFIX}hub_api_token is missing: the site's JupyterHub service token")
    if websocket_proxy is None:
        raise ConfigurationError(f"{PREFIX}backend = jupyterhub needs {PREFIX}websocket_proxy: the browser "
                                 "reaches the hub's servers only through the site")
    return hub


def _accel_redirect(settings) -> str:
    """``pyramid_notebook.accel_redirect``: empty, or a path prefix ending in ``/``."""
    value = (settings.get(PREFIX + "accel_redirect") or "").strip()
    if not value:
        return ""
    if not value.startswith("/") or any(c in value for c in "?#% \t"):
        raise ConfigurationError(
            f"{PREFIX}accel_redirect must be a path like /_pyramid_notebook/ (nginx's internal location), "
            f"got {value!r}")
    return value.rstrip("/") + "/"


def _compress_cache(settings) -> str:
    """``pyramid_notebook.compress_cache``: empty (the default folder), ``off`` or a folder of the site's."""
    import sysconfig

    value = (settings.get(PREFIX + "compress_cache") or "").strip()
    if value.lower() in ("off", "false", "no"):
        return "off"
    if not value:
        return ""
    folder = os.path.realpath(value)
    for name in ("purelib", "platlib"):
        root = os.path.realpath(sysconfig.get_paths()[name])
        if folder == root or folder.startswith(root.rstrip(os.sep) + os.sep):
            raise ConfigurationError(f"{PREFIX}compress_cache {value!r} is inside site-packages: use a folder the "
                                     "site owns and may write to (it holds compressed copies of static files)")
    return os.path.abspath(value)


def _resolve(dotted):
    from pyramid.path import DottedNameResolver

    return DottedNameResolver().resolve(dotted)


def get_notebook_settings(registry) -> NotebookSettings:
    """The settings parsed by ``config.include("pyramid_notebook")``."""
    missing = getattr(registry, "pyramid_notebook_missing", "")
    if missing:
        raise NotebookNotConfigured(missing)
    try:
        return registry.pyramid_notebook_settings
    except AttributeError:
        raise RuntimeError(
            'pyramid_notebook is not configured: call config.include("pyramid_notebook")'
        ) from None
