"""The body of every service's Alembic env.py: online migrations only, one
database per service, a transaction per migration run."""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData

from services.common.database import create_database_engine


def run_migrations(context: Any, metadata: MetaData) -> None:
    if context.is_offline_mode():
        raise SystemExit("gongji migrates online only: give a database URL")
    engine = create_database_engine(context.config.get_main_option("sqlalchemy.url"), pool_size=1)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=metadata, compare_type=True)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    finally:
        engine.dispose()
