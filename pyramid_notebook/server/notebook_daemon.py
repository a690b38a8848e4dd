#!/usr/bin/env python
"""Run one user's Jupyter server as a daemon.

Usage::

    python notebook_daemon.py start|stop|status|restart|fg PID_FILE WORK_FOLDER PORT KILL_TIMEOUT [extra notebook args]

``context.json`` beside ``PID_FILE`` says what the notebook should be (the web
site writes it); the daemon completes it with its pid, port and notebook name.
The server binds 127.0.0.1:PORT, serves WORK_FOLDER and answers only requests
carrying the per-start secret (or the login cookie the proxy's requests earned).
All runtime state goes in the folder of PID_FILE (the state folder): the context,
``notebook.stdout.log`` and ``notebook.stderr.log``, ``.jupyter/`` and ``.ipython/``.
Keep PID_FILE outside WORK_FOLDER (the site uses ``notebook_folder/.state/<user>/``)
so that the notebook's file browser cannot reach the state.
After KILL_TIMEOUT seconds the server shuts itself down (dead man's switch).
"""
import json
import os
import secrets
import sys
import threading
import time
from urllib.parse import urlsplit

# Run as a script, sys.path[0] is this folder: drop it so nothing here shadows a
# top-level module, and make the package importable from an uninstalled checkout.
_here = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or ".") == _here:
    sys.path.pop(0)
try:
    import pyramid_notebook.core  # noqa: F401
except ImportError:  # pragma: no cover - running from a checkout that is not installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(_here)))

from pyramid_notebook.core.context import default_notebook_name  # noqa: E402,F401 (the daemon's own name for it)
from pyramid_notebook.core.contextfile import read_context, write_context  # noqa: E402
from pyramid_notebook.core.contextparts import notebook_part  # noqa: E402
from pyramid_notebook.core.statefolder import STDERR_LOG, STDOUT_LOG, make_private_folders  # noqa: E402
from pyramid_notebook.core.process import get_daemon_process, remove_stale_pid_file, terminate_daemon  # noqa: E402
from pyramid_notebook.server import shells, static_files  # noqa: E402
from pyramid_notebook.server.config import (  # noqa: E402,F401 (WELCOME...: this module's names before)
    LABEXTENSION_FOLDER, WELCOME, site_server_config, terminal_shell, write_default_notebook, write_private,
)
from pyramid_notebook.server.shells import spare_policy  # noqa: E402
from pyramid_notebook.server import collaboration, kernel_limits, resource_usage, team_recipes  # noqa: E402

ACTIONS = ("start", "stop", "status", "restart", "fg")
USAGE = __doc__.split("Usage::")[1].split("``context.json``")[0].strip()
STOP_TIMEOUT = 10.0


