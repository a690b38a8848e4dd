"""The audit review's index (issue 32): SQLite with FTS5, in the state folder, built from the chains.

The hash-chained streams (:mod:`pyramid_notebook.core.audit`) stay the truth; this index only makes
them fast to list and search. It lives in ``notebook_folder/.state/.site/audit-index.sqlite`` and holds:

* ``sessions``: a launch (a ``session`` record and what its owner ran until the next launch of that
  notebook) or a shared guest's visit during one, with its counts of cells, terminal lines and
  refused actions, and whether a cell matched ``pyramid_notebook.audit_sensitive``;
* ``records``: where each record is in its stream (byte offset), so a session's timeline is read
  from the stream itself, never from the index;
* ``texts``: the code of cells and what was typed into terminals, for full text search (FTS5's
  ``trigram`` tokenizer: any three or more characters match, case-insensitively);
* ``streams``: per stream how far it was read (a SHA-256 of the bytes read so far, so an edit of any
  of them is seen) and its chain's state: intact, or broken at which record.

Appends are read incrementally (only the new lines). A stream whose read part changed (an edit, a
prune, a truncation) is indexed again from its start; a missing index, one of another version or
other sensitive patterns (stale), and one SQLite cannot read (corrupt) are rebuilt into a new file
that replaces it whole, so a half-built or corrupt index is never served. Session ids are derived
from the stream and the record that starts the session, so they (and the reviews naming them)
survive every rebuild.
"""
import contextlib
import fcntl
import hashlib
import json
import os
import re
import sqlite3
import threading

from pyramid_notebook.core import audit

#: The index file, in the site's private state folder (beside the site's own audit stream).
INDEX_PATH = (".state", ".site", "audit-index.sqlite")
#: Bump when the schema or what is indexed changes: an index of another version is rebuilt.
VERSION = "1"
#: Record kinds whose text is searched, and the field holding it.
TEXT_FIELDS = {"execute": "code", "debug": "code", "terminal-input": "data"}
#: The trail name of the site's own stream (team recipes), which has no sessions.
SITE_TRAIL = ".site"

SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE streams(path TEXT PRIMARY KEY, trail TEXT NOT NULL, offset INTEGER NOT NULL, prefix TEXT NOT NULL,
  stat TEXT NOT NULL, state TEXT NOT NULL, broken_at INTEGER, problem TEXT, records INTEGER NOT NULL);
CREATE TABLE sessions(id TEXT PRIMARY KEY, stream TEXT NOT NULL, owner TEXT, user TEXT, shell TEXT, launch_url TEXT,
  reason TEXT, started TEXT NOT NULL, ended TEXT NOT NULL, cells INTEGER NOT NULL, lines INTEGER NOT NULL,
  refused INTEGER NOT NULL, records INTEGER NOT NULL, flagged INTEGER NOT NULL, first_seq INTEGER);
CREATE INDEX sessions_started ON sessions(started DESC);
CREATE INDEX sessions_user ON sessions(user, started DESC);
CREATE TABLE records(id INTEGER PRIMARY KEY, session TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER,
  kind TEXT, time TEXT, offset INTEGER NOT NULL, length INTEGER NOT NULL, sensitive INTEGER NOT NULL);
CREATE INDEX records_session ON records(session, id);
CREATE VIRTUAL TABLE texts USING fts5(body, session UNINDEXED, tokenize='trigram');
"""


def index_path(notebook_folder: str) -> str:
    """Where the index of ``notebook_folder``'s streams is kept."""
    return os.path.join(notebook_folder, *INDEX_PATH)


def session_id(stream_key: str, first_seq, user) -> str:
    """The stable id of the session that starts at record ``first_seq`` of a stream, for ``user``."""
    return hashlib.sha256(f"{stream_key}\0{first_seq}\0{user}".encode()).hexdigest()[:20]


def typed_lines(data: str) -> int:
    """How many lines ``data`` (typed into a terminal) ends: each Enter, ``\\r``, ``\\n`` or ``\\r\\n``."""
    return data.count("\r") + data.count("\n") - data.count("\r\n")


