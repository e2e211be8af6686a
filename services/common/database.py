"""Engines and migrations. SQLite is the embedded default; PostgreSQL is production."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from services.common.deadlines import past_deadline, remaining_milliseconds
from shared.errors import DomainError, Reason
from shared.privacy import scrub

log = logging.getLogger(__name__)

DATABASE_URL_ENV = "GONGJI_DATABASE_URL"
# Connection execution option that marks a transaction as a read.
READ_ONLY_OPTION = "gongji_read_only"
# Execution option of a text statement that only writes (returns no rows): SQLAlchemy cannot tell
# that from the text, and PostgreSQL's pipeline mode may send such a statement without waiting.
WRITES_ONLY_OPTION = "gongji_writes_only"
# How long a new PostgreSQL connection may take (libpq's connect_timeout, 2 at least) unless the URL
# says; past it the call is DATABASE_UNAVAILABLE.
CONNECT_TIMEOUT_SECONDS = 3
# libpq's options for a link cut silently (no RST: a cable, a firewall, a host gone) under a pooled
# connection, each unless the URL says. The statement's bytes unacknowledged for tcp_user_timeout
# ms, or a link idle past keepalives_idle that then misses keepalives_count probes, fail the
# connection; else its thread waits until TCP gives up, hours later, and so does every call that
# takes another pooled connection to the same dead link.
LINK_CHECKS: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,
}
# How long a SQLite writer waits for the database lock when the caller set no deadline.
_SQLITE_BUSY_MS = 30_000


_LISTENING = threading.Lock()


def listen_once(engine: Engine, identifier: str, hook: Callable[..., Any]) -> None:
    """Adds an engine hook unless it is there already. Added on first use, not at creation, so an
    engine that never needs it pays nothing; under a lock, as two threads at once would both add it."""
    with _LISTENING:
        if not event.contains(engine, identifier, hook):
            event.listen(engine, identifier, hook)


def conflict_aware_insert(dialect_name: str, table: Table) -> Any:
    """The INSERT of the back-end named, which knows ON CONFLICT (PostgreSQL's or SQLite's)."""
    return (postgresql if dialect_name == "postgresql" else sqlite).insert(table)


def default_database_url(service: str) -> str:
    return os.environ.get(DATABASE_URL_ENV) or f"sqlite:///gongji-{service}.db"


class DatabaseSettingError(ValueError):
    """A database that cannot be used as given (a URL of another kind, a server that does not
    answer, a schema this version does not know); the message says what to change."""


# The drivers gongji ships with: SQLite's, and psycopg 3 for PostgreSQL.
_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")
_URL_FORMS = "sqlite:///FILE or postgresql://USER@HOST:PORT/DATABASE"


def shown_url(url: str | URL) -> str:
    """The URL as a log line or an error may show it: the password hidden, whether it is given
    before the host (postgresql://USER:PASSWORD@HOST) or as a libpq parameter (?password=)."""
    parsed = make_url(url) if isinstance(url, str) else url
    if "password" not in parsed.query:
        return parsed.render_as_string(hide_password=True)
    hidden = parsed.update_query_dict({"password": "***"}).render_as_string(hide_password=True)
    return hidden.replace("password=%2A%2A%2A", "password=***")


def _parsed_url(url: str) -> URL:
    """The URL with the psycopg 3 driver for postgresql:// (and postgres://); one of another kind
    is a DatabaseSettingError, so it stops the start with a line, not a driver's import error."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseSettingError(f"the database URL does not parse: give {_URL_FORMS}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in _DRIVERS:
        raise DatabaseSettingError(f"database URL {shown_url(parsed)}: gongji runs on {_URL_FORMS}")
    return parsed


def normalise_url(url: str) -> str:
    """Lets operators write postgresql:// and still get the psycopg 3 driver."""
    return _parsed_url(url).render_as_string(hide_password=False)


def create_database_engine(url: str, pool_size: int = 16) -> Engine:
    url = normalise_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    # No pool_pre_ping: the runner retries work whose connection proved dead instead.
    # hide_parameters: SQL errors and echo never show the values (ID numbers, names).
    # LIFO: the connection used last is lent next, with the statement_timeout it has already.
    # connect_timeout: a server that accepts the connection and then says nothing (a silent network cut)
    # would hold a worker thread, and the metrics scrape, until the network came back.
    given = make_url(url).query
    options = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, **LINK_CHECKS}
    waits = {name: value for name, value in options.items() if name not in given}
    engine = create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_use_lifo=True, hide_parameters=True, connect_args=waits
    )

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        _bound_statements(connection, connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT")

    # A connection found dead has no info to keep (its replacement starts with an empty one).
    @event.listens_for(engine, "commit")
    def _on_commit(connection: Any) -> None:
        if not connection.invalidated and _TIMEOUT_SENT in connection.info:
            connection.info[_TIMEOUT_KEPT] = connection.info.pop(_TIMEOUT_SENT)

    @event.listens_for(engine, "rollback")
    def _on_rollback(connection: Any) -> None:
        # PostgreSQL undoes a SET of a transaction rolled back: the session keeps what it had.
        if not connection.invalidated:
            connection.info.pop(_TIMEOUT_SENT, None)

    return engine


# The session's statement_timeout as this process last set it (ms; None: the server's default),
# kept in the pooled connection's info, and a value sent in the open transaction, kept once it commits.
_TIMEOUT_KEPT = "gongji.statement_timeout"
_TIMEOUT_SENT = "gongji.statement_timeout.sent"
# A session's timeout still serves a caller while it lies within this share of the caller's
# remaining time; a new one is set a little below the remaining time, so that callers with
# like deadlines that come later (with a little less left) find it fitting too.
_TIMEOUT_STILL_FITS = 0.75
_TIMEOUT_MARGIN = 0.9


def statement_timeout_to_set(current: int | None, budget: int | None) -> int | None:
    """The statement_timeout (ms) to SET for a transaction with `budget` ms left (None: no
    deadline, the server's default), given the session's `current` one: `current` itself
    when it fits (nothing is sent), else the new value.

    A timeout fits a deadline when it is no longer than the time left and no shorter than
    three quarters of it. So a statement never outlives its caller's deadline, and
    transactions with like deadlines cost no SET each (a round trip per transaction)."""
    if budget is None:
        return None
    if current is not None and _TIMEOUT_STILL_FITS * budget <= current <= budget:
        return current
    return max(1, int(budget * _TIMEOUT_MARGIN))


def _bound_statements(connection: Any, autocommit: bool) -> None:
    """Gives the transaction's statements the caller's remaining time (see statement_timeout_to_set).
    Under autocommit a SET holds at once, whatever SQLAlchemy does at the end."""
    info = connection.info
    # A value sent but neither committed nor rolled back through SQLAlchemy: what the session has is unknown.
    known = _TIMEOUT_SENT not in info
    info.pop(_TIMEOUT_SENT, None)
    current = info.get(_TIMEOUT_KEPT)
    wanted = statement_timeout_to_set(current, remaining_milliseconds())
    if known and wanted == current:
        return
    connection.exec_driver_sql(
        "SET statement_timeout TO DEFAULT" if wanted is None else f"SET statement_timeout = {wanted}"
    )
    info[_TIMEOUT_KEPT if autocommit else _TIMEOUT_SENT] = wanted


def is_past_deadline(error: BaseException) -> bool:
    """Whether a database error is a statement stopped for the caller's deadline."""
    orig = getattr(error, "orig", None)
    if orig is None:
        return False
    if type(orig).__name__ == "QueryCanceled":  # psycopg: statement_timeout
        return True
    return isinstance(orig, sqlite3.OperationalError) and "interrupted" in str(orig)


def _sqlite_engine(url: str) -> Engine:
    # Writers queue on the database lock instead of failing, and every transaction
    # starts with BEGIN IMMEDIATE so a reader never has to upgrade to a writer
    # mid-way (which SQLite answers with "database is locked").
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": _SQLITE_BUSY_MS / 1000}, hide_parameters=True
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
        if make_url(url).database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        # Interrupts a statement that runs past the caller's deadline (checked every 10,000 steps).
        dbapi_connection.set_progress_handler(lambda: 1 if past_deadline() else 0, 10_000)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writer waits for the database lock no longer than the caller's remaining time: the
        # progress handler does not run while SQLite waits, and work that got the lock after the
        # caller gave up would still write.
        budget = remaining_milliseconds()
        connection.exec_driver_sql(
            f"PRAGMA busy_timeout={_SQLITE_BUSY_MS if budget is None else min(budget, _SQLITE_BUSY_MS)}"
        )
        # Reads begin deferred: in WAL mode they run beside a writer instead of queueing behind it.
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        try:
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
        except OperationalError:
            if past_deadline():
                raise DomainError(
                    Reason.DEADLINE_EXCEEDED, "the deadline passed while waiting for the database"
                ) from None
            raise

    return engine


def alembic_config(service: str, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files(f"services.{service}.adapters") / "migrations"))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def migrate(service: str, url: str, revision: str = "head") -> str:
    """Brings a service's database to `revision`, and says the revision it is at; safe to run on
    every start. A database that does not answer, is at a revision this version does not know, or
    is already past `revision` (migrate only moves forward) is a DatabaseSettingError."""
    _parsed_url(url)
    shown = shown_url(url)
    config = alembic_config(service, url)
    script = ScriptDirectory.from_config(config)
    if revision not in ("head", "heads") and revision not in {step.revision for step in script.walk_revisions()}:
        known = ", ".join(step.revision for step in reversed(list(script.walk_revisions())))
        raise DatabaseSettingError(f"no revision {revision!r} in this version's {service} migrations: give head or "
                                   f"one of {known}")  # fmt: skip
    log.info("migrating %s database %s to %s", service, shown, revision)
    try:
        command.upgrade(config, revision)
    except CommandError as error:
        raise DatabaseSettingError(
            f"cannot migrate the {service} database {shown} to {revision}: {error}. A revision this "
            "version does not know means a newer gongji migrated the database: run that version"
        ) from None
    except SQLAlchemyError as error:
        raise DatabaseSettingError(f"cannot use the {service} database {shown}: {_headline(error)}") from None
    if revision in ("head", "heads"):
        return str(script.get_current_head())
    # Alembic takes an upgrade to a revision the database is past as done, and changes nothing.
    engine = create_database_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    if current != revision:
        raise DatabaseSettingError(
            f"the {service} database {shown} is at revision {current}, past {revision}: gongji migrate only "
            "moves a database forward, and left it as it was"
        )
    return revision


def _headline(error: SQLAlchemyError) -> str:
    """The driver's message, its first line only (PostgreSQL's DETAIL, which may quote a row,
    follows on the next), masked like the logs."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return scrub(f"{type(cause).__name__}: {lines[0] if lines else ''}")


def downgrade(service: str, url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(service, url), revision)