def prepare_work_folder(work_folder: str, port: int, context: dict, state_folder: str = None) -> dict:
    """Write this user's Jupyter config and IPython startup script (in ``state_folder``,
    by default ``work_folder``) and the welcome notebook (in ``work_folder``).

    Returns the environment the server (and so its kernels) runs with.
    """
    state_folder = state_folder or work_folder
    jupyter_dir = os.path.join(state_folder, ".jupyter")
    runtime_dir = os.path.join(jupyter_dir, "runtime")
    data_dir = os.path.join(jupyter_dir, "data")
    for d in (jupyter_dir, runtime_dir, data_dir):
        os.makedirs(d, mode=0o700, exist_ok=True)

    # A fresh cookie secret per start: login cookies from an earlier run stop working.
    cookie_secret_file = os.path.join(runtime_dir, "cookie_secret")
    write_private(cookie_secret_file, secrets.token_hex(32))

    base_url = context.get("notebook_path") or "/notebook/"
    shared, kernel_manager = site_server_config(context, base_url)
    server = dict(shared, **{
        "ip": "127.0.0.1",
        "port": port,
        "port_retries": 0,
        "open_browser": False,
        "root_dir": work_folder,
        "base_url": base_url,
        "websocket_url": context.get("websocket_url") or "",
        "identity_provider_class": "pyramid_notebook.server.identity.ProxyIdentityProvider",
        # A watcher reads only (server/authorizer.py); the owner and collaborators do everything.
        "authorizer_class": "pyramid_notebook.server.authorizer.PersonAuthorizer",
        # Publishes where the static files are, so the site can send them from disk; starts the
        # default notebook's kernel before the browser asks for it (see server/warm_kernel.py);
        # opens other contexts' shells beside it (see server/shells.py).
        "jpserver_extensions": {"pyramid_notebook.server.static_files": True,
                                "pyramid_notebook.server.warm_kernel": True,
                                "pyramid_notebook.server.shells": True,
                                # Guests of a shared notebook, under their grant's prefix (server/guests.py).
                                "pyramid_notebook.server.guests": True,
                                # An administrator's watch: recorded, shown to the owner (server/supervision.py).
                                "pyramid_notebook.server.supervision": True,
                                "pyramid_notebook.server.audit": True,
                                "pyramid_notebook.server.team_recipes": True,
                                team_recipes.NBDIME_SERVER_EXTENSION: False,
                                resource_usage.EXTENSION: True,
                                # Real-time collaboration, as pyramid_notebook.collaboration says.
                                **collaboration.server_extensions(context)},
        "cookie_secret_file": cookie_secret_file,
        # permessage-deflate for a browser that offers it (straight or through nginx): a 1 MB HTML
        # output is 0.08 of its size deflated, 0.47 s less on 20 Mbit/s for ~15 ms of CPU
        # (docs/performance.rst). The site's own relays offer no deflate on their loopback hop.
        "websocket_compression_options": {},
        "allow_root": hasattr(os, "geteuid") and os.geteuid() == 0,
    })
    config = {
        "ServerApp": server,
        # Empty: the page config would echo IdentityProvider.token into the HTML.
        "IdentityProvider": {"token": ""},
        # Our prebuilt frontend extension, shipped as package data: no node build needed.
        "LabServerApp": {"extra_labextensions_path": [LABEXTENSION_FOLDER],
                         # Settings overrides: memory in the top bar (jupyter-resource-usage).
                         "app_settings_dir": resource_usage.write_settings_overrides(
                             os.path.join(jupyter_dir, "app-settings"), resource_usage.installed_settings_dir())},
        # The PyPI extension manager builds an HTTPS client at start-up (~1 s of imports and
        # certificates); a site's shell lists its installed extensions but does not install new ones.
        "LabApp": {"extension_manager": "readonly"},
        # Memory in the top bar (jupyter-resource-usage) and the user's memory limit on kernels.
        "ResourceUseDisplay": resource_usage.display_config(context),
        **kernel_limits.server_config(context),
        # Collaboration's stores in the state folder, out of the user's file browser.
        **collaboration.store_config(jupyter_dir),
        "ProxyIdentityProvider": {
            "proxy_token": context["token"],
            # Who the site's own calls (the secret without a person) are: the notebook's owner.
            "owner": str(context.get("username") or ""),
            "cookie_name": f"pyramid-notebook-{port}",
        },
    }
    if kernel_manager:
        config.setdefault("MappingKernelManager", {}).update(kernel_manager)
    # Read by server/spare_kernel.py: a kernel started ahead for the next shell; by server/shells.py: the
    # key of the site's proof when it opens another shell (the per-start secret).
    config["PyramidNotebook"] = {"spare_kernel": spare_policy(context), "shell_key": context["token"],
                                 # server/team_recipes.py: the recipe library shown as team-recipes/.
                                 "team_recipes": context.get("team_recipes") or ""}
    ws_host = urlsplit(context.get("websocket_url") or "").hostname
    if ws_host and ws_host not in ("localhost", "127.0.0.1", "::1"):
        # pserve mode with a site reached by name (www.example.com:port): the browser's direct
        # websockets carry that Host, which Jupyter's DNS-rebinding guard refuses unless listed.
        server["local_hostnames"] = ["localhost", ws_host]
    write_private(os.path.join(jupyter_dir, "jupyter_server_config.json"), json.dumps(config, indent=2))

    # The kernels' startup file runs the startup script of each notebook's own context (server/shells.py).
    shells.register(os.path.join(state_folder, ".ipython"), work_folder, notebook_part(context))
    # ...and, beside it, the one that names the site's memory limit under a MemoryError.
    kernel_limits.write_startup_file(os.path.join(state_folder, ".ipython", "profile_default", "startup"), context)

    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=jupyter_dir,
        JUPYTER_RUNTIME_DIR=runtime_dir,
        JUPYTER_DATA_DIR=data_dir,
        IPYTHONDIR=os.path.join(state_folder, ".ipython"),
    )
    env.pop("JUPYTER_TOKEN", None)
    shell = terminal_shell(env)
    if shell:
        env["SHELL"] = shell
    return env


