"""``pyramid-notebook audit show|replay|verify|prune``: read, replay, check and trim the audit trail.

The trail is one hash-chained JSON-lines stream per user (:mod:`pyramid_notebook.core.audit`).
Where to look: ``NOTEBOOK_FOLDER`` (streams in ``.state/<user>/audit.jsonl``), one stream file,
a folder of JupyterHub users' home folders (``<home>/.pyramid_notebook/audit.jsonl``), or
``--ini INI`` (its ``pyramid_notebook.notebook_folder``).

What people read is escaped: control and invisible characters (escape sequences, carriage
returns, bidirectional overrides) are shown as ``\\xNN``/``\\uNNNN``, a backslash as ``\\\\``,
so a record cannot redraw or hide part of the operator's screen; ``--json`` and ``replay --raw``
give the recorded text unchanged.
"""
import argparse
import json
import sys
import time
import unicodedata

from pyramid_notebook.core import audit

#: The kind of a terminal's input record (:mod:`pyramid_notebook.server.audit_terminals`).
TERMINAL_INPUT = "terminal-input"
#: Keys after which ``show`` starts a new row of a terminal's input: Enter, and the keys that
#: also end what the shell edits (Ctrl-C, Ctrl-D, Ctrl-O). Presentation only: the row is the keys.
ROW_ENDS = "\r\n\x03\x04\x0f"
#: Fields every record has; ``show`` prints the others of kinds it has no layout for.
COMMON = {"time", "user", "owner", "role", "client", "shell", "reason", "launch_url", "seq", "prev", "hash", "kind"}
NAMED_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\r": "\\r", "\n": "\\n", "\x1b": "\\e"}


def escape(text) -> str:
    """``text`` safe for a terminal: C-style escapes for control, format and other invisible
    characters (``\\x03``, ``\\r``, ``\\e``, ``\\u202e``), a backslash doubled; the rest unchanged."""
    out = []
    for char in str(text or ""):
        if char in NAMED_ESCAPES:
            out.append(NAMED_ESCAPES[char])
        elif unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out)


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

    show = add("show", "the records (cells, terminal input, ...), oldest first, escaped")
    show.add_argument("--user", help="only what this site user sent, in any notebook (theirs or one shared with them)")
    show.add_argument("--since", help="only records since this time (ISO 8601, or 30m, 2h, 7d ago)")
    show.add_argument("--grep", help="only records (rows of terminal input) containing this text")
    show.add_argument("--json", action="store_true", help="one JSON object per line, every field, unescaped")
    replay = add("replay", "a terminal's input as it was typed, with its timing; without --terminal, "
                           "the list of recorded terminals")
    replay.add_argument("--terminal", metavar="ID", help="the terminal (its id from the list, or the id's start)")
    replay.add_argument("--user", help="only this site user's terminals")
    replay.add_argument("--since", help="only terminals used since this time (ISO 8601, or 30m, 2h, 7d ago)")
    replay.add_argument("--speed", type=float, default=1.0, help="play this many times faster (default 1)")
    replay.add_argument("--no-timing", action="store_true", help="print at once, without the pauses")
    replay.add_argument("--max-wait", type=float, default=2.0, metavar="SECONDS",
                        help="wait at most this long between two inputs (default 2; 0: no limit)")
    replay.add_argument("--raw", action="store_true",
                        help="write the recorded input unchanged (control characters included), not escaped")
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


def _since(args):
    try:
        return audit.parse_time(args.since) if args.since else None
    except ValueError:
        raise SystemExit(f"--since: not a time: {args.since!r} (ISO 8601, or 30m, 2h, 7d)") from None


# --- show -----------------------------------------------------------------------------------


