"""The demo's SQLAlchemy 2 models: items (seeded with one row) and stored analyses."""
import datetime
import fcntl

from sqlalchemy import DateTime, String, Text, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

SEED_ITEM = "Ground control to Major Tom"


class Base(DeclarativeBase):
    """Declarative base of the demo's models."""


class Item(Base):
    """A thing stored in the demo database."""

    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))


class Analysis(Base):
    """A notebook the site stored from the /embed page: its owner, name and nbformat JSON."""

    __tablename__ = "analyses"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    name: Mapped[str] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text)
    saved_at: Mapped[datetime.datetime] = mapped_column(
        DateTime, default=lambda: datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None))


def setup_database(url: str) -> sessionmaker:
    """Create the tables and the seed row if missing; return a session factory.

    Several web server processes (and every notebook kernel) run this at start-up; a
    lock file beside an SQLite database keeps them from creating the tables twice.
    """
    engine = create_engine(url)
    database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    lock = open(database + ".lock", "a") if database and database != ":memory:" else None
    try:
        if lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            if not session.scalar(select(func.count()).select_from(Item)):
                session.add(Item(name=SEED_ITEM))
                session.commit()
    finally:
        if lock:
            lock.close()
    return sessionmaker(bind=engine)
