"""Alembic migrations build exactly the schema the code maps, on SQLite and
PostgreSQL, and `gongji migrate` can be run again without harm."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from services.common.database import downgrade, migrate, normalise_url
from tests.conftest import METADATA


@pytest.mark.parametrize("service", ["binding", "payment", "gateway"])
def test_migrations_build_exactly_the_mapped_schema(service, databases):
    url = databases.url(service)
    migrate(service, url)
    engine = create_engine(normalise_url(url))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, METADATA[service])
    engine.dispose()
    assert differences == [], f"models and migrations disagree: {differences}"


@pytest.mark.parametrize("service", ["binding", "payment", "gateway"])
def test_migrations_run_down_to_nothing_and_up_again(service, tmp_path):
    url = f"sqlite:///{tmp_path}/{service}.db"
    migrate(service, url)
    downgrade(service, url, "base")
    engine = create_engine(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    migrate(service, url)
    engine = create_engine(url)
    assert {t.name for t in METADATA[service].sorted_tables} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_gongji_migrate_is_safe_to_run_twice(tmp_path):
    command = [sys.executable, "-m", "services.cli", "migrate", "binding", "--database", f"sqlite:///{tmp_path}/b.db"]
    for _ in range(2):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "binding database is at revision head" in result.stdout