class Row:
    """One printed row: a record, or consecutive keys typed into one terminal up to an Enter."""

    def __init__(self, record):
        self.record = record
        self.records = [record]
        self.keys = ""

    def text(self) -> str:
        """What ``--grep`` searches: the row's code, line or keys, unescaped."""
        record = self.record
        kind = record.get("kind")
        if kind == TERMINAL_INPUT:
            return self.keys
        if kind == "session":
            return f"{record.get('client')} {record.get('reason') or ''}"
        if kind == "execute" or "code" in record:
            return str(record.get("code") or "")
        if kind == "terminal":
            return str(record.get("line") or "")
        return json.dumps(_extra(record), sort_keys=True, ensure_ascii=False)

    def summary(self) -> str:
        """The row as printed: time, user, where, what (escaped)."""
        record = self.record
        kind = record.get("kind")
        if kind == TERMINAL_INPUT:
            where, what = f"terminal {record.get('terminal')} ({record.get('terminal_id')})", self.keys
        elif kind == "session":
            where, what = "-", f"launch from {record.get('client')} reason: {record.get('reason') or '-'}"
        elif kind == "execute":
            where, what = record.get("notebook") or "-", record.get("code")
        elif kind == "terminal":
            where, what = f"terminal {record.get('terminal')}", record.get("line")
        elif kind in KIND_SUMMARIES:
            where, what = KIND_SUMMARIES[kind](record)
        else:
            where, what = f"[{kind}]", self.text()
        lines = str(what or "").split("\n") if kind != TERMINAL_INPUT else [what]
        text = escape(lines[0]) + (f"  [+{len(lines) - 1} lines]" if len(lines) > 1 else "")
        return f"{record.get('time', '')}  {escape(who(record))}  {escape(where)}  {text}"


def who(record) -> str:
    """Who sent it (``user``), and whose notebook it was when that is someone else's (``owner``)."""
    user, owner = record.get("user") or "-", record.get("owner")
    role = f"{record['role']} " if record.get("role") else ""
    return f"{user} ({role}in {owner}'s notebook)" if owner and owner != user else user


#: How ``show`` prints the other kinds of the notebook server's records: ``record -> (where, what)``.
KIND_SUMMARIES = {
    "stdin": lambda r: (f"[input{' (password)' if r.get('password') else ''}] {r.get('notebook') or '-'}",
                        f"{r.get('prompt') or ''}{r.get('value') or ''}"),
    "debug": lambda r: (f"[debugger {r.get('command')}] {r.get('notebook') or '-'}", r.get("code") or r.get("arguments")),
    "comm": lambda r: (f"[{r.get('msg_type')} {r.get('target_name') or r.get('comm_id')}]", r.get("data")),
    "refused": lambda r: (f"[refused {r.get('request')}]" if r.get("request") else
                          f"[refused {r.get('msg_type') or '?'} on {r.get('channel') or '?'}]", r.get("refusal")),
    "file": lambda r: (f"[file {r.get('op')}]", " ".join(str(x) for x in (
        f"{r.get('from')} ->" if r.get("from") else "", r.get("path"),
        f"{r.get('size')} bytes sha256:{str(r.get('sha256'))[:12]}" if r.get("sha256") else "") if x)),
}


def _extra(record) -> dict:
    return {k: v for k, v in record.items() if k not in COMMON}


def rows_of(records) -> list:
    """``records`` as rows, in order: each terminal's input is cut after each Enter (or Ctrl-C,
    Ctrl-D, Ctrl-O) into rows of the keys as typed, placed where their first key was typed."""
    rows, open_rows = [], {}
    for record in records:
        if record.get("kind") != TERMINAL_INPUT:
            rows.append(Row(record))
            continue
        ident = record.get("terminal_id") or record.get("terminal")
        piece = ""
        for char in str(record.get("data") or ""):
            piece += char
            if char in ROW_ENDS:
                _add_keys(rows, open_rows, ident, record, piece)
                open_rows.pop(ident, None)
                piece = ""
        if piece:
            _add_keys(rows, open_rows, ident, record, piece)
    return rows


def _add_keys(rows, open_rows, ident, record, piece) -> None:
    row = open_rows.get(ident)
    if row is None:
        row = open_rows[ident] = Row(record)
        rows.append(row)
    elif row.records[-1] is not record:
        row.records.append(record)
    row.keys += piece


def cmd_show(args, settings) -> int:
    """Print the matching records: escaped rows, or (``--json``) the records themselves."""
    paths, _ = _streams(args, settings)
    records = [r for r in audit.search(paths, user=args.user, since=_since(args), kinds=None)
               if r.get("kind") != "checkpoint"]
    needle = (args.grep or "").lower()
    printed = set()
    for row in rows_of(records):
        if needle and needle not in row.text().lower():
            continue
        if not args.json:
            print(row.summary())
            continue
        for record in row.records:
            if id(record) not in printed:
                printed.add(id(record))
                print(audit.canonical(record))
    return 0


# --- replay ---------------------------------------------------------------------------------


