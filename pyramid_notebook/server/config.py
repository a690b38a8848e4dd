"""The Jupyter server configuration every pyramid_notebook server gets, local daemon or JupyterHub's.

Runs in the notebook server's process. The local daemon (:mod:`.notebook_daemon`) writes it into the
server's config file; the hub's single-user extension (:mod:`.hub_extension`) sets the same traits on
a running ``ServerApp``. One place, so the two kinds of server cannot drift apart.
"""
import os

from pyramid_notebook.core.framing import content_security_policy
from pyramid_notebook.core.paths import LABEXTENSION_FOLDER  # noqa: F401 (the servers' extension folder, from here)

#: Kernel messages go out at once instead of waiting out delayed ACKs (see :mod:`.websocket`), and every
#: message is recorded, passed or refused before the kernel gets it (see :mod:`.audit_kernel`).
KERNEL_WEBSOCKET_CLASS = "pyramid_notebook.server.audit_kernel.AuditingKernelWebsocketConnection"

WELCOME = """# Welcome to your shell

This notebook runs inside the web site, as the web site. Be careful: what you do here happens for real.
"""


def write_default_notebook(path: str, greeting: str) -> None:
    """Create the welcome notebook once; never overwrite what the user has.

    Written to a temporary file and then linked into place, so that a full disk
    never leaves a truncated notebook behind that later launches would keep.
    """
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    if os.path.lexists(path):
        return
    nb = new_notebook(
        cells=[new_markdown_cell(WELCOME), new_markdown_cell(greeting or ""), new_code_cell("")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)  # fails if the user has one by now: theirs wins
    except FileExistsError:
        pass
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def write_private(path: str, text: str) -> None:
    """Replace ``path`` with ``text``, readable by the owner only (it may hold the site's secrets).

    Atomically: a kernel starting meanwhile reads the old or the new file, never half of one.
    """
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def site_server_config(context: dict, base_url: str):
    """``(ServerApp traits, MappingKernelManager traits)`` that the context decides.

    The origin the notebook is used from, template paths, the kernel websocket class, the page
    config read by the shipped extension (shutdown control, save bridge), the framing policy, and
    Jupyter's own idle culling (:func:`culling_config`) and no-activity shutdown.
    """
    server = {
        "allow_origin": context.get("allow_origin") or "",
        "extra_template_paths": list(context.get("extra_template_paths") or []),
        "kernel_websocket_connection_class": KERNEL_WEBSOCKET_CLASS,
        "tornado_settings": {
            # Read by our prebuilt extension: the "Shut down and return to site" control, and the
            # save bridge, which answers postMessage requests from these parent origins only.
            "page_config_data": {
                "pyramidNotebookShutdownUrl": context.get("shutdown_url") or "",
                "pyramidNotebookParentOrigins": " ".join(context.get("parent_origins") or []),
                # The File menu's "Publish to team recipes…" (issue 36) posts here; empty: no command.
                "pyramidNotebookRecipesUrl": context.get("recipes_url") or "",
                # The File menu's "Share…" (issue 31) posts to and lists here; empty: no command.
                "pyramidNotebookSharesUrl": context.get("shares_url") or "",
                # The page posts the static files it loaded here (the site preloads them on a cold
                # click: web/pagefiles.py); empty: it does not.
                "pyramidNotebookPageFilesUrl": context.get("page_files_url") or "",
            },
            # Who may frame notebook pages (pyramid_notebook.frame_ancestors); replaces Jupyter's
            # default "frame-ancestors 'self'" (JupyterHub's 'none') on every page and API answer.
            "headers": {"Content-Security-Policy": content_security_policy(context.get("frame_ancestors"), base_url)},
        },
    }
    idle = int(context.get("idle_timeout") or 0)
    if idle > 0:
        # Once its kernels are culled, a server with no kernels and no requests for as long shuts down.
        server["shutdown_no_activity_timeout"] = idle
    return server, culling_config(context)


def culling_config(context: dict) -> dict:
    """``MappingKernelManager`` settings culling idle kernels, from ``idle_timeout`` and ``kernel_idle_timeout``.

    ``idle_timeout`` culls every idle kernel, even with a tab open (never a busy one), so that the
    server can then shut down. Without it, ``kernel_idle_timeout`` culls the kernels no tab is
    connected to: those of shells the user left, so page hops do not pile up idle kernels.
    """
    idle = int(context.get("idle_timeout") or 0)
    kernel_idle = int(context.get("kernel_idle_timeout") or 0)
    timeout, connected = (idle, True) if idle > 0 else (kernel_idle, False)
    if timeout <= 0:
        return {}
    return {"cull_idle_timeout": timeout, "cull_interval": max(1, min(60, timeout // 4)),
            "cull_connected": connected, "cull_busy": False}


def terminal_shell(environ=None):
    """The shell a notebook terminal runs: ``$SHELL``, else the account's login shell.

    Jupyter falls back to ``sh`` when ``SHELL`` is unset, as it is for a site run by systemd, cron
    or a CI runner: the user would get dash without line editing or history. The account's login
    shell is what logging in would give; an account that may not log in (``nologin``, ``false``)
    keeps Jupyter's ``sh``. None: leave the choice to Jupyter.
    """
    import pwd

    environ = os.environ if environ is None else environ
    if environ.get("SHELL"):
        return None
    try:
        shell = pwd.getpwuid(os.getuid()).pw_shell
    except KeyError:
        return None
    if not shell or os.path.basename(shell) in ("nologin", "false") or not os.access(shell, os.X_OK):
        return None
    return shell
