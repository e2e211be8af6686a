"""`gongji populate`: a population loaded with COPY is one the real services accept: a
populated family settles with two legs, the ledger audit finds it balanced, the counts are
what was asked, a second load into non-empty tables is refused without a change, and
SQLite is refused with a message."""

from __future__ import annotations

import io
from dataclasses import dataclass

import psycopg
import pytest

from gongji.common.v1 import common_pb2 as common
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.cli import main
from services.common.hosting import BackgroundServer
from services.common.security.natural_callers import ActingStub
from services.payment.app import PaymentSettings, start_payment_server
from services.payment.verification import StandInVerifier
from services.population import PopulationError, populate
from services.population.copying import conninfo
from tests.conftest import payment_security, running_binding
from tests.helpers import request_id

PERSONS = 2_000
BINDING_TABLES = ("insured_persons", "bindings", "binding_events", "payer_orders")
PAYMENT_TABLES = ("accounts", "journal_entries", "postings", "settlements", "settlement_legs", "binding_usage")


@dataclass
class Populated:
    """Databases already emptied and populated: handed to running_binding in place of
    `databases`, whose url() would empty them again."""

    binding: str
    payment: str

    def url(self, service: str) -> str:
        return {"binding": self.binding, "payment": self.payment}[service]


def _counts(url: str, tables: tuple[str, ...]) -> dict[str, int]:
    with psycopg.connect(conninfo(url, "test")) as connection:
        return {t: connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}  # type: ignore[index]


def _family(url: str) -> tuple[str, str]:
    """A populated child with a payer order, and the child's region."""
    with psycopg.connect(conninfo(url, "test")) as connection:
        row = connection.execute(
            "SELECT o.beneficiary_id_number, p.admdvs FROM payer_orders o "
            "JOIN insured_persons p ON p.id_number = o.beneficiary_id_number ORDER BY 1 LIMIT 1"
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_a_populated_database_settles_and_balances(databases, clock, pki, roles):
    if databases.backend == "sqlite":
        pytest.skip("gongji populate loads PostgreSQL only (COPY); SQLite is refused, see the test below")
    populated = Populated(databases.url("binding"), databases.url("payment"))
    progress = io.StringIO()
    report = populate(
        populated.binding, populated.payment, PERSONS, seed=7, active_share=0.2, now=clock.now(),
        progress_stream=progress, families_per_batch=200,
    )  # fmt: skip
    families = PERSONS // 3
    assert "2,000/2,000 persons" in progress.getvalue() and "rows/s" in progress.getvalue()
    assert report.families == families and report.active_families > 0 and report.settlements > 0
    binding_counts = _counts(populated.binding, BINDING_TABLES)
    assert binding_counts == {
        "insured_persons": PERSONS, "bindings": 2 * families, "binding_events": 2 * families, "payer_orders": families,
    }  # fmt: skip
    payment_counts = _counts(populated.payment, PAYMENT_TABLES)
    employees = 2 * families + PERSONS % 3
    receivables = payment_counts["accounts"] - employees - 1
    assert 0 < receivables <= 31 * 8
    assert payment_counts["settlements"] == report.settlements
    assert payment_counts["settlement_legs"] == 2 * report.settlements
    assert {t: f["rows"] for t, f in report.tables.items()} == {**binding_counts, **payment_counts}
    assert set(report.sizes) == {"binding", "payment"}

    child, admdvs = _family(populated.binding)
    with running_binding(populated, clock, pki, roles) as binding:
        settings = PaymentSettings(
            database_url=populated.payment, security=payment_security(pki), verifier=StandInVerifier(),
            address="127.0.0.1:0", binding_address=binding.server.address, clock=clock,
        )  # fmt: skip
        with BackgroundServer(lambda: start_payment_server(settings)) as server:
            payment = ActingStub(payment_grpc.PaymentServiceStub, server.address, pki, roles)
            try:
                before = payment.CheckLedger(papi.CheckLedgerRequest())
                assert before.balanced, list(before.problems)[:5]
                assert before.entry_count == payment_counts["journal_entries"]
                assert before.account_count == payment_counts["accounts"]
                settled = payment.Settle(
                    papi.SettleRequest(
                        request_id=request_id(),
                        bill=ppb.Bill(
                            institution_code=f"H{admdvs}01", institution_admdvs=admdvs, patient_id_number=child,
                            credential=ppb.Credential(type=ppb.CREDENTIAL_TYPE_CARD, holder_id_number=child),
                            use_category=common.USE_CATEGORY_OUTPATIENT, self_pay_fen=1_001,
                        ),
                    )
                ).settlement  # fmt: skip
                assert settled.state == ppb.SETTLEMENT_STATE_CAPTURED
                assert [leg.amount_fen for leg in settled.legs] == [501, 500]
                assert settled.cash_pay_fen == 0
                after = payment.CheckLedger(papi.CheckLedgerRequest())
                assert after.balanced, list(after.problems)[:5]
                assert after.entry_count == before.entry_count + 1
            finally:
                payment.close()

    again = io.StringIO()
    with pytest.raises(PopulationError, match="not empty"):
        populate(populated.binding, populated.payment, 30, now=clock.now(), progress_stream=again)
    assert _counts(populated.binding, BINDING_TABLES) == binding_counts
    assert _counts(populated.payment, PAYMENT_TABLES)["settlements"] == payment_counts["settlements"] + 1


def test_sqlite_is_refused_with_a_message(tmp_path, capsys):
    sqlite = f"sqlite:///{tmp_path}/binding.db"
    with pytest.raises(PopulationError, match=r"not PostgreSQL.*refuses to populate SQLite"):
        populate(sqlite, "postgresql://nobody@127.0.0.1:1/none", 10)
    code = main(["populate", "--binding-database", sqlite, "--payment-database", sqlite, "--persons", "10"])
    assert code == 2
    assert "refuses to populate SQLite" in capsys.readouterr().err
    assert not (tmp_path / "binding.db").exists()
