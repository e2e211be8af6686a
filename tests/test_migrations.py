"""Alembic migrations build exactly the schema the code maps, on SQLite and
PostgreSQL, and `gongji migrate` can be run again without harm."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from services.common.database import DatabaseSettingError, downgrade, migrate, normalise_url
from shared.principals import BINDING_SERVICE
from tests.conftest import METADATA, require_postgres


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


def gongji(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], capture_output=True, text=True, timeout=60)


def test_a_database_a_newer_gongji_migrated_stops_migrate_and_serve_with_one_line_saying_so(databases, pki):
    url = databases.url("binding")
    migrate("binding", url)
    engine = create_engine(normalise_url(url))
    with engine.begin() as connection:
        head = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    try:
        for result in (
            gongji("migrate", "binding", "--database", url),
            gongji("serve", "binding", "--address", "127.0.0.1:0", "--database", url, *pki.args(BINDING_SERVICE)),
        ):
            assert result.returncode == 2
            assert "Traceback" not in result.stderr
            assert "'0099'" in result.stderr and "a newer gongji migrated the database" in result.stderr
    finally:  # the run's PostgreSQL database serves the tests after this one
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
        engine.dispose()


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://root:secret@127.0.0.1/gongji", "gongji runs on sqlite:///FILE or postgresql://"),
        ("not a url", "does not parse"),
        ("postgresql://postgres:secret@127.0.0.1:1/gongji", "Connection refused"),
        ("postgresql://postgres@127.0.0.1:1/gongji?password=secret", "password=***"),
        ("sqlite:////no/such/directory/b.db", "unable to open database file"),
    ],
)
def test_a_database_that_cannot_be_used_stops_migrate_and_serve_with_one_line_and_no_password(url, said, pki):
    for result in (
        gongji("migrate", "binding", "--database", url),
        gongji("serve", "binding", "--address", "127.0.0.1:0", "--database", url, *pki.args(BINDING_SERVICE)),
    ):
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert said in result.stderr
        assert "secret" not in result.stderr


def test_the_migration_line_at_start_names_the_database_it_uses_but_not_its_password(databases, caplog):
    url = make_url(databases.url("binding"))
    if url.get_backend_name() == "postgresql":  # the test server trusts every local user
        url = url.update_query_dict({"password": "secret"}).set(password="secret")
    caplog.set_level(logging.INFO, logger="services.common.database")
    migrate("binding", url.render_as_string(hide_password=False))
    [line] = [record.getMessage() for record in caplog.records if record.name == "services.common.database"]
    assert line.startswith(f"migrating binding database {url.drivername.split('+')[0]}")
    assert url.database in line
    assert "secret" not in line


def test_settlements_from_before_one_step_was_recorded_are_told_apart_by_their_times(databases):
    """0007 fills in one_step for old rows: a Settle was captured in the instant it was created."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert, select

    from services.payment.adapters import orm

    url = databases.url("payment")
    migrate("payment", url)
    downgrade("payment", url, "0006")
    created = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    s = orm.settlements
    common = {
        "patient_id_number": "p", "institution_code": "H", "institution_admdvs": "320100",
        "institution_settlement_id": "", "use_category": "OUTPATIENT", "self_pay_fen": 100,
        "chronic_disease": False, "use_own_account": False, "refuse_cash_part": False, "credential_type": "CARD",
        "credential_holder": "p", "cash_pay_fen": 0, "captured_fen": 100, "refunded_fen": 0,
        "policy_version": "v", "create_time": created,
    }  # fmt: skip
    engine = create_engine(normalise_url(url))
    with engine.begin() as connection:
        for settlement_id, state, captured in [
            ("settled", "CAPTURED", created),
            ("captured-later", "CAPTURED", created + timedelta(seconds=3)),
            ("held", "AUTHORIZED", None),
            ("settled-then-refunded", "REFUNDED", created),
        ]:
            values = {**common, "settlement_id": settlement_id, "request_id": settlement_id, "state": state}
            connection.execute(insert(s).values(**values, capture_time=captured))  # no one_step before 0007
    engine.dispose()
    migrate("payment", url)
    engine = create_engine(normalise_url(url))
    with engine.connect() as connection:
        found = dict(connection.execute(select(s.c.settlement_id, s.c.one_step)).all())
    engine.dispose()
    assert found == {"settled": True, "captured-later": False, "held": False, "settled-then-refunded": True}


def _fresh_database(backend, tmp_path, cluster, service) -> str:
    """An empty database that no migration has touched yet."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/{service}-fresh.db"
    require_postgres(cluster)
    name = f"gongji_test_{cluster.run_id}_{service}_fresh"
    admin = create_engine(cluster.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(cluster.admin_url).set(database=name).render_as_string(hide_password=False)
    cluster.created[f"{service}_fresh"] = url  # dropped with the run's other databases
    return url


@pytest.mark.parametrize("service", ["binding", "payment", "gateway"])
def test_replicas_that_start_at_once_on_a_fresh_database_all_migrate_it_without_error(
    service, backend, tmp_path, postgres_cluster
):
    """Every replica migrates at start: the runs take turns, so none fails on a table another made."""
    url = _fresh_database(backend, tmp_path, postgres_cluster, service)
    command = [sys.executable, "-m", "services.cli", "migrate", service, "--database", url]
    replicas = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(replica.communicate(timeout=120), replica.returncode) for replica in replicas]
    for (_, stderr), returncode in results:
        assert returncode == 0, stderr
    engine = create_engine(normalise_url(url))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, METADATA[service]) == []
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    engine.dispose()


def test_gongji_migrate_to_a_revision_it_does_not_have_names_the_ones_it_has(tmp_path):
    result = gongji("migrate", "binding", "--database", f"sqlite:///{tmp_path}/b.db", "--revision", "0099")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no revision '0099' in this version's binding migrations: give head or one of 0001, 0002" in result.stderr
    assert "a newer gongji migrated" not in result.stderr  # nothing did: the database is new


def test_gongji_migrate_to_an_earlier_revision_than_the_database_has_fails_and_leaves_it_as_it_was(tmp_path):
    url = f"sqlite:///{tmp_path}/b.db"
    assert gongji("migrate", "binding", "--database", url, "--revision", "0001").stdout.strip() == (
        "binding database is at revision 0001"
    )
    upgraded = gongji("migrate", "binding", "--database", url)
    assert upgraded.stdout.strip() == "binding database is at revision head (0002)"
    result = gongji("migrate", "binding", "--database", url, "--revision", "0001")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "is at revision 0002, past 0001: gongji migrate only moves a database forward" in result.stderr
    assert "at revision 0001" not in result.stdout  # it used to say so, exit 0, and change nothing
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0002"
    engine.dispose()


@pytest.mark.parametrize(("migrated", "then"), [("binding", "gateway"), ("binding", "payment"), ("gateway", "binding")])
def test_a_database_another_service_migrated_is_refused_not_taken_as_migrated(migrated, then, databases):
    """Every service numbers its revisions 0001, 0002, ...: the gateway on the binding service's
    database once read its 0002 as its own head and started without a table of its own."""
    url = databases.url(migrated)
    migrate(migrated, url)
    with pytest.raises(DatabaseSettingError, match=f"the database holds the {migrated} service's tables"):
        migrate(then, url)
    engine = create_engine(normalise_url(url))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, METADATA[migrated]) == []  # left as it was
    engine.dispose()
