"""Grants of live shared sessions (issue 31): who may join whose running notebook, how, until when.

A grant lets one person (a site user id) or everyone holding a principal (``role:editor``) into the
owner's *running* notebook, to ``collaborate`` or only to ``watch``. Grants live in a SQL database
through SQLAlchemy (``pyramid_notebook.sqlalchemy_url``; default an SQLite file in
``notebook_folder/.state/.site/``, beside the site's own audit stream), so they survive a restart of
the web processes and every web node of a site sees the same ones (several nodes share one
PostgreSQL). The store has its own engine (never the site's session: a grant is committed at once,
whatever the site's transaction does) with ``pool_pre_ping``, so a database restart costs no request.

A grant ends at its expiry, when it is revoked, or when the owner's notebook stops. The last is known
two ways: the site's shutdown ends the owner's grants at once (:meth:`ShareStore.end_owner`), and each
grant records *which* server it was given for (:func:`server_instance`), so a notebook that stopped
any other way (time-out, the command line, a crash, a restart with another set-up) has grants for a
server that no longer runs: the site ends them the first time it looks
(:mod:`pyramid_notebook.web.shares`).
"""
import dataclasses
import datetime
import os
import secrets
import threading

from pyramid_notebook.core.settingvalues import PREFIX, _int, parse_principals

#: What a guest may do: edit and run with the owner (if they hold the shell permission themselves),
#: or only see the notebook and its outputs live.
MODES = ("collaborate", "watch")
#: Database table of the grants.
TABLE = "pyramid_notebook_shares"
#: The default database, under ``notebook_folder``: the site's private state (no user folder starts with a dot).
DEFAULT_DATABASE = (".state", ".site", "pyramid_notebook.sqlite")
#: Why a grant ended (``ended`` column), as the refusal page says it.
REVOKED, STOPPED = "revoked", "stopped"
#: Principals that may not be shared with: the link would reach visitors who are not logged in.
UNSHAREABLE = frozenset({"system.Everyone"})


def parse_share_settings(settings: dict, notebook_folder: str) -> dict:
    """``sqlalchemy_url``, ``share_max_seconds``, ``share_principals`` (default: the shell principals)."""
    from pyramid.exceptions import ConfigurationError
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from pyramid_notebook.core.settingvalues import parse_shell_principals

    url = (settings.get(PREFIX + "sqlalchemy_url") or "").strip()
    if not url:
        url = "sqlite:///" + os.path.join(notebook_folder or os.getcwd(), *DEFAULT_DATABASE)
    try:
        make_url(url)
    except ArgumentError:
        raise ConfigurationError(f"{PREFIX}sqlalchemy_url must be an SQLAlchemy database URL such as "
                                 "postgresql+psycopg://user@host/db, got a malformed one") from None
    principals = parse_principals(settings.get(PREFIX + "share_principals")) or parse_shell_principals(settings)
    return {"sqlalchemy_url": url, "share_principals": principals,
            "share_max_seconds": _int(settings, "share_max_seconds", 86400, 1)}


def is_principal(recipient: str) -> bool:
    """True if ``recipient`` names a principal (``role:editor``, ``system.Authenticated``), not a user id."""
    return ":" in recipient or recipient.startswith("system.")


def server_instance(context) -> str:
    """What tells one start of a notebook server from the next: its pid, start time and port (local
    backend) or the hub's start time. Never the secret."""
    context = context or {}
    parts = (context.get("pid"), context.get("started_at") or context.get("started"), context.get("http_port"))
    return "|".join("" if part is None else str(part) for part in parts)


def utcnow() -> datetime.datetime:
    """Now, as the store keeps times: UTC without a zone (SQLite keeps none)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def iso(moment) -> str:
    """``2026-12-06T20:31:02Z`` for a stored time, or None."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


@dataclasses.dataclass(frozen=True)
class Grant:
    """One grant, as stored."""

    id: str
    owner: str
    recipient: str
    mode: str
    path: str
    created: datetime.datetime
    expires: datetime.datetime
    created_by: str
    server: str = ""
    revoked: datetime.datetime = None
    ended: str = None

    def state(self, now=None) -> str:
        """``live``, ``expired``, ``revoked`` or ``stopped`` (the owner's notebook stopped)."""
        if self.revoked is not None:
            return self.ended or REVOKED
        return "expired" if self.expires <= (now or utcnow()) else "live"

    @property
    def supervision(self) -> bool:
        """An administrator's watch from the operator console: made by someone else than the owner."""
        return bool(self.created_by) and self.created_by != self.owner

    def is_for(self, user: str, holds) -> bool:
        """Whether the grant names ``user``: their id, or a principal ``holds(principal)`` says they hold."""
        if user == self.owner:
            return False
        return self.recipient == user or (is_principal(self.recipient) and bool(holds(self.recipient)))