def terminals(paths, user=None, since=None) -> dict:
    """The recorded terminals of ``paths``: ``{terminal_id: [its terminal-input records, in order]}``.

    In each stream's order (the order the shell got them), not sorted by time: a clock set back
    must not reorder what was typed.
    """
    found = {}
    for path in paths:
        for record in audit.read_records(path):
            if record.get("kind") != TERMINAL_INPUT or (user and record.get("user") != user):
                continue
            found.setdefault(str(record.get("terminal_id")), []).append(record)
    if since is not None:
        found = {k: v for k, v in found.items() if _time(v[-1]) and _time(v[-1]) >= since}
    return found


def _time(record):
    try:
        return audit.parse_time(record.get("time", ""))
    except ValueError:
        return None


def _list_terminals(found) -> int:
    from pyramid_notebook.cli.tables import print_table

    rows = [{"terminal": ident, "user": escape(v[0].get("user") or "-"), "name": escape(v[0].get("terminal")),
             "pid": v[0].get("pid"), "first": v[0].get("time"), "last": v[-1].get("time"), "inputs": len(v),
             "keys": sum(len(r.get("data") or "") for r in v)}
            for ident, v in sorted(found.items(), key=lambda item: item[1][0].get("time", ""))]
    if not rows:
        print("No terminal input recorded", file=sys.stderr)
        return 0
    print_table(rows, ["terminal", "user", "name", "pid", "first", "last", "inputs", "keys"])
    return 0


def frames(records, raw=False):
    """``(seconds since the previous input, text)`` for each of ``records``, in order: the input
    unchanged when ``raw``, else escaped, one line per Enter (or Ctrl-C, Ctrl-D, Ctrl-O), each
    line starting with its offset in seconds from the first input."""
    start = previous = _time(records[0]) if records else None
    at_line_start = True
    for record in records:
        moment = _time(record)
        pause = max(0.0, (moment - previous).total_seconds()) if moment and previous else 0.0
        previous = moment or previous
        data = str(record.get("data") or "")
        if raw:
            yield pause, data
            continue
        text = []
        for char in data:
            if at_line_start:
                offset = (moment - start).total_seconds() if moment and start else 0.0
                text.append(f"[{offset:9.3f}] ")
                at_line_start = False
            text.append(escape(char))
            if char in ROW_ENDS:
                text.append("\n")
                at_line_start = True
        yield pause, "".join(text)
    if not raw and not at_line_start:
        yield 0.0, "\n"


def cmd_replay(args, settings) -> int:
    """List the recorded terminals, or replay one."""
    paths, _ = _streams(args, settings)
    found = terminals(paths, user=args.user, since=_since(args))
    if not args.terminal:
        return _list_terminals(found)
    matches = [k for k in found if k.startswith(args.terminal)]
    if len(matches) != 1:
        raise SystemExit(f"--terminal {args.terminal!r}: " + (
            f"matches {len(matches)} terminals; give more of the id" if matches else
            "no such terminal (run `replay` without --terminal for the list)"))
    if args.speed <= 0:
        raise SystemExit("--speed must be more than 0")
    records = found[matches[0]]
    if not args.raw:
        first = records[0]
        print(f"# terminal {escape(first.get('terminal'))} ({matches[0]}) of {escape(first.get('user') or '-')}, "
              f"shell pid {first.get('pid')}, from {first.get('time')}; keys as typed, escaped", flush=True)
    for pause, text in frames(records, raw=args.raw):
        if not args.no_timing and pause:
            pause /= args.speed
            time.sleep(min(pause, args.max_wait) if args.max_wait > 0 else pause)
        if args.raw:
            sys.stdout.buffer.write(text.encode("utf-8", "surrogatepass"))
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    return 0


# --- verify and prune -----------------------------------------------------------------------


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
            print(f"ALTERED: {escape(problem)}")
        else:
            print(f"ok: {escape(path)}")
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
            print(f"{escape(path)}: {escape(e)}", file=sys.stderr)
            status = 1
            continue
        print(json.dumps({"stream": path, "pruned": count}))
    return status


def main(argv=None) -> int:
    """Entry point of ``pyramid-notebook audit``."""
    args = make_parser().parse_args(argv)
    settings = _settings(args)
    commands = {"show": cmd_show, "replay": cmd_replay, "verify": cmd_verify, "prune": cmd_prune}
    return commands[args.command](args, settings)
