"""The body of every service's Alembic env.py: online migrations only, one
database per service, one transaction per migration run.

Every replica migrates its database when it starts, so several may start on one database at
once. Each run holds a lock on the database from before it reads the revision the database is
at until it commits, so the runs take turns: the first migrates, the others then find the
database at head and change nothing. On PostgreSQL that is a transaction-scoped advisory lock;
on SQLite the run is one transaction, which begins with BEGIN IMMEDIATE (the engine's), the
database's write lock. (Alembic's own SQLite setting commits after each migration, so a
second run that had read the revision before the first committed would make a table twice.)"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, MetaData, inspect, text

from services.common.database import DatabaseSettingError, create_database_engine

# The advisory lock key of gongji's migrations (any 64-bit number no other tool of the database uses).
MIGRATION_LOCK_KEY = 0x676F6E676A69  # "gongji"


def _other_services_tables(metadata: MetaData) -> dict[str, set[str]]:
    """Per other gongji service, the tables it has and this one has not."""
    from services.binding.adapters.orm import metadata as binding
    from services.gateway.adapters.orm import metadata as gateway
    from services.payment.adapters.orm import metadata as payment

    own = set(metadata.tables)
    every = {"binding": binding, "payment": payment, "gateway": gateway}
    return {name: set(other.tables) - own for name, other in every.items() if other is not metadata}


def _check_database_is_this_services(connection: Connection, metadata: MetaData) -> None:
    """The services' migrations number their revisions alike (0001, 0002, ...) in one
    alembic_version table, so a database another service migrated looked like this service's at
    that revision: the gateway on the binding service's database "migrated" to head making no table
    at all. A database holding another service's tables is refused instead."""
    present = set(inspect(connection).get_table_names())
    for service, tables in _other_services_tables(metadata).items():
        theirs = sorted(present & tables)
        if theirs:
            named = ", ".join(theirs[:3]) + (", ..." if len(theirs) > 3 else "")
            raise DatabaseSettingError(
                f"the database holds the {service} service's tables ({named}): give each gongji service a "
                "database of its own"
            )


def run_migrations(context: Any, metadata: MetaData) -> None:
    if context.is_offline_mode():
        raise SystemExit("gongji migrates online only: give a database URL")
    engine = create_database_engine(context.config.get_main_option("sqlalchemy.url"), pool_size=1)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection, target_metadata=metadata, compare_type=True, transactional_ddl=True
            )
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                _check_database_is_this_services(connection, metadata)
                context.run_migrations()
            connection.commit()
    finally:
        engine.dispose()
