"""Tables for people: the ``pyramid-notebook`` listings, local and on a hub alike."""


def _cell(row, column) -> str:
    value = row.get(column)
    if value is None:
        return ""
    # Context hashes are 64 hex digits: 16 tell them apart in a table (--json has them whole).
    return str(value)[:16] if column == "context_hash" else str(value)


def print_table(rows, columns, note=None) -> None:
    """Print ``rows`` (dicts) as aligned columns with an upper-case header; ``note(row)`` may add a line."""
    cells = [[_cell(r, c) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)))
    for row, r in zip(cells, rows):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
        extra = note(r) if note else None
        if extra:
            print(extra)
