"""``pyramid-notebook audit show|verify|prune``: read, check and trim the audit trail.

The trail is one hash-chained JSON-lines stream per user (:mod:`pyramid_notebook.core.audit`).
Where to look: ``NOTEBOOK_FOLDER`` (streams in ``.state/<user>/audit.jsonl``), one stream file,
a folder of JupyterHub users' home folders (``<home>/.pyramid_notebook/audit.jsonl``), or
``--ini INI`` (its ``pyramid_notebook.notebook_folder``).
"""
import argparse
import json
import sys

from pyramid_notebook.core import audit


def make_parser():
    """The argument parser of ``pyramid-notebook audit``."""
    parser = argparse.ArgumentParser(prog="pyramid-notebook audit", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, help_text):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("location", metavar="NOTEBOOK_FOLDER", nargs="?",
                       help="the notebook folder, one audit.jsonl, or a folder of hub users' homes")
        p.add_argument("--ini", help="the site's INI file: its pyramid_notebook.* settings say where")
        return p

    show = add("show", "the recorded cells and terminal lines, oldest first")
    show.add_argument("--user", help="only this site user's records")
    show.add_argument("--since", help="only records since this time (ISO 8601, or 30m, 2h, 7d ago)")
    show.add_argument("--grep", help="only records whose code or terminal line contains this text")
    show.add_argument("--json", action="store_true", help="one JSON object per line, every field")
    add("verify", "check every stream's hash chain; exit status 1 names the first altered or missing record")
    prune = add("prune", "drop records older than the retention; verify still passes afterwards")
    prune.add_argument("--keep-days", type=float,
                       help="days to keep (default: the INI's pyramid_notebook.audit_keep_days)")
    return parser


def _settings(args) -> dict:
    if not args.ini:
        return {}
    from plaster import get_settings

    return get_settings(args.ini, "app:main")


def _streams(args, settings):
    location = args.location or settings.get("pyramid_notebook.notebook_folder")
    if not location:
        raise SystemExit("give NOTEBOOK_FOLDER (or an audit.jsonl, or a folder of hub users' homes) or --ini FILE")
    return audit.stream_paths(location), location


def _summary(record) -> str:
    what = record.get("code") if record.get("kind") == "execute" else record.get("line")
    where = record.get("notebook") or record.get("terminal") and f"terminal {record['terminal']}" or "-"
    if record.get("kind") == "session":
        what, where = f"launch from {record.get('client')} reason: {record.get('reason') or '-'}", "-"
    lines = (what or "").splitlines() or [""]
    text = lines[0] + (f"  [+{len(lines) - 1} lines]" if len(lines) > 1 else "")
    return f"{record.get('time', '')}  {record.get('user') or '-'}  {where}  {text}"


def cmd_show(args, settings) -> int:
    """Print the matching records."""
    paths, _ = _streams(args, settings)
    try:
        since = audit.parse_time(args.since) if args.since else None
    except ValueError:
        raise SystemExit(f"--since: not a time: {args.since!r} (ISO 8601, or 30m, 2h, 7d)") from None
    for record in audit.search(paths, user=args.user, since=since, grep=args.grep):
        print(audit.canonical(record) if args.json else _summary(record))
    return 0


def cmd_verify(args, settings) -> int:
    """Check each stream; non-zero when one is broken."""
    paths, location = _streams(args, settings)
    if not paths:
        print(f"No audit trail under {location}", file=sys.stderr)
        return 0
    broken = 0
    for path in paths:
        try:
            problem = audit.verify(path)
        except OSError as e:
            problem = f"{path}: cannot be read ({e.strerror or e})"
        if problem:
            broken += 1
            print(f"ALTERED: {problem}")
        else:
            print(f"ok: {path}")
    return 1 if broken else 0


def cmd_prune(args, settings) -> int:
    """Prune each stream to the retention."""
    keep = args.keep_days
    if keep is None:
        raw = str(settings.get("pyramid_notebook.audit_keep_days") or "").strip()
        keep = float(raw) if raw else 0
        if keep <= 0:
            raise SystemExit("Nothing to prune: set pyramid_notebook.audit_keep_days or give --keep-days")
    if keep < 0:
        raise SystemExit("--keep-days must be 0 or more")
    paths, _ = _streams(args, settings)
    status = 0
    for path in paths:
        try:
            count = audit.prune(path, keep)
        except (ValueError, OSError) as e:
            print(f"{path}: {e}", file=sys.stderr)
            status = 1
            continue
        print(json.dumps({"stream": path, "pruned": count}))
    return status


def main(argv=None) -> int:
    """Entry point of ``pyramid-notebook audit``."""
    args = make_parser().parse_args(argv)
    settings = _settings(args)
    return {"show": cmd_show, "verify": cmd_verify, "prune": cmd_prune}[args.command](args, settings)