class Chain:
    """A stream's chain checked incrementally, line by line, as :func:`pyramid_notebook.core.audit.verify` does."""

    def __init__(self, state=None):
        state = state or {}
        self.expected = state.get("expected", 0)
        self.last_hash = state.get("last_hash", "")
        self.line = state.get("line", 0)
        self.broken_at = state.get("broken_at")
        self.problem = state.get("problem")

    def state(self) -> dict:
        """What :meth:`feed` continues from."""
        return {"expected": self.expected, "last_hash": self.last_hash, "line": self.line,
                "broken_at": self.broken_at, "problem": self.problem}

    def _break(self, seq, problem):
        self.broken_at, self.problem = seq, f"line {self.line}: {problem}"

    def feed(self, record) -> None:
        """Check the next line's record (``None``: the line is not a record)."""
        self.line += 1
        if self.broken_at is not None:
            return  # the first break is what the trail shows
        try:
            seq = int(record["seq"])
        except (TypeError, KeyError, ValueError):
            return self._break(self.expected, f"record seq {self.expected} was altered (not a valid record)")
        if record.get("hash") != audit.record_hash(record):
            return self._break(seq, f"record seq {seq} was altered (its hash does not match its content)")
        if self.line == 1 and record.get("kind") == "checkpoint":
            self.expected, self.last_hash = seq + 1, record.get("pruned_hash", "")
            return None
        if seq > self.expected:
            return self._break(self.expected, f"record seq {self.expected} missing (removed) before record seq {seq}")
        if seq < self.expected:
            return self._break(seq, f"record seq {seq} was altered or inserted (seq {self.expected} expected)")
        if record.get("prev") != self.last_hash:
            return self._break(seq - 1, f"record seq {seq - 1} was altered or replaced "
                                        f"(record seq {seq} links to another record)")
        self.expected, self.last_hash = seq + 1, record["hash"]
        return None