class ShareStore:
    """The grants in one database. One per URL and process (:func:`share_store`); thread-safe."""

    def __init__(self, url: str):
        self.url = url
        self._engine = self._table = None
        self._ready = False
        self._lock = threading.Lock()

    def engine(self):
        """The store's own engine, with its table created if missing (on first use, or at site start)."""
        with self._lock:
            if self._engine is None:
                self._engine, self._table = _make_engine(self.url)
            if not self._ready:
                _create_table(self._engine, self._table)
                self._ready = True
        return self._engine

    def table(self):
        """The SQLAlchemy ``Table`` of the grants."""
        self.engine()
        return self._table

    def create(self, owner, recipient, mode, seconds, path="", created_by=None, server="") -> Grant:
        """Store a new grant of ``owner``'s notebook to ``recipient`` for ``seconds``; return it."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        now = utcnow()
        grant = Grant(id=secrets.token_urlsafe(24), owner=str(owner), recipient=str(recipient), mode=mode,
                      path=path or "", created=now, expires=now + datetime.timedelta(seconds=seconds),
                      created_by=str(created_by or owner), server=server or "")
        values = dataclasses.asdict(grant)
        with self.engine().begin() as connection:
            connection.execute(self.table().insert().values(**values))
        return grant

    def get(self, grant_id) -> Grant:
        """The grant of that id in any state, or None."""
        if not isinstance(grant_id, str) or not grant_id or len(grant_id) > 64:
            return None
        table = self.table()
        with self.engine().connect() as connection:
            row = connection.execute(table.select().where(table.c.id == grant_id)).mappings().first()
        return Grant(**row) if row else None

    def _live(self, *conditions) -> list:
        table = self.table()
        query = table.select().where(table.c.revoked.is_(None), table.c.expires > utcnow(), *conditions)
        with self.engine().connect() as connection:
            rows = connection.execute(query.order_by(table.c.created)).mappings().all()
        return [Grant(**row) for row in rows]

    def given(self, owner) -> list:
        """The owner's live grants, oldest first."""
        return self._live(self.table().c.owner == str(owner))

    def received(self, user, holds) -> list:
        """Live grants to ``user`` by others: to their id, or to a principal ``holds(principal)`` says they hold."""
        table = self.table()
        from sqlalchemy import or_

        candidates = self._live(table.c.owner != str(user),
                                or_(table.c.recipient == str(user), table.c.recipient.like("%:%"),
                                    table.c.recipient.like("system.%")))
        return [grant for grant in candidates if grant.is_for(str(user), holds)]

    def valid_for(self, grant_id, user, holds):
        """``(grant, None)`` if ``user`` may use the grant now, else ``(grant or None, why)``: ``forged`` (no
        such grant), ``not yours``, or (for its grantee) ``expired``, ``revoked`` or ``stopped``."""
        grant = self.get(grant_id)
        if grant is None:
            return None, "forged"
        if not grant.is_for(str(user), holds):  # before its state: others learn nothing of the grant
            return grant, "not yours"
        state = grant.state()
        return grant, (None if state == "live" else state)

    def revoke(self, grant_id, reason=REVOKED) -> bool:
        """End a live grant now; True if it was live."""
        table = self.table()
        with self.engine().begin() as connection:
            result = connection.execute(table.update().where(table.c.id == grant_id, table.c.revoked.is_(None))
                                        .values(revoked=utcnow(), ended=reason))
        return result.rowcount > 0

    def end_owner(self, owner, reason=STOPPED, keep_server=None) -> int:
        """End every live grant of ``owner`` (their notebook stopped); with ``keep_server``, only those given
        for another server than that one. Returns how many ended."""
        table = self.table()
        query = table.update().where(table.c.owner == str(owner), table.c.revoked.is_(None))
        if keep_server is not None:
            query = query.where(table.c.server != keep_server)
        with self.engine().begin() as connection:
            return connection.execute(query.values(revoked=utcnow(), ended=reason)).rowcount

    def dispose(self) -> None:
        """Close the engine's pooled connections (tests, a site that stops)."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()


def _make_engine(url):
    from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, create_engine
    from sqlalchemy.engine import make_url

    parsed, options = make_url(url), {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        from pyramid_notebook.core.statefolder import make_private_folders

        make_private_folders(os.path.dirname(os.path.abspath(parsed.database)))
        from sqlalchemy.pool import NullPool

        # Several web processes write the one file: wait for a writer rather than fail at once. No
        # pool: a connection opens the file per use (tens of microseconds), so no idle descriptor
        # keeps the notebook folder's file system busy (it could not be remounted or unmounted).
        options = {"connect_args": {"timeout": 30}, "poolclass": NullPool}
    table = Table(
        TABLE, MetaData(),
        Column("id", String(64), primary_key=True),
        Column("owner", String(255), nullable=False, index=True),
        Column("recipient", String(255), nullable=False, index=True),
        Column("mode", String(16), nullable=False),
        Column("path", Text, nullable=False, default=""),
        Column("created", DateTime, nullable=False),
        Column("expires", DateTime, nullable=False),
        Column("revoked", DateTime, nullable=True),
        Column("ended", String(16), nullable=True),
        Column("created_by", String(255), nullable=False),
        Column("server", String(128), nullable=False, default=""),
    )
    return create_engine(url, **options), table


def _create_table(engine, table) -> None:
    """Create the table if missing. Two web nodes starting at once may both try: the loser's error is
    harmless once the table exists."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import DatabaseError

    try:
        table.create(engine, checkfirst=True)
    except DatabaseError:
        if not inspect(engine).has_table(table.name):
            raise


_STORES = {}
_STORES_LOCK = threading.Lock()


def process_store(cls, url: str):
    """The process's one ``cls(url)`` (a store of the team's database at ``url``), made on first use."""
    with _STORES_LOCK:
        store = _STORES.get((cls, url))
        if store is None:
            store = _STORES[(cls, url)] = cls(url)
        return store


def share_store(url: str) -> ShareStore:
    """The process's store for ``url`` (``NotebookSettings.sqlalchemy_url``)."""
    return process_store(ShareStore, url)


def end_owner_grants(settings, owner) -> int:
    """The owner's notebook was stopped by the site: end their grants (when sharing is on). Never raises:
    a database that is down must not keep a notebook running; the grants' server check ends them later."""
    if not settings.share_principals:
        return 0
    try:
        return share_store(settings.sqlalchemy_url).end_owner(owner)
    except Exception:  # noqa: BLE001 - any database error: logged, the stop goes on
        import logging

        logging.getLogger(__name__).exception("Could not end the grants of %r's stopped notebook", owner)
        return 0
