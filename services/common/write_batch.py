"""A transaction's writes, sent to PostgreSQL together as one statement.

Each write is a set of rows for one table: rows to insert, rows to update by their key, or rows
to insert that add their amounts to the row of the same key where there is one. On PostgreSQL
the rows of a write travel as one JSON parameter that `json_populate_recordset` turns back into
rows of the table's own row type, so the column types are the table's, and a value a column
cannot take is refused as the column refuses it. Several writes go as the data-modifying CTEs of
one statement.

Why: every statement sent costs CPU in SQLAlchemy and psycopg, and so does every parameter, and
psycopg parses again, on every call, a statement of more than 50 parameters or 4,096 characters.
A settlement's five writes cost about 1.4 ms of CPU as five statements of one parameter per
value, and 0.5 ms as one statement of one parameter per write. The text of a statement depends on
which tables and columns it writes (and for an update, how many rows), so it is built once and
psycopg keeps its parse. SQLite runs each write as a statement of its own, one execution per row.

All the writes of one PostgreSQL statement see the database as it was before the statement, and
a row written twice in one statement keeps only one of the changes. So a batch writes each table
at most once: a second write to a table already in it sends what is there first. Foreign keys are
checked when the statement ends, so a row and the rows that refer to it may go together.

A unit of work may defer its writes (on PostgreSQL) to the commit: they are sent then, as one
statement, or before any other statement the connection runs, so a read sees them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table, and_, bindparam, insert, text, update
from sqlalchemy.dialects import postgresql, sqlite

from services.common.database import WRITES_ONLY_OPTION, listen_once
from services.common.driver_statements import DriverStatement, hooked_while

_QUOTE = postgresql.dialect().identifier_preparer.quote
# Where a connection keeps the batch whose writes wait (in the pooled connection's info).
_DEFERRED = hooked_while("gongji.deferred_writes")


class Kind(Enum):
    INSERT = "insert"
    UPDATE = "update"  # rows whose key columns find the row to change; the other columns are set
    ADD = "add"  # insert; where the key exists already, add the sums columns to the row's instead


@dataclass(frozen=True)
class Shape:
    """What a write's statement depends on: not its rows, only which table and columns."""

    kind: Kind
    table: Table
    columns: tuple[str, ...]
    keys: tuple[str, ...] = ()  # UPDATE: the columns that find the row; ADD: the conflict columns
    sums: tuple[str, ...] = ()  # ADD: the columns added to an existing row's
    count: int = 0  # UPDATE: how many rows (see _rows_of)


@dataclass(frozen=True)
class Write:
    shape: Shape
    rows: Sequence[dict[str, Any]]


def inserting(table: Table, rows: Sequence[dict[str, Any]]) -> Write:
    """Inserts `rows` (each with the same keys) into `table`."""
    return Write(Shape(Kind.INSERT, table, tuple(rows[0]) if rows else ()), rows)


def updating(table: Table, keys: tuple[str, ...], rows: Sequence[dict[str, Any]]) -> Write:
    """Sets the other columns of each row found by its `keys` columns (a row not found is left alone)."""
    return Write(Shape(Kind.UPDATE, table, tuple(rows[0]) if rows else (), keys, count=len(rows)), rows)


def adding(table: Table, keys: tuple[str, ...], sums: tuple[str, ...], rows: Sequence[dict[str, Any]]) -> Write:
    """Inserts `rows`; where a row of the same `keys` exists, adds their `sums` columns to its
    instead (the other columns keep what the row has). `rows` must not repeat a key."""
    return Write(Shape(Kind.ADD, table, tuple(rows[0]) if rows else (), keys, sums), rows)


class WriteBatch:
    """The writes of one unit of work on one connection."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._postgresql = connection.dialect.name == "postgresql"
        self._pending: list[Write] = []
        self._deferred = False

    def write(self, *writes: Write) -> None:
        """Writes now, in one statement on PostgreSQL; or, while deferred, at the next flush."""
        writes = tuple(w for w in writes if w.rows)
        if not writes:
            return
        if not self._postgresql:
            for one in writes:
                _run_on_sqlite(self._connection, one)
            return
        for one in writes:
            if any(p.shape.table is one.shape.table for p in self._pending):
                self.flush()
            self._pending.append(one)
        if not self._deferred:
            self.flush()

    def defer(self) -> None:
        """Keeps the writes that follow until `flush` (PostgreSQL; SQLite writes at once). A
        statement run on the connection meanwhile sends them first, so it sees them."""
        if not self._postgresql:
            return
        listen_once(self._connection.engine, "before_execute", _flush_first)
        self._connection.info[_DEFERRED] = self
        self._deferred = True

    def flush(self) -> None:
        """Sends the writes kept, as one statement."""
        if not self._pending:
            return
        # Emptied first: the statement's own before_execute hook then finds nothing to send.
        writes, self._pending = self._pending, []
        statement = _statement(tuple(w.shape for w in writes))
        statement.run(self._connection, {f"w{i}": _rows_as_json(w.rows) for i, w in enumerate(writes)})

    def end(self, send: bool) -> None:
        """Sends (or drops) what is kept and stops deferring: at the end of the transaction."""
        if send:
            self.flush()
        self._pending.clear()
        if self._deferred:
            self._deferred = False
            # A connection found dead has no info to clear: its replacement starts with none.
            if not self._connection.invalidated:
                self._connection.info.pop(_DEFERRED, None)


def _flush_first(connection: Connection, *_: Any) -> None:
    """Engine hook (before_execute): a statement other than the batch's own sends the writes kept."""
    batch = connection.info.get(_DEFERRED)
    if batch is not None:
        batch.flush()


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; give a time zone")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bytes):
        return "\\x" + value.hex()  # bytea's own text form
    raise TypeError(f"{type(value).__name__} is not written as a column value")


