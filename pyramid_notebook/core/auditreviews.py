"""Reviews of audited sessions (issue 32), hash-chained, in the sharing grants' SQL database.

Each review (a session id, ``reviewed`` or ``flagged``, a note, the reviewer and the time) is a row of
``pyramid_notebook_audit_reviews`` in the database of ``pyramid_notebook.sqlalchemy_url`` (the grants'
engine, :func:`pyramid_notebook.core.shares.share_store`), so every web node sees the same ones. Each
row carries ``prev``, the ``hash`` of the row before it, and its own ``hash`` (SHA-256 of its canonical
JSON): a review edited, removed or replaced in the database breaks the chain, which :meth:`ReviewStore.verify`
names. ``prev`` is unique, so two nodes reviewing at once cannot fork the chain: the loser retries.
"""
import datetime
import hashlib
import threading

from pyramid_notebook.core.audit import canonical
from pyramid_notebook.core.shares import iso, process_store, share_store, utcnow

#: The table of the reviews.
TABLE = "pyramid_notebook_audit_reviews"
#: What a review says of a session.
REVIEW_STATUSES = ("reviewed", "flagged")
#: Longest note kept, in characters.
NOTE_MAX = 4000
#: Attempts to chain a review on when another node chained one at the same moment.
ATTEMPTS = 5


def review_hash(review: dict) -> str:
    """SHA-256 (hex) of a review's canonical JSON without its ``id`` and ``hash``."""
    body = {k: (iso(v) if isinstance(v, datetime.datetime) else v)
            for k, v in review.items() if k not in ("id", "hash")}
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


class ReviewStore:
    """The reviews in one database (the grants' engine); thread-safe."""

    def __init__(self, url: str):
        self.url = url
        self._table = None
        self._lock = threading.Lock()

    def engine(self):
        """The grants' engine, with the reviews' table created if missing."""
        engine = share_store(self.url).engine()
        with self._lock:
            if self._table is None:
                from sqlalchemy.exc import DatabaseError

                table = _make_table()
                try:
                    table.create(engine, checkfirst=True)
                except DatabaseError:  # another node created it at the same moment
                    from sqlalchemy import inspect

                    if not inspect(engine).has_table(TABLE):
                        raise
                self._table = table
        return engine

    def table(self):
        """The SQLAlchemy ``Table`` of the reviews."""
        self.engine()
        return self._table

    def add(self, session_id: str, status: str, note: str, reviewer: str) -> dict:
        """Chain a new review of ``session_id`` on; return it (with ``id`` and ``hash``)."""
        from sqlalchemy import select
        from sqlalchemy.exc import IntegrityError

        if status not in REVIEW_STATUSES:
            raise ValueError(f"status must be one of {', '.join(REVIEW_STATUSES)}")
        table, engine = self.table(), self.engine()
        for attempt in range(ATTEMPTS):
            try:
                with engine.begin() as connection:
                    last = connection.execute(select(table.c.hash).order_by(table.c.id.desc()).limit(1)).scalar()
                    review = {"session": str(session_id), "status": status, "note": str(note or ""),
                              "reviewer": str(reviewer), "created": utcnow().replace(microsecond=0),
                              "prev": last or ""}
                    review["hash"] = review_hash(review)
                    review["id"] = connection.execute(table.insert().values(**review)).inserted_primary_key[0]
                return review
            except IntegrityError:
                if attempt == ATTEMPTS - 1:
                    raise

    def of_session(self, session_id: str) -> list:
        """The session's reviews, oldest first, as dicts (``created`` as ISO text)."""
        table = self.table()
        with self.engine().connect() as connection:
            rows = connection.execute(table.select().where(table.c.session == str(session_id))
                                      .order_by(table.c.id)).mappings().all()
        return [_public(row) for row in rows]

    def statuses(self) -> dict:
        """``{session id: status of its latest review}``."""
        from sqlalchemy import func, select

        table = self.table()
        latest = select(func.max(table.c.id)).group_by(table.c.session).scalar_subquery()
        with self.engine().connect() as connection:
            rows = connection.execute(select(table.c.session, table.c.status).where(table.c.id.in_(latest)))
            return {session: status for session, status in rows}

    def verify(self):
        """``None`` if the chain of reviews is intact, else a sentence naming the first review that is not."""
        table = self.table()
        last = ""
        with self.engine().connect() as connection:
            for row in connection.execute(table.select().order_by(table.c.id)).mappings():
                review = dict(row)
                if review["prev"] != last:
                    return f"review {review['id']}: the review before it was altered or removed"
                if review["hash"] != review_hash(review):
                    return f"review {review['id']} was altered (its hash does not match its content)"
                last = review["hash"]
        return None


def _public(row) -> dict:
    review = dict(row)
    review["created"] = iso(review["created"])
    return review


def _make_table():
    from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text

    return Table(
        TABLE, MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("session", String(64), nullable=False, index=True),
        Column("status", String(16), nullable=False),
        Column("note", Text, nullable=False, default=""),
        Column("reviewer", String(255), nullable=False),
        Column("created", DateTime, nullable=False),
        Column("prev", String(64), nullable=False, unique=True),
        Column("hash", String(64), nullable=False),
    )


def review_store(url: str) -> ReviewStore:
    """The process's review store for ``url`` (``NotebookSettings.sqlalchemy_url``)."""
    return process_store(ReviewStore, url)
