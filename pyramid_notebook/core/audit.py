"""The audit trail: append-only, hash-chained JSON lines, one stream per user.

Every cell a notebook runs and every line typed into its terminals is recorded by
the notebook server (:mod:`pyramid_notebook.server.audit`) before it reaches the
kernel or the shell. This module is the format, shared by that writer, the
``pyramid-notebook audit`` command and any admin page that shows the trail:

* one record per line, canonical JSON (sorted keys, no spaces);
* each record carries ``seq`` (0, 1, 2, ... per stream), ``prev`` (the ``hash`` of the
  record before it; empty for the first) and ``hash`` (SHA-256 of the record's canonical
  JSON without ``hash``): editing a record breaks its own hash, replacing it with a
  consistent forgery breaks the next record's ``prev``, deleting one leaves a gap in ``seq``;
* :func:`prune` drops old records and puts a ``checkpoint`` record first that carries the
  ``seq`` and ``hash`` of the last dropped one, so :func:`verify` still passes.

Anything running as the same Unix account can rewrite these files; the chain makes
such a rewrite visible, and the copy every record also gets on the
``pyramid_notebook.audit`` logger (shipped off the box by the site's logging
configuration) keeps what was lost.
"""
import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import time

#: Name of a user's audit stream in their state folder (``notebook_folder/.state/<user>/``).
AUDIT_FILE_NAME = "audit.jsonl"
#: The web site's own stream (team recipes: publish, delete, open), ``notebook_folder/.state/.site/``:
#: no user's folder name starts with a dot, so it never meets one; :func:`stream_paths` lists it.
SITE_STREAM = (".site", AUDIT_FILE_NAME)
#: Lock file beside it: the writer and :func:`prune` never interleave.
LOCK_SUFFIX = ".lock"
#: Folder, in a JupyterHub single-user server's root folder, holding its stream (hidden from the
#: contents API, which refuses dot-names).
HUB_AUDIT_FOLDER = ".pyramid_notebook"
#: Every record is also emitted here (INFO): the record itself as ``extra={"audit": record}``, and
#: a message that spells it out (:func:`log_message`).
LOGGER_NAME = "pyramid_notebook.audit"
#: Characters no log message of ours carries (a site's formatter may ``str.format`` or ``%``-format
#: the message with the record's fields); JSON's escapes of them.
_UNSAFE = str.maketrans({"{": "\\u007b", "}": "\\u007d", "%": "\\u0025"})

logger = logging.getLogger(LOGGER_NAME)


class AuditError(OSError):
    """A record could not be stored; what it records must not run."""


