"""A row and the rows that belong to it (a journal entry and its postings, a settlement and its
legs, a participant's record of a cross-node transaction and its legs), written together.

On PostgreSQL they are one statement: the row's INSERT rides as a data-modifying CTE on the
multi-row INSERT of its children. Each statement sent costs about 200 µs of CPU in SQLAlchemy and
psycopg, whatever it holds, so this saves one statement per write. A constraint either INSERT
breaks fails the one statement, as it failed one of the two. The statement is text, built once
per shape: SQLAlchemy compiles a multi-row INSERT construct again on every call, which costs
more than the statement it saves. SQLite has no data-modifying CTEs and gets two statements.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table, TextClause, bindparam, insert, text
from sqlalchemy.dialects import postgresql

from services.common.database import WRITES_ONLY_OPTION

_QUOTE = postgresql.dialect().identifier_preparer.quote
# Up to this many children the rows go as one statement; more (none of the money paths writes
# more) go as two, so no statement grows without bound.
MOST_CHILDREN_IN_ONE_STATEMENT = 16


def insert_with_children(
    connection: Connection, parent: Table, row: dict[str, Any], children: Table, child_rows: Sequence[dict[str, Any]]
) -> None:
    """Inserts `row` into `parent` and `child_rows` (each with the same keys) into `children`."""
    if connection.dialect.name == "postgresql" and 0 < len(child_rows) <= MOST_CHILDREN_IN_ONE_STATEMENT:
        statement = _together(parent, tuple(row), children, tuple(child_rows[0]), len(child_rows))
        values = {f"r_{name}": value for name, value in row.items()}
        for i, child in enumerate(child_rows):
            values |= {f"c{i}_{name}": value for name, value in child.items()}
        connection.execute(statement, values)
        return
    connection.execute(_insert(parent), row)
    if child_rows:
        connection.execute(_insert(children), list(child_rows))


@cache
def _insert(table: Table) -> Any:
    return insert(table)


def _cast(name: str, table: Table, column: str) -> str:
    # Cast as SQLAlchemy's own PostgreSQL statements do, so psycopg prepares one plan for all values;
    # without a length, as they do too: a cast to VARCHAR(n) would cut a long value short, where the
    # column's own check refuses it.
    type_name = re.sub(r"\(\d+\)", "", table.c[column].type.compile(dialect=postgresql.dialect()))
    return f"CAST(:{name} AS {type_name})"


@cache
def _together(
    parent: Table, columns: tuple[str, ...], children: Table, child_columns: tuple[str, ...], count: int
) -> TextClause:
    """The one statement for a row of `columns` and `count` children of `child_columns`;
    parameters r_<column> for the row and c<i>_<column> for child i."""
    row = ", ".join(_cast(f"r_{c}", parent, c) for c in columns)
    child_rows = ", ".join(
        "(" + ", ".join(_cast(f"c{i}_{c}", children, c) for c in child_columns) + ")" for i in range(count)
    )
    names, child_names = ", ".join(map(_QUOTE, columns)), ", ".join(map(_QUOTE, child_columns))
    sql = (
        f"WITH parent AS (INSERT INTO {_QUOTE(parent.name)} ({names}) VALUES ({row})) "
        f"INSERT INTO {_QUOTE(children.name)} ({child_names}) VALUES {child_rows}"
    )
    typed = [bindparam(f"r_{c}", type_=parent.c[c].type) for c in columns]
    typed += [bindparam(f"c{i}_{c}", type_=children.c[c].type) for i in range(count) for c in child_columns]
    return text(sql).bindparams(*typed).execution_options(**{WRITES_ONLY_OPTION: True})
