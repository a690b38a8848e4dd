"""The ``pyramid_notebook.*`` settings, parsed and validated once at start-up."""
import dataclasses
import os
import re
import sys
from typing import Callable, Optional

from pyramid.exceptions import ConfigurationError

PREFIX = "pyramid_notebook."


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
    # --- perceived speed (issue 24) ---
    #: Folder of the compressed copies of static files; empty: ``<notebook_folder>/.compress-cache``;
    #: ``off``: static files are sent uncompressed.
    compress_cache: str = ""


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
    from pyramid_notebook.core.origin import normalize_origin

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


def parse_settings(settings: dict, maybe_dotted=None) -> NotebookSettings:
    """Build :class:`NotebookSettings` from a Pyramid settings dict.

    Raises :class:`pyramid.exceptions.ConfigurationError` naming the setting that
    is missing or malformed.
    """
    backend = (settings.get(PREFIX + "backend") or "local").strip()
    if backend not in BACKENDS:
        raise ConfigurationError(f"{PREFIX}backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    folder = (settings.get(PREFIX + "notebook_folder") or "").strip()
    if not folder and backend == "jupyterhub":
        folder = os.path.join(os.getcwd(), "notebooks")  # unused: the hub keeps the users' files
    if not folder:
        raise ConfigurationError(
            f"{PREFIX}notebook_folder is missing: set it to a folder where each user's notebook files go"
        )
    folder = os.path.abspath(os.path.expanduser(folder))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ConfigurationError(f"{PREFIX}notebook_folder {folder!r} exists but is not a folder")

    proxy = (settings.get(PREFIX + "websocket_proxy") or "").strip()
    websocket_proxy = None
    if proxy:
        try:
            websocket_proxy = (maybe_dotted or _resolve)(proxy)
        except Exception as e:  # ImportError, AttributeError, ValueError from the resolver
            raise ConfigurationError(f"{PREFIX}websocket_proxy {proxy!r} cannot be imported: {e}") from None
        if not callable(websocket_proxy):
            raise ConfigurationError(f"{PREFIX}websocket_proxy {proxy!r} is not callable")

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
    hub = _hub_settings(settings, backend, websocket_proxy)
    return NotebookSettings(
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
        max_notebooks=_int(settings, "max_notebooks", NotebookSettings.max_notebooks, 1),
        fork_server=_bool(settings, "fork_server", NotebookSettings.fork_server),
        warm_kernel=_bool(settings, "warm_kernel", NotebookSettings.warm_kernel),
        progress_page=_bool(settings, "progress_page", NotebookSettings.progress_page),
        frame_ancestors=_frame_ancestors(settings),
        compress_cache=_compress_cache(settings),
    )


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
        raise ConfigurationError(f"{PREFIX}hub_url is missing: the JupyterHub's URL through its proxy, with its "
                                 "base_url (the path of your notebook_proxy route), e.g. http://127.0.0.1:8000/notebook/")
    if not hub["hub_api_token"]:
        raise ConfigurationError(f"{PREFIX}hub_api_token is missing: the site's JupyterHub service token")
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
    try:
        return registry.pyramid_notebook_settings
    except AttributeError:
        raise RuntimeError(
            'pyramid_notebook is not configured: call config.include("pyramid_notebook")'
        ) from None
