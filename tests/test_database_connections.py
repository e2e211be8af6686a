"""The services' pools lend connections without pinging them first (a round trip on
every transaction); a connection that died with its server is noticed on use and the
work runs again on a fresh one. These tests cut every pooled connection from the
PostgreSQL side and check that the very next requests succeed at the first try and
move money once."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from gongji.payment.v1 import payment_pb2 as ppb
from tests.conftest import BACKENDS, POSTGRES_ADMIN_URL
from tests.payment_helpers import PaymentFamily

pytestmark = [
    pytest.mark.skipif("postgresql" not in BACKENDS, reason="GONGJI_TEST_DATABASES leaves PostgreSQL out"),
    pytest.mark.parametrize("backend", ["postgresql"], indirect=True),
]


def cut_connections(*database_urls: str) -> int:
    """Terminates every server process serving these databases, as a restart would; returns how many."""
    names = [make_url(url).database for url in database_urls]
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        cut = connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = ANY(:names) AND pid <> pg_backend_pid()"
            ),
            {"names": names},
        ).scalar_one()
    engine.dispose()
    return int(cut)


def test_a_settlement_right_after_every_pooled_connection_died_succeeds_at_the_first_try(payment_service):
    family = PaymentFamily(payment_service)
    family.settle(1_000)  # the pools now hold open connections

    assert cut_connections(payment_service.database_url, payment_service.binding.database_url) > 0

    settled = family.settle(3_000)

    assert settled.state == ppb.SETTLEMENT_STATE_CAPTURED
    assert [leg.amount_fen for leg in settled.legs] == [3_000]
    assert family.account(family.mother).balance_fen == 100_000 - 1_000 - 3_000
    assert family.ledger().balanced


def test_who_may_pay_is_answered_right_after_the_binding_services_connections_died(payment_service):
    family = PaymentFamily(payment_service)
    ask = bapi.ResolvePayersRequest(
        beneficiary_id_number=family.child.id_number, use_category=common.USE_CATEGORY_OUTPATIENT
    )
    before = family.binding.ResolvePayers(ask)

    assert cut_connections(payment_service.binding.database_url) > 0

    after = family.binding.ResolvePayers(ask)
    assert [grant.binding_id for grant in after.grants] == [grant.binding_id for grant in before.grants]
    assert len(after.grants) == 2