class AuditIndex:
    """The index of one notebook folder's streams, for one process; :meth:`connect` keeps it fresh."""

    def __init__(self, notebook_folder: str, sensitive=()):
        self.folder = os.path.abspath(notebook_folder)
        self.path = index_path(self.folder)
        self.patterns = tuple(sensitive)
        self._compiled = [re.compile(p) for p in self.patterns]
        self._digest = hashlib.sha256("\n".join((VERSION,) + self.patterns).encode()).hexdigest()
        self._lock = threading.Lock()
        self._seen = None  # (streams' stats, index file's stat) after this process's last look

    # --- opening, checking, rebuilding ------------------------------------------------------

    def _open(self, path=None) -> sqlite3.Connection:
        connection = sqlite3.connect(path or self.path, timeout=30, isolation_level=None, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        return connection

    def _usable(self, deep: bool) -> bool:
        """True if the index file exists, is this version with these patterns and (``deep``) SQLite finds it sound."""
        if not os.path.isfile(self.path):
            return False
        try:
            with contextlib.closing(self._open()) as connection:
                row = connection.execute("SELECT value FROM meta WHERE key = 'digest'").fetchone()
                if row is None or row[0] != self._digest:
                    return False
                if deep:
                    return connection.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        except sqlite3.DatabaseError:
            return False
        return True

    def rebuild(self) -> None:
        """Build the index anew from every stream into a new file, then put it in place of the old one."""
        with self._lock, self._file_lock():
            self._rebuild()

    def _rebuild(self) -> None:
        from pyramid_notebook.core.statefolder import make_private_folders

        make_private_folders(os.path.dirname(self.path))
        tmp = f"{self.path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        try:
            with contextlib.closing(self._open(tmp)) as connection:
                connection.execute("PRAGMA journal_mode = OFF")
                connection.executescript(SCHEMA)
                connection.execute("INSERT INTO meta VALUES ('digest', ?)", (self._digest,))
                self._update(connection, {})
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._seen = None

    @contextlib.contextmanager
    def _file_lock(self):
        """Only one process of the site writes the index at a time."""
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def connect(self) -> sqlite3.Connection:
        """A connection to the index, brought up to date with the streams first (see the module)."""
        self.refresh()
        return self._open()

    def refresh(self, every_stream: bool = False) -> None:
        """Read what the streams gained since the last look; rebuild a missing, stale or corrupt index.

        ``every_stream``: check every stream's bytes read so far, not only those whose ``stat`` changed.
        """
        streams = self._stream_stats()
        if not every_stream and self._seen is not None and self._seen == (streams, _stat(self.path)):
            return  # nothing changed since this process last looked: no lock, no write
        with self._lock, self._file_lock():
            # An index this process did not leave this way (another process wrote it, or someone did) is checked whole.
            deep = self._seen is None or self._seen[1] != _stat(self.path)
            if not self._usable(deep):
                self._rebuild()
            try:
                with contextlib.closing(self._open()) as connection:
                    self._update(connection, {} if every_stream else streams)
            except sqlite3.DatabaseError:
                self._rebuild()  # corrupt in a way the check did not see: never served
            self._seen = (self._stream_stats(), _stat(self.path))

    def _stream_stats(self) -> dict:
        return {path: _stat(path) for path in audit.stream_paths(self.folder)}

    # --- reading the streams ------------------------------------------------------------------

    def _update(self, connection, known_stats) -> None:
        """Index what each stream gained; in one transaction."""
        paths = audit.stream_paths(self.folder)
        connection.execute("BEGIN IMMEDIATE")
        try:
            rows = {row["path"]: row for row in connection.execute("SELECT * FROM streams")}
            for gone in set(rows) - set(paths):
                self._forget(connection, gone)
            for path in paths:
                row = rows.get(path)
                if row is not None and known_stats.get(path) == json.loads(row["stat"]):
                    continue
                self._read_stream(connection, path, row)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def _forget(self, connection, path) -> None:
        connection.execute("DELETE FROM texts WHERE session IN (SELECT id FROM sessions WHERE stream = ?)", (path,))
        for table in ("records", "sessions"):
            connection.execute(f"DELETE FROM {table} WHERE stream = ?", (path,))
        connection.execute("DELETE FROM streams WHERE path = ?", (path,))

    def _read_stream(self, connection, path, row) -> None:
        stat = _stat(path)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return
        offset, prefix = 0, hashlib.sha256()
        if row is not None:
            if len(data) >= row["offset"] and hashlib.sha256(data[:row["offset"]]).hexdigest() == row["prefix"]:
                offset = row["offset"]
                prefix.update(data[:offset])
            else:
                self._forget(connection, path)  # the part read before changed: read it all again
                row = None
        state = json.loads(row["state"]) if row is not None else {}
        end = data.rfind(b"\n") + 1  # a last line without its newline is being written: next time
        reader = _StreamReader(self, connection, path, state)
        if end > offset:
            position = offset
            for line in data[offset:end].splitlines(keepends=True):
                reader.feed(line, position)
                position += len(line)
            prefix.update(data[offset:end])
        reader.flush()
        chain = reader.chain
        connection.execute(
            "INSERT OR REPLACE INTO streams VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (path, reader.trail, max(end, offset), prefix.hexdigest(), json.dumps(stat), json.dumps(reader.state()),
             chain.broken_at, chain.problem, reader.count))

    def sensitive(self, text: str) -> bool:
        """True if ``text`` matches one of the ``audit_sensitive`` patterns."""
        return any(pattern.search(text) for pattern in self._compiled)