def canonical(record: dict) -> str:
    """The record's canonical JSON: the text that is hashed and stored."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _flat(record: dict, prefix=""):
    for key, value in sorted(record.items(), key=lambda item: (item[0] not in ("kind", "user"), item[0])):
        if isinstance(value, dict) and value:
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value


def log_message(record: dict) -> str:
    """The log message of ``record``: ``pyramid_notebook audit kind="execute" user="alice" code=...``.

    Every value is JSON (nested records flattened to ``audit.user=...``) with ``{``, ``}`` and ``%``
    written as JSON escapes, so that no formatter misreads the message (one that ``str.format``-s or
    ``%``-formats it with the record's fields finds nothing to replace) and none of the record's
    text is lost with the stock formatter: :func:`parse_log_message` gives the record back.
    """
    return "pyramid_notebook audit " + " ".join(
        f"{key}={json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(',', ':')).translate(_UNSAFE)}"
        for key, value in _flat(record))


def parse_log_message(text: str) -> dict:
    """The record a :func:`log_message` spells out (anything before ``pyramid_notebook audit`` ignored)."""
    text = text[text.index("pyramid_notebook audit ") + len("pyramid_notebook audit "):].rstrip()
    decoder, record, pos = json.JSONDecoder(), {}, 0
    while pos < len(text):
        key, _, _ = text[pos:].partition("=")
        value, pos = decoder.raw_decode(text, pos + len(key) + 1)
        target = record
        *parents, name = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[name] = value
        pos += 1  # the space between two fields
    return record


def log(record: dict) -> None:
    """Emit ``record`` on the audit logger (INFO) as structured data, ``extra={"audit": record}``:
    JSON formatters (python-json-logger) keep it whole; the message is :func:`log_message`."""
    if logger.isEnabledFor(logging.INFO):
        logger.info(log_message(record), extra={"audit": record})


def record_hash(record: dict) -> str:
    """SHA-256 (hex) of ``record`` without its ``hash`` key."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def utc_now() -> str:
    """The current time as ISO 8601 UTC with microseconds (``2026-11-30T01:02:03.456789Z``)."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


def parse_time(text: str) -> datetime.datetime:
    """A record's ``time`` (or a ``--since`` value: ISO date/time, or ``30m``, ``2h``, ``7d`` ago), as UTC."""
    text = (text or "").strip()
    match = re.fullmatch(r"(\d+)\s*([smhd])", text)
    if match:
        seconds = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
        return datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def _last_line(path: str) -> bytes:
    """The last non-empty line of ``path`` (reads only its end)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            block = 4096
            while True:
                start = max(0, size - block)
                f.seek(start)
                data = f.read(size - start).rstrip(b"\n")
                if b"\n" in data or start == 0:
                    return data.rsplit(b"\n", 1)[-1]
                block *= 4
    except FileNotFoundError:
        return b""


def _head_of(line: bytes):
    """``(seq, hash)`` that the record after ``line`` continues from."""
    if not line:
        return -1, ""
    try:
        record = json.loads(line)
        seq = int(record["seq"])
    except (ValueError, KeyError, TypeError):
        # Someone mangled the last record: chain on from its bytes, verify names it.
        return -1, hashlib.sha256(line).hexdigest()
    return seq, record.get("hash") or record_hash(record)


class AuditStore:
    """The writer of one stream: appends records, keeps the chain's head in memory.

    The head is read from the file once; afterwards the writer trusts its memory, so
    records that someone removes or changes behind its back show up as a break in the
    chain at the next record instead of being silently chained over. The stream is opened
    for each record, so one deleted or replaced behind the writer's back is written anew,
    never into a file no one can see any more.
    """

    def __init__(self, path: str, fsync: bool = False, shared: bool = False):
        self.path = os.path.abspath(path)
        self.fsync = fsync
        #: Several processes append (the site's own stream, :data:`SITE_STREAM`): the head is re-read
        #: under the lock for each record instead of kept in memory.
        self.shared = shared
        self._seq = None
        self._hash = ""
        self._lock_fd = None

    def append(self, record: dict) -> dict:
        """Complete ``record`` (``seq``, ``prev``, ``hash``, ``time`` unless given), store and log it.

        Raises :class:`AuditError` when it cannot be stored whole; then nothing of it is stored.
        """
        try:
            if self._lock_fd is None:
                os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
                self._lock_fd = os.open(self.path + LOCK_SUFFIX, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                if self._seq is None or self.shared:
                    self._seq, self._hash = _head_of(_last_line(self.path))
                record = dict(record)
                record.setdefault("time", utc_now())
                record["seq"] = self._seq + 1
                record["prev"] = self._hash
                record.pop("hash", None)
                body = canonical(record)
                digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
                # The hash goes last, so the body is serialised once; verify re-serialises anyway.
                line = f'{body[:-1]},"hash":"{digest}"}}\n'
                self._write(line.encode("utf-8"))
                self._seq, self._hash = record["seq"], digest
                record["hash"] = digest
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        except OSError as e:
            logger.error("Audit record NOT stored in %s (%s): the request is refused", self.path, e)
            if self._lock_fd is not None:  # opened anew next time (the folder may be back)
                with contextlib.suppress(OSError):
                    os.close(self._lock_fd)
                self._lock_fd = None
            raise AuditError(e.errno, f"The audit trail cannot be written ({e.strerror or e})") from e
        log(record)
        return record

    def _write(self, line: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            try:
                written = os.write(fd, line)
                if written != len(line):
                    raise OSError(errno.ENOSPC, "No space left on device (short write)")
                if self.fsync:
                    os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)  # never leave half a record behind
                raise
        finally:
            os.close(fd)


class _FileLock:
    """An exclusive ``flock`` on a small file beside the stream."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # closing releases the lock


# --- reading --------------------------------------------------------------------------------


def stream_paths(location: str) -> list:
    """Every audit stream under ``location``: a stream file itself, a notebook folder
    (``.state/*/audit.jsonl``), or a folder of JupyterHub users' home folders
    (``*/.pyramid_notebook/audit.jsonl``)."""
    if os.path.isfile(location):
        return [os.path.abspath(location)]
    found = []
    for pattern in ((".state",), ()):
        root = os.path.join(location, *pattern)
        with contextlib.suppress(OSError):
            for entry in sorted(os.listdir(root)):
                for candidate in (os.path.join(root, entry, AUDIT_FILE_NAME),
                                  os.path.join(root, entry, HUB_AUDIT_FOLDER, AUDIT_FILE_NAME)):
                    if os.path.isfile(candidate):
                        found.append(os.path.abspath(candidate))
    direct = os.path.join(location, HUB_AUDIT_FOLDER, AUDIT_FILE_NAME)
    if os.path.isfile(direct):
        found.append(os.path.abspath(direct))
    return sorted(set(found))


def read_records(path: str):
    """Yield the records of one stream in order; lines that are not JSON objects are skipped
    (:func:`verify` reports them)."""
    with contextlib.suppress(FileNotFoundError):
        with open(path, "rb") as f:
            for line in f:
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if isinstance(record, dict):
                        yield record


def search(paths, user=None, since=None, grep=None, kinds=("execute", "terminal", "session", "refused")):
    """Records of ``paths`` matching all filters, oldest first: ``user`` (exact), ``since``
    (a datetime), ``grep`` (case-insensitive text in the code or terminal line)."""
    needle = (grep or "").lower()
    found = []
    for path in paths:
        for record in read_records(path):
            if kinds and record.get("kind") not in kinds:
                continue
            if user and record.get("user") != user:
                continue
            if since is not None:
                try:
                    if parse_time(record.get("time", "")) < since:
                        continue
                except ValueError:
                    continue
            if needle and needle not in (record.get("code") or record.get("line") or "").lower():
                continue
            found.append(record)
    found.sort(key=lambda r: r.get("time", ""))
    return found


# --- verifying and pruning ------------------------------------------------------------------


def verify(path: str):
    """Check one stream's chain; return ``None`` when intact, else a sentence naming the first
    altered or missing record."""
    expected_seq, last_hash = 0, ""
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            where = f"{path}, line {number}"
            try:
                record = json.loads(line)
                seq = int(record["seq"])
            except (ValueError, KeyError, TypeError):
                return f"{where}: record seq {expected_seq} was altered (not a valid record)"
            if record.get("hash") != record_hash(record):
                return f"{where}: record seq {seq} was altered (its hash does not match its content)"
            if number == 1 and record.get("kind") == "checkpoint":
                expected_seq, last_hash = seq + 1, record.get("pruned_hash", "")
                continue
            if seq > expected_seq:
                missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq} to {seq - 1}"
                return f"{where}: record seq {missing} missing (removed) before record seq {seq}"
            if seq < expected_seq:
                return f"{where}: record seq {seq} was altered or inserted (seq {expected_seq} expected)"
            if record.get("prev") != last_hash:
                return (f"{where}: record seq {seq - 1} was altered or replaced "
                        f"(record seq {seq} links to another record)")
            expected_seq, last_hash = seq + 1, record["hash"]
    return None


