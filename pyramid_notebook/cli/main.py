"""``pyramid-notebook``: see and stop the notebooks under a notebook folder.

Only ever signals a pid that it finds in that folder's state *and* that is
really the notebook daemon of that folder; a stale entry (its process gone, or
its pid now used by something else) is reported and cleaned, never killed.
"""
import argparse
import json
import os
import sys

from pyramid_notebook.backends.local.describe import describe, find_user, user_folders
from pyramid_notebook.cli.tables import print_table
from pyramid_notebook.core import statefolder
from pyramid_notebook.core.files import read_tail
from pyramid_notebook.core.process import terminate_daemon

PID_FILE_NAME = statefolder.PID_FILE_NAME
STDERR_LOG = statefolder.STDERR_LOG


def _print_table(rows):
    print_table(rows, ["user", "alive", "pid", "port", "started", "last_activity", "context_hash"],
                note=lambda r: f"  ! stale: {r['stale']}" if r["stale"] else None)


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
    info = describe(*find_user(args.notebook_folder, args.user))
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
    _report_stops([_stop(*find_user(args.notebook_folder, args.user), args.timeout)], args.json)
    return 0


def cmd_stop_all(args):
    _report_stops([_stop(name, path, args.timeout) for name, path in user_folders(args.notebook_folder)], args.json)
    # The fork server too (a site that launches again spawns a fresh one).
    from pyramid_notebook.backends.local import forkclient as forkserver

    forkserver.stop_all(os.path.abspath(args.notebook_folder))
    return 0


def cmd_logs(args):
    _, path = find_user(args.notebook_folder, args.user)
    log = os.path.join(path, STDERR_LOG)
    lines = read_tail(log, args.lines)
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
    from pyramid_notebook.cli import hub as hubcli

    backend = hubcli.backend_from_args(args)
    if backend is not None:
        return hubcli.run(backend, args)
    if not args.notebook_folder:
        parser.error("give NOTEBOOK_FOLDER, --ini FILE or --hub-url URL")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
