"""A hot statement compiled once by SQLAlchemy and run on psycopg's own cursor (PostgreSQL).

Why: SQLAlchemy spends about as much CPU on a statement as psycopg and the server's answer
together (its cache key, the parameters processed, the result wrapped): 100 µs a statement on
this machine, a fifth of what the payment service spends on a settlement's reads. The text is
compiled by SQLAlchemy from the Core statement, once, so the statement is written once; an
expanding IN becomes `= ANY(array)`, one text for any number of values, which psycopg prepares
once.

What SQLAlchemy does around a statement still happens: the transaction begins through it (its
`begin` hook sets the statement timeout), a driver error is raised as SQLAlchemy raises it (the
parameters hidden, as the engine hides them), and a connection found dead is invalidated. A read
runs through SQLAlchemy where its hooks have work to do first (writes kept for the commit, an open
pipeline: see `hooked_while`), and every statement does where SQL spans are recorded (the spans
come from SQLAlchemy's events) or the database is SQLite.
"""

from __future__ import annotations

import weakref
from typing import Any

from psycopg import Error as DriverError
from psycopg.rows import namedtuple_row
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.sql import Executable

# Keys of a connection's info under which an engine hook keeps work that a read must let it do first.
_HOOKED: set[str] = set()
# Engines whose statements something listens to (SQL spans).
_OBSERVED: weakref.WeakSet[Engine] = weakref.WeakSet()


def hooked_while(info_key: str) -> str:
    """Declares that while a connection's info holds `info_key`, an engine hook must see each read
    before it runs (it sends writes kept, or ends a pipeline); returns the key."""
    _HOOKED.add(info_key)
    return info_key


def observed(engine: Engine) -> None:
    """From now on every statement of `engine` runs through SQLAlchemy, where its listeners see it."""
    _OBSERVED.add(engine)


class DriverStatement:
    """A statement run on the driver's cursor: `rows` for one that returns rows (read by attribute,
    as SQLAlchemy's are), `run` for a write that returns none."""

    def __init__(self, statement: Executable, arrays: tuple[str, ...] = ()) -> None:
        self.statement = statement
        self._arrays = arrays
        # By the parameters' names (an INSERT's text names the columns given): the text, and the
        # values of the statement's own parameters (its literals).
        self._texts: dict[tuple[str, ...], tuple[str, dict[str, Any]]] = {}

    def _text(self, names: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
        found = self._texts.get(names)
        if found is None:
            compiled = self.statement.compile(dialect=PGDialect_psycopg(), column_keys=list(names))
            sql = compiled.string
            for name in self._arrays:
                expanded = f"IN (__[POSTCOMPILE_{name}])"
                if expanded not in sql:
                    raise ValueError(f"{name} is not an expanding IN of the statement")
                sql = sql.replace(expanded, f"= ANY(%({name})s)")
            own = {name: value for name, value in compiled.params.items() if name not in names}
            found = self._texts[names] = (sql, own)
        return found

    def rows(self, connection: Connection, parameters: dict[str, Any]) -> list[Any]:
        if not _direct(connection) or any(key in connection.info for key in _HOOKED):
            return list(connection.execute(self.statement, parameters))
        return self._on_driver(connection, parameters, fetch=True)

    def run(self, connection: Connection, parameters: dict[str, Any]) -> None:
        """A write that returns no rows: the hooks have nothing to do before it (in a pipeline it
        is sent without waiting, its answer read when the pipeline ends)."""
        if not _direct(connection):
            connection.execute(self.statement, parameters)
            return
        self._on_driver(connection, parameters, fetch=False)

    def _on_driver(self, connection: Connection, parameters: dict[str, Any], fetch: bool) -> list[Any]:
        sql, own = self._text(tuple(parameters))
        parameters = {**own, **parameters} if own else parameters
        if not connection.in_transaction():
            connection.begin()  # through SQLAlchemy, so its hooks (the statement timeout) and its commit see it
        cursor = connection.connection.driver_connection.cursor(row_factory=namedtuple_row)  # type: ignore[union-attr]
        try:
            cursor.execute(sql, parameters)
            return cursor.fetchall() if fetch else []
        except DriverError as error:
            # SQLAlchemy's own handling: the error wrapped as its class (OperationalError,
            # IntegrityError, …) and a dead connection invalidated. Private, but one method since 1.4.
            connection._handle_dbapi_exception(error, sql, parameters, cursor, None)
        finally:
            cursor.close()


def _direct(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql" and connection.engine not in _OBSERVED
