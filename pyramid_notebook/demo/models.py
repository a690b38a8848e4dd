"""The demo's SQLAlchemy 2 model: one table, seeded with one row."""
from sqlalchemy import String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

SEED_ITEM = "Ground control to Major Tom"


class Base(DeclarativeBase):
    """Declarative base of the demo's models."""


class Item(Base):
    """A thing stored in the demo database."""

    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))


def setup_database(url: str) -> sessionmaker:
    """Create the tables and the seed row if missing; return a session factory."""
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        if not session.scalar(select(func.count()).select_from(Item)):
            session.add(Item(name=SEED_ITEM))
            session.commit()
    return sessionmaker(bind=engine)