def _rows_as_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(rows, default=_json_value, separators=(",", ":"))


def _rows_of(shape: Shape, parameter: str) -> str:
    rows = f"json_populate_recordset(NULL::{_QUOTE(shape.table.name)}, CAST(:{parameter} AS JSON))"
    if shape.kind is not Kind.UPDATE:
        return f"{rows} AS r"
    # The planner takes a set-returning function for 100 rows, and would join that many to the
    # table by reading all of it (a hash join over a sequential scan, a cost that grows with the
    # table). A LIMIT of the true count tells it how few there are, so each is found by its key.
    return f"(SELECT * FROM {rows} LIMIT {shape.count}) AS r"


def _postgresql_write(shape: Shape, parameter: str) -> str:
    table = _QUOTE(shape.table.name)
    columns = ", ".join(map(_QUOTE, shape.columns))
    if shape.kind is Kind.UPDATE:
        changed = ", ".join(f"{_QUOTE(c)} = r.{_QUOTE(c)}" for c in shape.columns if c not in shape.keys)
        found = " AND ".join(f"{table}.{_QUOTE(k)} = r.{_QUOTE(k)}" for k in shape.keys)
        return f"UPDATE {table} SET {changed} FROM {_rows_of(shape, parameter)} WHERE {found}"
    selected = ", ".join(f"r.{_QUOTE(c)}" for c in shape.columns)
    statement = f"INSERT INTO {table} ({columns}) SELECT {selected} FROM {_rows_of(shape, parameter)}"
    if shape.kind is Kind.ADD:
        added = ", ".join(f"{_QUOTE(c)} = {table}.{_QUOTE(c)} + EXCLUDED.{_QUOTE(c)}" for c in shape.sums)
        statement += f" ON CONFLICT ({', '.join(map(_QUOTE, shape.keys))}) DO UPDATE SET {added}"
    return statement


@lru_cache(maxsize=256)
def _statement(shapes: tuple[Shape, ...]) -> DriverStatement:
    """One statement for writes of these shapes, parameters w0, w1, …: built once per combination."""
    *first, last = [_postgresql_write(shape, f"w{i}") for i, shape in enumerate(shapes)]
    sql = "".join(("WITH " if i == 0 else ", ") + f"w{i} AS ({part})" for i, part in enumerate(first))
    sql = f"{sql} {last}" if first else last
    return DriverStatement(text(sql).execution_options(**{WRITES_ONLY_OPTION: True}))


def _run_on_sqlite(connection: Connection, one: Write) -> None:
    statement, rename = _sqlite_statement(one.shape)
    connection.execute(statement, [rename(row) for row in one.rows])


@lru_cache(maxsize=256)
def _sqlite_statement(shape: Shape) -> tuple[Any, Callable[[dict[str, Any]], dict[str, Any]]]:
    table = shape.table
    if shape.kind is Kind.INSERT:
        return insert(table), dict
    if shape.kind is Kind.ADD:
        statement = sqlite.insert(table)
        added = {c: table.c[c] + statement.excluded[c] for c in shape.sums}
        return statement.on_conflict_do_update(index_elements=[table.c[k] for k in shape.keys], set_=added), dict
    # SQLAlchemy keeps the names of a table's columns for itself: the parameters are renamed.
    found = and_(*(table.c[k] == bindparam(f"key_{k}") for k in shape.keys))
    statement = (
        update(table).where(found).values({c: bindparam(f"new_{c}") for c in shape.columns if c not in shape.keys})
    )

    def rename(row: dict[str, Any]) -> dict[str, Any]:
        return {(f"key_{k}" if k in shape.keys else f"new_{k}"): v for k, v in row.items()}

    return statement, rename