class _StreamReader:
    """Turns one stream's new lines into sessions, records and texts (state kept between reads)."""

    def __init__(self, index, connection, path, state):
        self.index, self.connection, self.path = index, connection, path
        relative = os.path.relpath(path, index.folder)
        parts = relative.split(os.sep)
        self.key = relative
        self.trail = parts[1] if parts[0] == ".state" and len(parts) > 2 else parts[0]
        self.chain = Chain(state.get("chain"))
        self.launch = state.get("launch")  # the current launch: {"id", "seq", "owner", "shell", ...}
        self.guests = state.get("guests", {})  # user -> session id, during the current launch
        self.count = state.get("count", 0)
        self.sessions = {}  # id -> row being updated
        self.records, self.texts = [], []

    def state(self) -> dict:
        """What the next read continues from."""
        return {"chain": self.chain.state(), "launch": self.launch, "guests": self.guests, "count": self.count}

    def feed(self, line: bytes, offset: int) -> None:
        """One line of the stream, at ``offset``."""
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            record = None
        self.chain.feed(record)
        if record is None or record.get("kind") == "checkpoint" or self.trail == SITE_TRAIL:
            return
        self.count += 1
        seq, kind = record.get("seq"), str(record.get("kind") or "")
        if kind == "session" or self.launch is None:
            owner = record.get("owner") or record.get("user")
            self.launch = {"id": session_id(self.key, seq, owner), "seq": seq, "owner": owner}
            self.guests = {}
            self._session(self.launch["id"], record, owner, seq)
        user = record.get("user") or self.launch["owner"]
        if user != self.launch["owner"] and kind != "session":
            if user not in self.guests:
                self.guests[user] = session_id(self.key, seq, user)
            ident = self.guests[user]
            self._session(ident, record, user, seq)
        else:
            ident = self.launch["id"]
        session = self._session(ident, record, user, seq)
        session["ended"] = max(session["ended"], str(record.get("time") or ""))
        session["records"] += 1
        field = TEXT_FIELDS.get(kind)
        text = record.get(field) if field else None
        text = text if isinstance(text, str) else ""
        sensitive = bool(text) and self.index.sensitive(text)
        if kind == "execute":
            session["cells"] += 1
        elif kind == "terminal-input":
            session["lines"] += typed_lines(text)
        elif kind == "refused":
            session["refused"] += 1
        session["flagged"] = session["flagged"] or int(sensitive)
        self.records.append((ident, self.path, seq, kind, record.get("time"), offset, len(line), int(sensitive)))
        if text:
            self.texts.append((text, ident))

    def _session(self, ident, record, user, seq) -> dict:
        session = self.sessions.get(ident)
        if session is None:
            row = self.connection.execute("SELECT * FROM sessions WHERE id = ?", (ident,)).fetchone()
            if row is not None:
                session = dict(row)
            else:
                time = str(record.get("time") or "")
                session = {"id": ident, "stream": self.path, "owner": self.launch["owner"], "user": user,
                           "shell": record.get("shell"), "launch_url": record.get("launch_url"),
                           "reason": record.get("reason"), "started": time, "ended": time, "cells": 0, "lines": 0,
                           "refused": 0, "records": 0, "flagged": 0, "first_seq": seq}
            self.sessions[ident] = session
        return session

    def flush(self) -> None:
        """Write what was read."""
        for session in self.sessions.values():
            columns = ", ".join(session)
            self.connection.execute(f"INSERT OR REPLACE INTO sessions ({columns}) VALUES "
                                    f"({', '.join('?' * len(session))})", tuple(session.values()))
        self.connection.executemany("INSERT INTO records (session, stream, seq, kind, time, offset, length, sensitive)"
                                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self.records)
        self.connection.executemany("INSERT INTO texts (body, session) VALUES (?, ?)", self.texts)
        self.sessions, self.records, self.texts = {}, [], []


def _stat(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    # ctime too: an edit that puts the size and mtime back still changes it (no one can set it).
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


_INDEXES = {}
_INDEXES_LOCK = threading.Lock()


def audit_index(notebook_folder: str, sensitive=()) -> AuditIndex:
    """The process's index of ``notebook_folder`` (one per folder and patterns)."""
    key = (os.path.abspath(notebook_folder), tuple(sensitive))
    with _INDEXES_LOCK:
        index = _INDEXES.get(key)
        if index is None:
            index = _INDEXES[key] = AuditIndex(*key)
        return index
