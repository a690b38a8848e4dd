"""``pyramid-notebook``: see and stop the notebooks under a notebook folder.

Only ever signals a pid that it finds in that folder's state *and* that is
really the notebook daemon of that folder; a stale entry (its process gone, or
its pid now used by something else) is reported and cleaned, never killed.
"""
import argparse
import datetime
import json
import os
import sys

import urllib3

from pyramid_notebook.core import contextfile
from pyramid_notebook.core import statefolder
from pyramid_notebook.core.process import get_daemon_process, read_pid_file, terminate_daemon

PID_FILE_NAME = statefolder.PID_FILE_NAME
STDERR_LOG = statefolder.STDERR_LOG


def _iso(timestamp):
    if not timestamp:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec="seconds")


def _last_activity(context):
    """Jupyter's own record of the last activity, asked over loopback with the secret."""
    url = f"http://127.0.0.1:{context['http_port']}{context.get('notebook_path') or '/notebook/'}api/status"
    try:
        r = urllib3.request("GET", url, headers={"Authorization": "token " + context.get("token", "")},
                            timeout=urllib3.Timeout(connect=1, read=3), retries=False)
    except urllib3.exceptions.HTTPError:
        return None
    if r.status != 200:
        return None
    return json.loads(r.data).get("last_activity")


def user_folders(notebook_folder):
    """``(folder name, state folder)`` of every user with notebook state.

    State lives in ``notebook_folder/.state/<user>/``; user folders that still hold
    the old layout's state (from before it moved) are listed too, so that their
    daemons can be seen and stopped after an upgrade.
    """
    if not os.path.isdir(notebook_folder):
        raise SystemExit(f"No such notebook folder: {notebook_folder}")
    found = {}
    for pid_file in statefolder.legacy_pid_files(notebook_folder) + statefolder.pid_files(notebook_folder):
        path = os.path.dirname(pid_file)
        if os.path.exists(pid_file) or os.path.exists(contextfile.get_context_file(pid_file)):
            found.setdefault(os.path.basename(path), []).append(path)
    for name in sorted(found):
        for path in found[name]:
            yield name, path


def _user_folder_of(state_path):
    parent = os.path.dirname(state_path)
    if os.path.basename(parent) == statefolder.STATE_FOLDER:
        return os.path.join(os.path.dirname(parent), os.path.basename(state_path))
    return state_path  # the old layout: state inside the user's folder


def describe(folder_name, path, clean=True) -> dict:
    """The state of one user's notebook; a stale pid file is noted and (if ``clean``) removed.

    ``path`` is the folder holding the pid file (the user's state folder).
    """
    pid_file = os.path.join(path, PID_FILE_NAME)
    context = contextfile.read_context(pid_file) or {}
    recorded_pid = read_pid_file(pid_file)
    proc = get_daemon_process(pid_file)
    info = {
        "user": context.get("username") or folder_name,
        "folder": _user_folder_of(path),
        "state_folder": path,
        "pid": proc.pid if proc else None,
        "port": context.get("http_port") if proc else None,
        "started": _iso(context.get("started_at")),
        "last_activity": _last_activity(context) if proc and context.get("http_port") else None,
        "context_hash": context.get("context_hash"),
        "alive": proc is not None,
        "stale": None,
    }
    if proc is None and recorded_pid is not None:
        info["stale"] = f"pid {recorded_pid} in {PID_FILE_NAME} is not this folder's notebook daemon"
        if clean:
            os.unlink(pid_file)
            info["stale"] += " (pid file removed, process left alone)"
    return info


def _find_user(notebook_folder, user):
    for folder_name, path in user_folders(notebook_folder):
        context = contextfile.read_context(os.path.join(path, PID_FILE_NAME)) or {}
        if user in (folder_name, context.get("username")):
            return folder_name, path
    raise SystemExit(f"No notebook state for user {user!r} in {notebook_folder}")


def _print_table(rows):
    columns = ["user", "alive", "pid", "port", "started", "last_activity", "context_hash"]
    cells = [[("" if r[c] is None else str(r[c])[:16] if c == "context_hash" else str(r[c])) for c in columns]
             for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)))
    for row, r in zip(cells, rows):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
        if r["stale"]:
            print(f"  ! stale: {r['stale']}")


