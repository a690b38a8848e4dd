"""Memory sizes as people write them in settings: ``2G``, ``400M``, ``1.5GiB``, ``1073741824``."""
import re

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text) -> int:
    """Bytes in ``text``; units are binary (``2G`` = 2 GiB). Raises ValueError for anything else."""
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"not a size such as 2G or 400M: {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def format_size(size) -> str:
    """``2 GiB``, ``400 MiB``, ``1.5 GiB``: how the notebook and the admin page name a size."""
    size = float(size or 0)
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.1f}".rstrip("0").rstrip(".") + " " + unit
    return f"{int(size)} B"