def prune(path: str, keep_days: float, now=None) -> int:
    """Drop the records older than ``keep_days`` from the start of one stream; return how many.

    A ``checkpoint`` record takes their place, carrying the last dropped record's ``seq`` and
    ``hash``: :func:`verify` passes afterwards, and the writer chains on unchanged. Refuses
    (``ValueError``) a stream that does not verify: pruning must not hide tampering.
    """
    problem = verify(path)
    if problem:
        raise ValueError(f"not pruned, the audit trail does not verify: {problem}")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    cutoff = now - datetime.timedelta(days=float(keep_days))
    with _FileLock(path + LOCK_SUFFIX):
        with open(path, "rb") as f:
            lines = f.readlines()
        dropped, last = 0, None
        for line in lines:
            record = json.loads(line)
            if record.get("kind") != "checkpoint":
                with contextlib.suppress(ValueError):
                    if parse_time(record.get("time", "")) >= cutoff:
                        break
            last = record
            dropped += 1
        if not dropped or (dropped == 1 and last.get("kind") == "checkpoint"):
            return 0
        pruned = sum(1 for line in lines[:dropped] if json.loads(line).get("kind") != "checkpoint")
        checkpoint = {"kind": "checkpoint", "time": utc_now(), "seq": last["seq"], "pruned_hash": last["hash"],
                      "pruned_before": cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "pruned": pruned}
        checkpoint["hash"] = record_hash(checkpoint)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".audit-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write((canonical(checkpoint) + "\n").encode("utf-8"))
                f.writelines(lines[dropped:])
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    log(dict(checkpoint, stream=path))
    return pruned
