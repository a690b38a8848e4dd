"""Names: stable hashes of contexts, users' folder names, and the original's small helpers."""
import contextlib
import hashlib
import json
import os
import re


def make_dict_hash(o) -> str:
    """Return a hash of a JSON-like structure that is stable across processes.

    The original used Python's ``hash()``, which is salted per interpreter, so
    every web worker computed a different hash and restarted the notebook. We
    hash a canonical JSON encoding instead.
    """
    canonical = json.dumps(o, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@contextlib.contextmanager
def change_directory(path):
    """Context manager that runs its block in ``path`` and then changes back."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


class BadUsername(ValueError):
    """A username that cannot be mapped to a notebook folder."""


_SAFE_NAME = re.compile(r"^[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]{0,63}$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_.@+-]+")
MAX_USERNAME_LENGTH = 256


def username_to_folder_name(username) -> str:
    """Map a username to a single, safe directory name.

    Plain names (letters, digits, ``_.@+-``, not starting with a dot, at most 64
    characters) are used as they are, so an admin can find a user's folder. Any
    other name is slugified and suffixed with a hash of the full name, behind a
    ``~`` that plain names cannot contain, so two users never share a folder and
    nothing can point outside the notebook folder (``..``, ``/``).
    """
    if not isinstance(username, str) or not username:
        raise BadUsername("The username is empty: a notebook needs a user to belong to.")
    if len(username) > MAX_USERNAME_LENGTH:
        raise BadUsername(f"The username is longer than {MAX_USERNAME_LENGTH} characters.")
    if any(ord(c) < 32 or ord(c) == 127 for c in username):
        raise BadUsername("The username contains control characters (such as NUL).")
    if _SAFE_NAME.match(username):
        return username
    slug = _UNSAFE_CHARS.sub("_", username).strip("._")[:40]
    digest = hashlib.sha256(username.encode("utf-8")).hexdigest()[:16]
    return f"~{slug}-{digest}"
