"""``pyramid-notebook`` against a JupyterHub: list, status, stop and stop-all over the hub's REST API.

Chosen by ``--hub-url`` (with ``--hub-api-token`` or ``$PYRAMID_NOTEBOOK_HUB_API_TOKEN``), or by
``--ini FILE`` whose ``[app:main]`` says ``pyramid_notebook.backend = jupyterhub``.
"""
import json
import os

from pyramid_notebook.backends.hub.backend import HubBackend, hub_username, server_state
from pyramid_notebook.cli.tables import print_table

TOKEN_ENV = "PYRAMID_NOTEBOOK_HUB_API_TOKEN"


def backend_from_args(args):
    """A :class:`~pyramid_notebook.backends.hub.backend.HubBackend` from the command line, or None for local mode.

    ``--ini`` may also name the notebook folder for local mode; it is then put in
    ``args.notebook_folder``.
    """
    settings = {}
    if getattr(args, "ini", None):
        from plaster import get_settings

        settings = get_settings(args.ini, "app:main")
        if settings.get("pyramid_notebook.backend", "local").strip() != "jupyterhub":
            args.notebook_folder = args.notebook_folder or settings.get("pyramid_notebook.notebook_folder")
            return None
    url = args.hub_url or settings.get("pyramid_notebook.hub_url", "")
    if not url:
        return None
    token = args.hub_api_token or os.environ.get(TOKEN_ENV) or settings.get("pyramid_notebook.hub_api_token", "")
    if not token:
        raise SystemExit(f"The hub's service token is missing: --hub-api-token or ${TOKEN_ENV}")
    return HubBackend(url, token, api_url=settings.get("pyramid_notebook.hub_api_url", ""))


def _print(rows, as_json):
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("No notebooks.")
        return
    print_table(rows, ["user", "hub_user", "state", "started", "last_activity", "context_hash"])


def run(backend, args) -> int:
    """Run ``args.command`` against the hub; the exit status."""
    if args.command == "list":
        _print(backend.list_notebooks(), args.json)
        return 0
    if args.command == "logs":
        raise SystemExit("On JupyterHub the servers' logs are the spawner's: see the hub's own log "
                         "(local processes), `docker logs` or `kubectl logs`.")
    if args.command == "stop-all":
        results = [{"user": user, "stopped": stopped} for user, stopped in backend.stop_all()]
    else:
        hub_user = hub_username(args.user)
        model = backend.server_model(hub_user)
        if args.command == "status":
            context = backend.get_context(args.user) or {}
            row = {"user": args.user, "hub_user": hub_user, "state": server_state(model),
                   "started": (model or {}).get("started"), "last_activity": (model or {}).get("last_activity"),
                   "context_hash": context.get("context_hash")}
            _print([row], args.json)
            return 0 if row["state"] == "ready" else 3
        results = [{"user": args.user, "stopped": backend.stop_notebook(args.user)}]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"{r['user']}: {'stopped' if r['stopped'] else 'not running'}")
    return 0
