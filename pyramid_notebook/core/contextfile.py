"""Read and write a notebook's ``context.json``, which lives beside its pid file.

The context is how the web site and the daemon talk: the site writes what the
notebook should be (startup script, greeting, port, secret token), the daemon
completes it (pid, notebook name) and the proxy reads the port and token back.
It holds a secret, so it is written owner-only, and atomically so that a reader
never sees half a file.
"""
import os

from pyramid_notebook.core.files import read_json, write_json_atomic

CONTEXT_FILE_NAME = "context.json"


def get_context_file(pid_file: str) -> str:
    """The path of the context file that belongs to ``pid_file``."""
    return os.path.join(os.path.dirname(os.path.abspath(pid_file)), CONTEXT_FILE_NAME)


def read_context(pid_file: str):
    """Return the context dict, or ``None`` when it is missing or corrupt."""
    return read_json(get_context_file(pid_file))


def write_context(pid_file: str, context: dict) -> None:
    """Atomically replace the context file with ``context`` (mode 0600)."""
    write_json_atomic(get_context_file(pid_file), context, indent=2, sort_keys=True)