def cmd_list(args):
    rows = [describe(name, path) for name, path in user_folders(args.notebook_folder)]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif rows:
        _print_table(rows)
    else:
        print("No notebooks.")
    return 0


def cmd_status(args):
    info = describe(*_find_user(args.notebook_folder, args.user))
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_table([info])
    return 0 if info["alive"] else 3


def _stop(name, path, timeout):
    info = describe(name, path)
    stopped = info["alive"] and terminate_daemon(os.path.join(path, PID_FILE_NAME), timeout=timeout)
    return {"user": info["user"], "pid": info["pid"], "stopped": bool(stopped), "stale": info["stale"]}


def _report_stops(results, as_json):
    if as_json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        if r["stopped"]:
            print(f"{r['user']}: stopped (pid {r['pid']})")
        else:
            print(f"{r['user']}: not running" + (f"; stale: {r['stale']}" if r["stale"] else ""))


def cmd_stop(args):
    _report_stops([_stop(*_find_user(args.notebook_folder, args.user), args.timeout)], args.json)
    return 0


def cmd_stop_all(args):
    _report_stops([_stop(name, path, args.timeout) for name, path in user_folders(args.notebook_folder)], args.json)
    # The fork server too (a site that launches again spawns a fresh one).
    from pyramid_notebook.backends.local import forkclient as forkserver

    forkserver.stop_all(os.path.abspath(args.notebook_folder))
    return 0


def cmd_logs(args):
    _, path = _find_user(args.notebook_folder, args.user)
    log = os.path.join(path, STDERR_LOG)
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()[-args.lines:]
    except FileNotFoundError:
        lines = []
    if args.json:
        print(json.dumps({"log": log, "lines": lines}, indent=2))
    else:
        print("\n".join(lines))
    return 0


def make_parser():
    """The argument parser of ``pyramid-notebook``."""
    parser = argparse.ArgumentParser(prog="pyramid-notebook", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, func, help_text, user=False):
        p = sub.add_parser(name, help=help_text)
        # Optional when --hub-url or --ini says where the notebooks are.
        p.add_argument("notebook_folder", metavar="NOTEBOOK_FOLDER", nargs="?")
        p.add_argument("--ini", help="the site's INI file: its [app:main] pyramid_notebook.* settings say where")
        p.add_argument("--hub-url", help="the JupyterHub backend: the hub's URL (pyramid_notebook.hub_url)")
        p.add_argument("--hub-api-token", help="the site's hub service token (default: $PYRAMID_NOTEBOOK_HUB_API_TOKEN)")
        if user:
            p.add_argument("user", metavar="USER")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=func)
        return p

    add("list", cmd_list, "every user's notebook: pid, port, started, last activity, alive?")
    add("status", cmd_status, "one user's notebook (exit status 3 if not running)", user=True)
    for p in (add("stop", cmd_stop, "stop one user's notebook", user=True),
              add("stop-all", cmd_stop_all, "stop every notebook in the folder")):
        p.add_argument("--timeout", type=float, default=10.0, help="seconds before SIGTERM becomes SIGKILL")
    add("logs", cmd_logs, "the end of a user's notebook.stderr.log", user=True).add_argument(
        "-n", "--lines", type=int, default=50)
    # Listed for --help; `audit ...` is handed to pyramid_notebook.cli.audit before parsing.
    sub.add_parser("audit", help="the audit trail: show, verify, prune (see `pyramid-notebook audit -h`)",
                   add_help=False)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``pyramid-notebook`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["audit"]:
        from pyramid_notebook.cli.audit import main as audit_main

        return audit_main(argv[1:])
    parser = make_parser()
    args = parser.parse_args(argv)
    from pyramid_notebook.cli.main import hub as hubcli

    backend = hubcli.backend_from_args(args)
    if backend is not None:
        return hubcli.run(backend, args)
    if not args.notebook_folder:
        parser.error("give NOTEBOOK_FOLDER, --ini FILE or --hub-url URL")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
