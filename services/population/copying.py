"""COPY into the binding and payment databases over psycopg, one transaction per database:
checks that the tables are there and empty (holding them locked while loading), streams each
batch's lines per table, then ANALYZE and the database's size."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

import psycopg
from sqlalchemy.engine import make_url

from services.common.database import shown_url
from services.population.rows import TABLES
from shared.policy import PolicyIndex, policy_from_dict

CHUNK = 1 << 20  # bytes per write to the COPY stream


class PopulationError(Exception):
    """Why a database cannot be populated (not PostgreSQL, not migrated, not empty)."""


def conninfo(url: str, what: str) -> str:
    """A libpq connection string from a SQLAlchemy or libpq URL; refuses anything but PostgreSQL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend != "postgresql":
        raise PopulationError(
            f"{what} is {backend}, not PostgreSQL: gongji populate loads with PostgreSQL's COPY and refuses to "
            f"populate SQLite or any other database ({shown_url(parsed)})"
        )
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


class Target:
    """One service's database, opened for the whole load (one transaction)."""

    def __init__(self, service: str, url: str) -> None:
        self.service = service
        self.tables: Mapping[str, tuple[str, ...]] = TABLES[service]
        self.connection = psycopg.connect(conninfo(url, f"the {service} database"))
        self.seconds: dict[str, float] = dict.fromkeys(self.tables, 0.0)
        self.rows: dict[str, int] = dict.fromkeys(self.tables, 0)
        self.finish_seconds: dict[str, float] = {}

    def claim(self) -> None:
        """Locks the tables against other writers and refuses unless each exists and is empty."""
        with self.connection.cursor() as cursor:
            missing = [
                t for t in self.tables
                if cursor.execute("SELECT to_regclass(%s)", (t,)).fetchone() == (None,)
            ]  # fmt: skip
            if missing:
                raise PopulationError(
                    f"the {self.service} database has no table {', '.join(missing)}: "
                    f"run `gongji migrate {self.service} --database URL` first"
                )
            cursor.execute(f"LOCK TABLE {', '.join(self.tables)} IN SHARE ROW EXCLUSIVE MODE")
            filled = [t for t in self.tables if cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {t})").fetchone()[0]]
        if filled:
            raise PopulationError(
                f"the {self.service} database is not empty ({', '.join(filled)} hold rows): gongji populate "
                "loads only into freshly migrated databases, and changed nothing"
            )

    def policies(self) -> PolicyIndex:
        with self.connection.cursor() as cursor:
            rows = cursor.execute("SELECT document FROM region_policies").fetchall()
        return PolicyIndex(policy_from_dict(row[0]) for row in rows)

    def copy(self, lines: Mapping[str, list[str]]) -> None:
        with self.connection.cursor() as cursor:
            for table, columns in self.tables.items():
                found = lines.get(table)
                if not found:
                    continue
                started = time.perf_counter()
                with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for chunk in _chunks(found):
                        copy.write(chunk)
                self.seconds[table] += time.perf_counter() - started
                self.rows[table] += len(found)

    def commit_and_analyze(self) -> None:
        started = time.perf_counter()
        self.connection.commit()
        self.finish_seconds["commit"] = time.perf_counter() - started
        started = time.perf_counter()
        self.connection.autocommit = True
        with self.connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {', '.join(self.tables)}")
        self.finish_seconds["analyze"] = time.perf_counter() - started

    def size(self) -> tuple[int, str]:
        with self.connection.cursor() as cursor:
            row = cursor.execute(
                "SELECT pg_database_size(current_database()), pg_size_pretty(pg_database_size(current_database()))"
            ).fetchone()
        assert row is not None
        return int(row[0]), str(row[1])

    def close(self) -> None:
        self.connection.close()


def _chunks(lines: Iterable[str]) -> Iterable[bytes]:
    part: list[str] = []
    size = 0
    for line in lines:
        part.append(line)
        size += len(line)
        if size >= CHUNK:
            yield "".join(part).encode()
            part, size = [], 0
    if part:
        yield "".join(part).encode()
