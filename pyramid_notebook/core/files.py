"""Files the processes share: JSON written atomically, and the end of a log.

A reader (another web process, the notebook daemon, the command line) must never see half a file,
and a crash must never leave a truncated one behind, so JSON state is written to a temporary file
in the same folder and renamed over the old one.
"""
import contextlib
import json
import os
import tempfile


def write_json_atomic(path: str, data, **dump_options) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically (mode 0600: the state may hold secrets)."""
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path).split(".")[0] + "-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, **dump_options)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: str):
    """The JSON object in ``path``, or ``None`` when it is missing, unreadable, corrupt or not an object."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_tail(path: str, lines: int, max_bytes: int = 256 * 1024) -> list:
    """The last ``lines`` lines of a text file (at most its last ``max_bytes``); ``[]`` if it is missing."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.splitlines()[-lines:] if lines > 0 else []