def run_notebook(pid_file: str, work_folder: str, port: int, kill_timeout: int, extra_args: list) -> None:
    """The daemon's worker: complete the context, then run Jupyter until stopped."""
    import faulthandler
    import signal

    # A server that dies of a fatal signal (a crash in a C extension) leaves its Python stack in
    # notebook.stderr.log instead of vanishing without a word.
    faulthandler.enable()
    context = read_context(pid_file) or {}
    context.setdefault("token", secrets.token_urlsafe(32))
    context.setdefault("notebook_name", default_notebook_name(context))
    context.update(
        pid=os.getpid(), http_port=port, kill_timeout=kill_timeout, started_at=time.time(), state="running"
    )
    write_context(pid_file, context)
    if context.get("kernel_fork"):
        # Forked now, while this process has no thread and no zmq context yet (server/kernel_zygote.py), and
        # before the environment changes (setproctitle finds argv's memory from it, to name the zygote).
        from pyramid_notebook.server import kernel_provisioner

        kernel_provisioner.start(context)
    os.environ.update(prepare_work_folder(work_folder, port, context, state_folder_of(pid_file)))
    os.environ[static_files.PID_FILE_ENV] = pid_file
    os.chdir(work_folder)

    # Dead man's switch: SIGTERM ourselves, which Jupyter handles by stopping its
    # kernels and exiting cleanly.
    timer = threading.Timer(kill_timeout, os.kill, (os.getpid(), signal.SIGTERM))
    timer.daemon = True
    timer.start()

    from notebook.app import JupyterNotebookApp

    try:
        JupyterNotebookApp.launch_instance(argv=list(extra_args))
    finally:
        latest = read_context(pid_file) or {}
        if latest.get("pid") == os.getpid():
            latest.update(state="stopped", stopped_at=time.time())
            write_context(pid_file, latest)


def state_folder_of(pid_file: str) -> str:
    """The state folder: the folder of the pid file."""
    return os.path.dirname(os.path.abspath(pid_file))


def status(pid_file: str) -> int:
    """Print the daemon's state; exit status 0 when running, 1 when not."""
    proc = get_daemon_process(pid_file)
    context = read_context(pid_file) or {}
    if proc is None:
        print("not running")
        return 1
    print(f"running pid={proc.pid} port={context.get('http_port')} notebook={context.get('notebook_name')}")
    return 0


def make_daemon(pid_file: str, work_folder: str, port: int, kill_timeout: int, extra_args: list, detach=True):
    """A daemonocle ``Daemon`` that runs :func:`run_notebook`."""
    import daemonocle

    return daemonocle.Daemon(
        name="notebook_daemon",
        worker=lambda: run_notebook(pid_file, work_folder, port, kill_timeout, extra_args),
        pid_file=pid_file,
        work_dir=work_folder,
        stdout_file=os.path.join(state_folder_of(pid_file), STDOUT_LOG) if detach else None,
        stderr_file=os.path.join(state_folder_of(pid_file), STDERR_LOG) if detach else None,
        close_open_files=True,
        detach=detach,
        stop_timeout=STOP_TIMEOUT,
    )


def main(argv=None) -> int:
    """Command-line entry point; see the module docstring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 5 or argv[0] not in ACTIONS:
        print(f"Usage: {USAGE}", file=sys.stderr)
        return 2
    action, pid_file, work_folder, port, kill_timeout, *extra_args = argv
    try:
        port, kill_timeout = int(port), int(kill_timeout)
    except ValueError:
        print("PORT and KILL_TIMEOUT must be whole numbers", file=sys.stderr)
        return 2

    # Our pid checks match the absolute pid file path on the daemon's command line.
    if not (os.path.isabs(pid_file) and os.path.isabs(work_folder)):
        script = os.path.abspath(__file__)
        args = [action, os.path.abspath(pid_file), os.path.abspath(work_folder), str(port), str(kill_timeout)]
        os.execv(sys.executable, [sys.executable, script] + args + extra_args)

    make_private_folders(work_folder, state_folder_of(pid_file))
    if action == "status":
        return status(pid_file)
    if action in ("stop", "restart"):
        stopped = terminate_daemon(pid_file, timeout=STOP_TIMEOUT)
        print("stopped" if stopped else "not running")
        if action == "stop":
            return 0
    remove_stale_pid_file(pid_file)
    make_daemon(pid_file, work_folder, port, kill_timeout, extra_args, detach=(action != "fg")).start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
