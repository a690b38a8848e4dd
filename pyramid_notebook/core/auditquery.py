"""Questions the audit review asks of the index (:mod:`pyramid_notebook.core.auditindex`).

Lists and searches come from the index; a session's records are read from the streams themselves at
the offsets the index keeps (the chains are the truth), and a record that is not where the index says
raises :class:`StaleIndex`, whose caller rebuilds the index and asks again.
"""
import contextlib
import datetime
import json

from pyramid_notebook.core import audit

#: A session's status: no review yet, reviewed, or flagged (by a review, or by a sensitive cell until reviewed).
STATUSES = ("pending", "reviewed", "flagged")
#: The fields of a session in the list's JSON, in order.
SESSION_FIELDS = ("id", "user", "owner", "shell", "reason", "started", "ended", "cells", "flagged", "status")
#: Shortest search text FTS5's trigram index answers; shorter text is looked for by a scan.
TRIGRAM = 3


class StaleIndex(LookupError):
    """A record is not where the index says: the stream changed since it was indexed."""


def time_bound(text: str) -> str:
    """``since``/``until`` (ISO date or time, or ``30m``, ``2h``, ``7d`` ago) as the records write times;
    raises ``ValueError``."""
    moment = audit.parse_time(text).astimezone(datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fts_phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def find_sessions(connection, user=None, q=None, since=None, until=None) -> list:
    """Sessions matching every filter, newest first, as dicts (``since``/``until``: :func:`time_bound` texts;
    a session matches when it overlaps them)."""
    where, values = [], []
    if user:
        where.append("user = ?")
        values.append(user)
    if since:
        where.append("ended >= ?")
        values.append(since)
    if until:
        where.append("started <= ?")
        values.append(until)
    if q:
        if len(q) >= TRIGRAM:
            where.append("id IN (SELECT session FROM texts WHERE texts MATCH ?)")
            values.append(_fts_phrase(q))
        else:
            where.append("id IN (SELECT session FROM texts WHERE instr(lower(body), lower(?)) > 0)")
            values.append(q)
    sql = "SELECT * FROM sessions" + (" WHERE " + " AND ".join(where) if where else "") + \
        " ORDER BY started DESC, id"
    return [dict(row) for row in connection.execute(sql, values)]


def status_of(session: dict, statuses: dict) -> str:
    """The session's status: its latest review's, else ``flagged`` if a cell matched a sensitive pattern."""
    return statuses.get(session["id"]) or ("flagged" if session["flagged"] else "pending")


def public(session: dict, statuses: dict) -> dict:
    """The session as the list's JSON gives it (:data:`SESSION_FIELDS`)."""
    shown = {field: session.get(field) for field in SESSION_FIELDS if field not in ("flagged", "status", "shell")}
    shown["shell"] = session.get("launch_url") or (session.get("shell") or "")[:12] or None
    shown["flagged"] = bool(session["flagged"])
    shown["status"] = status_of(session, statuses)
    return {field: shown[field] for field in SESSION_FIELDS}


def trails(connection) -> list:
    """Every user's trail: ``{"user", "verified", "broken_at", "problem", "records"}``, broken ones first."""
    found = [{"user": row["trail"], "verified": row["broken_at"] is None, "broken_at": row["broken_at"],
              "problem": row["problem"], "records": row["records"]}
             for row in connection.execute("SELECT trail, broken_at, problem, records FROM streams")]
    found.sort(key=lambda t: (t["verified"], t["user"]))
    return found


def get_session(connection, ident: str):
    """The session of that id as a dict, or None."""
    row = connection.execute("SELECT * FROM sessions WHERE id = ?", (ident,)).fetchone()
    return dict(row) if row is not None else None


def session_records(connection, ident: str) -> list:
    """The session's records, read from its stream at the offsets the index keeps, each with ``sensitive``.

    Raises :class:`StaleIndex` when a record is not there any more.
    """
    rows = connection.execute("SELECT stream, seq, offset, length, sensitive FROM records WHERE session = ? "
                              "ORDER BY id", (ident,)).fetchall()
    found, files = [], {}
    try:
        for row in rows:
            f = files.get(row["stream"])
            if f is None:
                try:
                    f = files[row["stream"]] = open(row["stream"], "rb")
                except OSError:
                    raise StaleIndex(row["stream"]) from None
            f.seek(row["offset"])
            line = f.read(row["length"])
            try:
                record = json.loads(line)
            except ValueError:
                raise StaleIndex(f"{row['stream']} at {row['offset']}") from None
            if not isinstance(record, dict) or record.get("seq") != row["seq"] or not line.endswith(b"\n"):
                raise StaleIndex(f"{row['stream']} at {row['offset']}")
            record["sensitive"] = bool(row["sensitive"])
            found.append(record)
    finally:
        for f in files.values():
            with contextlib.suppress(OSError):
                f.close()
    return found


def record_text(record: dict) -> str:
    """What a timeline shows of a record: the cell's code, the typed text, or what was refused or done."""
    kind = record.get("kind")
    if kind in ("execute", "debug"):
        return str(record.get("code") or "")
    if kind == "terminal-input":
        return str(record.get("data") or "")
    if kind == "refused":
        return " ".join(str(record.get(k)) for k in ("msg_type", "request", "action", "refusal") if record.get(k))
    if kind == "file":
        return " ".join(str(record.get(k)) for k in ("op", "from", "path") if record.get(k))
    if kind == "session":
        return f"launch from {record.get('client') or '?'} ({record.get('launch_url') or record.get('shell') or ''})"
    if kind == "stdin":
        return "(input, hidden)" if record.get("password") else str(record.get("value") or record.get("prompt") or "")
    rest = {k: v for k, v in record.items() if k not in ("seq", "prev", "hash", "time", "kind", "user", "owner",
                                                         "client", "shell", "reason", "launch_url", "role")}
    return json.dumps(rest, sort_keys=True, ensure_ascii=False)
