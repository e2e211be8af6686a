"""Prometheus metrics: real servers with --metrics-address, a known sequence of calls, and
the scrape read back over HTTP, counted exactly."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.common.client import ClientMetrics, peer_channel
from services.common.hosting import BackgroundServer
from services.common.metrics import ClientRpcMetrics
from services.common.security.natural_callers import ActingStub
from services.payment.app import PaymentSettings, start_payment_server
from services.payment.verification import StandInVerifier
from tests.conftest import PaymentHarness, TwoNodes, _free_port, payment_security, running_binding, running_two_nodes
from tests.helpers import request_id
from tests.payment_helpers import PaymentFamily, refused
from tests.test_cross_province import CrossFamily, at_noon, transfer

PAYMENT = "gongji.payment.v1.PaymentService"
BINDING = "gongji.binding.v1.BindingService"
NODE = "gongji.node.v1.PaymentNodeService"
ID_NUMBER = re.compile(r"\d{17}[\dX]")
LEDGER_AUDIT_INTERVAL = 0.2
KINDS = ("settle", "capture", "refund", "reversal")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


@dataclass
class Metered:
    payment: PaymentHarness
    binding_port: int
    payment_port: int


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the endpoint, keyed by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum over every sample of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@contextlib.contextmanager
def _metered(databases, clock, pki, roles, ledger_audit_interval: float = 0) -> Iterator[Metered]:
    binding_port, payment_port = _free_port(), _free_port()
    with running_binding(databases, clock, pki, roles, metrics_address=f"127.0.0.1:{binding_port}") as binding:
        payment_settings = PaymentSettings(
            database_url=databases.url("payment"),
            security=payment_security(pki),
            verifier=StandInVerifier(),
            address="127.0.0.1:0",
            binding_address=binding.server.address,
            clock=clock,
            # No sweeper: the test moves the clock past a hold's expiry and counts it still there.
            sweep_interval=0,
            ledger_audit_interval=ledger_audit_interval,
            metrics_address=f"127.0.0.1:{payment_port}",
        )
        with BackgroundServer(lambda: start_payment_server(payment_settings)) as payment_server:
            payment_stub = ActingStub(payment_grpc.PaymentServiceStub, payment_server.address, pki, roles)
            try:
                yield Metered(
                    PaymentHarness(payment_server, payment_stub, binding, payment_settings.database_url),
                    binding_port,
                    payment_port,
                )
            finally:
                payment_stub.close()


@pytest.fixture
def metered(databases, clock, pki, roles) -> Iterator[Metered]:
    # No ledger audit: its background reads would only add noise to the exact counts.
    with _metered(databases, clock, pki, roles) as metered:
        yield metered


@pytest.fixture
def audited(databases, clock, pki, roles) -> Iterator[Metered]:
    with _metered(databases, clock, pki, roles, ledger_audit_interval=LEDGER_AUDIT_INTERVAL) as metered:
        yield metered


def test_rpc_and_domain_metrics_count_exactly_the_calls_made(metered: Metered):
    family = PaymentFamily(metered.payment)
    first = family.settle(30_000)
    own = family.settle(5_000, patient=family.mother, use_own_account=True)
    undone = family.settle(20_000)
    family.refund(undone.settlement_id)
    held = family.authorize(12_000)
    refusal = refused(family.payment.GetSettlement, papi.GetSettlementRequest(settlement_id=str(uuid.uuid4())))

    samples = scrape(metered.payment_port)

    rpc = {"grpc_type": "unary", "grpc_service": PAYMENT}
    assert value(samples, "grpc_server_started_total", **rpc, grpc_method="Settle") == 3
    assert value(samples, "grpc_server_handled_total", **rpc, grpc_method="Settle", grpc_code="OK") == 3
    assert value(samples, "grpc_server_handled_total", **rpc, grpc_method="CreditAccount", grpc_code="OK") == 2
    assert value(samples, "grpc_server_handled_total", **rpc, grpc_method="RefundSettlement", grpc_code="OK") == 1
    assert value(samples, "grpc_server_handling_seconds_count", **rpc, grpc_method="Settle") == 3
    assert total(samples, "grpc_server_handled_total", grpc_method="GetSettlement", grpc_code="NOT_FOUND") == 1
    assert value(samples, "gongji_refusals_total", service=PAYMENT, method="GetSettlement", reason=refusal.reason) == 1
    assert total(samples, "gongji_refusals_total") == 1

    assert value(samples, "gongji_settlements", state="CAPTURED") == 2
    assert value(samples, "gongji_settlements", state="REFUNDED") == 1
    assert value(samples, "gongji_settlements", state="AUTHORIZED") == 1
    assert value(samples, "gongji_holds_outstanding") == 1
    assert value(samples, "gongji_holds_outstanding_fen") == (
        held.own_account_pay_fen + held.mutual_aid_pay_fen + held.wallet_pay_fen
    )
    assert value(samples, "gongji_holds_expired") == 0
    settled = [first, own, undone]
    for source, field in [
        ("OWN_ACCOUNT", "own_account_pay_fen"),
        ("MUTUAL_AID", "mutual_aid_pay_fen"),
        ("WALLET", "wallet_pay_fen"),
        ("CASH", "cash_pay_fen"),
    ]:
        money = {"name": "gongji_settlement_money_fen", "source": source}
        assert value(samples, **money, kind="settle") == sum(getattr(s, field) for s in settled), source
        assert value(samples, **money, kind="capture") == 0, source  # the authorization is not captured
        assert value(samples, **money, kind="refund") == getattr(undone, field), source
        assert value(samples, **money, kind="reversal") == 0, source
    assert first.mutual_aid_pay_fen > 0 and own.own_account_pay_fen > 0
    assert total(samples, "gongji_settlement_money_fen", kind="settle") == 55_000
    operations = {kind: value(samples, "gongji_settlement_operations", kind=kind) for kind in KINDS}
    assert operations == {"settle": 3, "capture": 0, "refund": 1, "reversal": 0}
    assert total(samples, "gongji_cross_node_sagas") == 0
    assert value(samples, "gongji_cross_node_saga_oldest_unfinished_age_seconds") == 0
    assert value(samples, "gongji_wallet_transfers_pending") == 0
    # Two credits, three settles, a refund and an authorization, each kept under its request id.
    assert value(samples, "gongji_idempotency_keys") == 7
    assert value(samples, "gongji_database_scrape_success") == 1
    assert value(samples, "gongji_database_pool_checked_out_connections") == 0
    assert value(samples, "gongji_database_pool_size_connections") > 0

    # Every Settle and AuthorizeSettlement asks the binding service once for the payers (no
    # impersonation here, and every payer is on this node, so no other node is asked).
    resolutions = 3 + 1
    peer = {"grpc_type": "unary", "grpc_service": BINDING, "grpc_method": "ResolvePayers"}
    assert value(samples, "grpc_client_started_total", **peer) == resolutions
    assert value(samples, "grpc_client_handled_total", **peer, grpc_code="OK") == resolutions
    assert value(samples, "grpc_client_handling_seconds_count", **peer) == resolutions
    # Each credit of a person the node keeps no account of yet asks the registry twice: where the
    # person is insured, for the operator's scope, and whether the person has a personal account
    # to open (and where); both credits here open an account.
    registry = {"grpc_type": "unary", "grpc_service": BINDING, "grpc_method": "GetInsuredPerson"}
    assert value(samples, "grpc_client_handled_total", **registry, grpc_code="OK") == 2 * 2
    # The readiness probe's health Checks of the binding service count too, as often as it runs.
    assert total(samples, "grpc_client_handled_total", grpc_service=BINDING) == resolutions + 2 * 2
    assert total(samples, "grpc_client_started_total", grpc_service=BINDING) == resolutions + 2 * 2
    assert total(samples, "grpc_client_started_total", grpc_service="gongji.node.v1.PaymentNodeService") == 0

    binding = scrape(metered.binding_port)
    rpc = {"grpc_type": "unary", "grpc_service": BINDING}
    assert value(binding, "grpc_server_handled_total", **rpc, grpc_method="ResolvePayers", grpc_code="OK") == (
        resolutions
    )
    # The binding service calls no other service, so it counts no client calls.
    assert total(binding, "grpc_client_started_total") == 0
    assert value(binding, "grpc_server_handled_total", **rpc, grpc_method="UpsertInsuredPerson", grpc_code="OK") == 3
    assert value(binding, "grpc_server_handled_total", **rpc, grpc_method="CreateBinding", grpc_code="OK") == 2
    assert value(binding, "gongji_bindings", state="ACTIVE") == 2
    assert total(binding, "gongji_bindings") == 2
    assert total(binding, "gongji_refusals_total") == 0


@pytest.fixture
def metered_nodes(databases, binding_service, tmp_path) -> Iterator[tuple[TwoNodes, dict[str, int]]]:
    """two_nodes, each payment node serving metrics on a port of its own (no sweeper: nothing moves
    behind the test's back)."""
    ports = {"east": _free_port(), "west": _free_port()}
    settings = lambda name: {"metrics_address": f"127.0.0.1:{ports[name]}"}  # noqa: E731
    with running_two_nodes(databases, binding_service, tmp_path, settings) as nodes:
        yield nodes, ports


def test_cross_node_sagas_captures_reversals_and_pending_transfers_are_counted_exactly(metered_nodes):
    nodes, ports = metered_nodes
    family = CrossFamily(nodes)  # mother (10,000 fen) on node east, father (100,000 fen) on node west
    east = nodes.east.stub
    at_noon(family)
    # An authorization across both nodes, captured in part: 10,000 from the mother, 20,000 from the father.
    held = east.AuthorizeSettlement(
        papi.AuthorizeSettlementRequest(request_id=request_id(), bill=family.bill(50_000))
    ).settlement
    captured = east.CaptureSettlement(
        papi.CaptureSettlementRequest(request_id=request_id(), settlement_id=held.settlement_id, amount_fen=30_000)
    ).settlement
    # A one-step Settle, all from the father on node west, then reversed (冲正) by its request id.
    settle = papi.SettleRequest(request_id=request_id(), bill=family.bill(20_000))
    settled = east.Settle(settle).settlement
    reversal = east.ReverseRequest(
        papi.ReverseRequestRequest(request_id=request_id(), original_request_id=settle.request_id)
    )
    # The child's wallet on node east is not activated, so the father's transfer stays pending on west.
    pending = transfer(family, 30_000).transfer
    assert (captured.captured_fen, captured.cash_pay_fen) == (30_000, 0)
    assert (settled.mutual_aid_pay_fen, settled.cash_pay_fen) == (20_000, 0)
    assert reversal.settlement.state == ppb.SETTLEMENT_STATE_REVERSED
    assert pending.state == ppb.TRANSFER_STATE_PENDING
    # West's transfer saga waits for the wallet; seven minutes on, it is the oldest unfinished one.
    family.clock.advance(timedelta(minutes=7))

    east_samples, west_samples = scrape(ports["east"]), scrape(ports["west"])

    operations = {kind: value(east_samples, "gongji_settlement_operations", kind=kind) for kind in KINDS}
    assert operations == {"settle": 1, "capture": 1, "refund": 0, "reversal": 1}
    money = {
        (source, kind): value(east_samples, "gongji_settlement_money_fen", source=source, kind=kind)
        for source in ("OWN_ACCOUNT", "MUTUAL_AID", "WALLET", "CASH")
        for kind in KINDS
    }
    # Mutual aid only: the capture took 10,000 from the mother here and 20,000 from the father on
    # west; the Settle took 20,000 from the father, and its reversal gave them back.
    assert {key: fen for key, fen in money.items() if fen} == {
        ("MUTUAL_AID", "capture"): 30_000, ("MUTUAL_AID", "settle"): 20_000, ("MUTUAL_AID", "reversal"): 20_000,
    }  # fmt: skip
    assert value(east_samples, "gongji_settlements", state="CAPTURED") == 1
    assert value(east_samples, "gongji_settlements", state="REVERSED") == 1
    assert total(east_samples, "gongji_settlements") == 2
    assert value(east_samples, "gongji_holds_outstanding") == 0
    # East coordinated both settlements: the captured one committed, the reversed one refunded on west.
    assert value(east_samples, "gongji_cross_node_sagas", state="COMMITTED") == 1
    assert value(east_samples, "gongji_cross_node_sagas", state="REFUNDED") == 1
    assert total(east_samples, "gongji_cross_node_sagas") == 2
    assert value(east_samples, "gongji_cross_node_saga_oldest_unfinished_age_seconds") == 0
    assert value(east_samples, "gongji_wallet_transfers_pending") == 0

    # West coordinates the transfer: its saga is stuck committing (east refuses the credit until
    # the wallet is activated), and the money waits as a pending transfer.
    assert value(west_samples, "gongji_cross_node_sagas", state="COMMITTING") == 1
    assert total(west_samples, "gongji_cross_node_sagas") == 1
    assert value(west_samples, "gongji_cross_node_saga_oldest_unfinished_age_seconds") == 7 * 60
    assert value(west_samples, "gongji_wallet_transfers_pending") == 1
    assert value(west_samples, "gongji_wallet_transfers_pending_fen") == 30_000
    assert total(west_samples, "gongji_settlement_money_fen") == 0
    assert total(west_samples, "gongji_settlement_operations") == 0

    # The node-to-node calls, counted by the caller as a client and by the callee as a server:
    # two sagas prepared; the authorisation asked capacity first (its holds stay until the
    # capture, so each is exactly its leg) and was committed; the settlement, whose last payer is
    # on west, was captured there in its one round, without asking; the reversal refunded it,
    # sending its commit first (a no-op where it arrived: an undo may be decided before a commit).
    node = {"grpc_type": "unary", "grpc_service": NODE}
    for method, calls in [("GetPayerCapacity", 1), ("PrepareLegs", 2), ("CommitLegs", 2), ("RefundLegs", 1)]:
        assert value(east_samples, "grpc_client_handled_total", **node, grpc_method=method, grpc_code="OK") == calls
        assert value(west_samples, "grpc_server_handled_total", **node, grpc_method=method, grpc_code="OK") == calls
        assert total(west_samples, "grpc_client_started_total", grpc_method=method) == 0, method
    # West offered the transfer to east once; east refused it for the wallet not being activated.
    refused_credit = {**node, "grpc_method": "CreditWallet", "grpc_code": "FAILED_PRECONDITION"}
    assert value(west_samples, "grpc_client_handled_total", **refused_credit) == 1
    assert value(east_samples, "grpc_server_handled_total", **refused_credit) == 1
    assert value(
        east_samples, "gongji_refusals_total", service=NODE, method="CreditWallet", reason="WALLET_NOT_ACTIVATED"
    ) == 1  # fmt: skip
    rpc = {"grpc_type": "unary", "grpc_service": PAYMENT, "grpc_code": "OK"}
    for method in ("AuthorizeSettlement", "CaptureSettlement", "Settle", "ReverseRequest"):
        assert value(east_samples, "grpc_server_handled_total", **rpc, grpc_method=method) == 1, method
    assert value(west_samples, "grpc_server_handled_total", **rpc, grpc_method="TransferToWallet") == 1


def test_a_hold_past_its_expiry_counts_as_expired_until_the_sweeper_releases_it(metered: Metered):
    family = PaymentFamily(metered.payment)
    family.authorize(8_000)
    family.clock.advance(timedelta(hours=1))

    samples = scrape(metered.payment_port)

    assert value(samples, "gongji_holds_outstanding") == 1
    assert value(samples, "gongji_holds_expired") == 1


def test_no_label_value_in_the_scrape_looks_like_an_id_number_a_uuid_or_a_principal(metered: Metered):
    family = PaymentFamily(metered.payment)
    settled = family.settle(10_000)
    family.refund(settled.settlement_id)
    refused(family.payment.GetSettlement, papi.GetSettlementRequest(settlement_id=str(uuid.uuid4())))

    for port in (metered.payment_port, metered.binding_port):
        for name, labels in scrape(port):
            for label, text in labels:
                assert not ID_NUMBER.search(text), (name, label, text)
                assert not UUID.search(text), (name, label, text)
                assert "spiffe://" not in text, (name, label, text)


def test_the_metrics_endpoint_closes_when_the_server_stops(databases, clock, pki, roles):
    port = _free_port()
    with running_binding(databases, clock, pki, roles, metrics_address=f"127.0.0.1:{port}"):
        assert scrape(port)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def _until(port: int, check: Callable[[dict], bool], what: str, deadline_seconds: float = 20.0) -> dict:
    """Scrapes until `check` holds; fails naming `what` (with the last ledger samples) after the deadline."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        samples = scrape(port)
        if check(samples):
            return samples
        if time.monotonic() > deadline:
            ledger = {name: v for (name, _), v in samples.items() if name.startswith("gongji_ledger")}
            pytest.fail(f"{what} within {deadline_seconds}s; last: {ledger}")
        time.sleep(LEDGER_AUDIT_INTERVAL / 2)


def test_the_ledger_gauges_are_absent_until_the_first_audit(metered: Metered):
    # The metered fixture runs no audit (interval 0): nothing is known, so nothing is claimed.
    samples = scrape(metered.payment_port)
    assert not [name for name, _ in samples if name.startswith("gongji_ledger")]


def test_the_periodic_ledger_audit_exports_balanced_then_the_problems_of_a_tampered_row(audited: Metered):
    from sqlalchemy import create_engine, text

    from services.common.database import normalise_url

    balanced = ("gongji_ledger_balanced", frozenset())
    samples = _until(audited.payment_port, lambda s: s.get(balanced) == 1, "a fresh ledger was not audited balanced")
    assert value(samples, "gongji_ledger_problems") == 0
    assert 0 <= value(samples, "gongji_ledger_audit_age_seconds") < 10

    family = PaymentFamily(audited.payment)
    family.settle(10_000)
    # As a faulty manual repair would: one posting off by a fen, behind the service's back.
    engine = create_engine(normalise_url(audited.payment.database_url))
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE postings SET amount_fen = amount_fen + 1 WHERE posting_id = "
                 "(SELECT MAX(posting_id) FROM postings)")
        )  # fmt: skip
    engine.dispose()
    samples = _until(
        audited.payment_port,
        lambda s: s.get(balanced) == 0 and value(s, "gongji_ledger_problems") > 0,
        "the tampered ledger was not audited unbalanced",
    )
    assert value(samples, "gongji_ledger_audit_age_seconds") < 10


def test_a_failed_ledger_audit_logs_one_warning_without_its_message_and_keeps_the_previous_result(caplog):
    import asyncio
    import logging

    from services.common.clock import SystemClock
    from services.payment.app import _audit_ledger_forever
    from services.payment.entrypoints.metrics import LedgerAuditGauges
    from services.payment.service_layer.inquiries import LedgerAudit

    id_number = "110101199003077777"

    class FlakyRunner:
        """Audits balanced once, then fails with personal data in the message, then hangs."""

        def __init__(self) -> None:
            self.calls = 0
            self.hanging = asyncio.Event()

        async def query(self, fn: Callable) -> LedgerAudit:
            self.calls += 1
            if self.calls == 1:
                return LedgerAudit(balanced=True, entry_count=3, account_count=2, problems=())
            if self.calls == 2:
                raise RuntimeError(f"no such account PERSONAL_ACCOUNT:{id_number}")
            self.hanging.set()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    gauges = LedgerAuditGauges()

    async def run() -> None:
        runner = FlakyRunner()
        task = asyncio.create_task(_audit_ledger_forever(runner, SystemClock(), gauges, 0.01))  # type: ignore[arg-type]
        async with asyncio.timeout(10):
            await runner.hanging.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.WARNING, logger="services.payment.app"):
        asyncio.run(run())
    warnings = [r for r in caplog.records if r.name == "services.payment.app" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "RuntimeError" in warnings[0].getMessage()
    assert id_number not in caplog.text and warnings[0].exc_info is None
    families = {family.name: family.samples[0].value for family in gauges.collect()}
    assert families["gongji_ledger_balanced"] == 1
    assert families["gongji_ledger_problems"] == 0
    assert families["gongji_ledger_audit_age_seconds"] >= 0


def test_a_peer_call_that_never_reaches_its_peer_is_counted_with_the_code_grpc_gives_it():
    registry = CollectorRegistry()
    metrics = ClientRpcMetrics(registry)
    method = f"/{BINDING}/ResolvePayers"

    async def call(wait_for_ready: bool) -> grpc.StatusCode:
        # Nothing listens on a port just freed: refused at once, or (waiting for the peer) out of time.
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{_free_port()}", interceptors=[ClientMetrics(metrics)]
        ) as channel:
            rpc = channel.unary_unary(method, request_serializer=bytes, response_deserializer=bytes)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await rpc(b"", timeout=0.3, wait_for_ready=wait_for_ready)
            return raised.value.code()

    assert asyncio.run(call(wait_for_ready=False)) == grpc.StatusCode.UNAVAILABLE
    assert asyncio.run(call(wait_for_ready=True)) == grpc.StatusCode.DEADLINE_EXCEEDED

    labels = {"grpc_type": "unary", "grpc_service": BINDING, "grpc_method": "ResolvePayers"}
    assert registry.get_sample_value("grpc_client_started_total", labels) == 2
    for code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        assert registry.get_sample_value("grpc_client_handled_total", {**labels, "grpc_code": code}) == 1, code
    assert registry.get_sample_value("grpc_client_handling_seconds_count", labels) == 2


def test_a_peer_channel_counts_its_calls_only_when_the_server_has_metrics():
    class Recording:
        """Stands in for Transport: keeps the interceptors a peer channel is built with."""

        def __init__(self) -> None:
            self.interceptors: list[Any] = []

        def aio_channel(self, address: str, options: list[tuple[str, Any]], interceptors: list[Any]) -> Any:
            self.interceptors = interceptors
            return None

    def counting(metrics: ClientRpcMetrics | None) -> list[Any]:
        transport = Recording()
        peer_channel("127.0.0.1:1", BINDING, transport, metrics=metrics)  # type: ignore[arg-type]
        return [i for i in transport.interceptors if isinstance(i, ClientMetrics)]

    assert counting(None) == []
    assert len(counting(ClientRpcMetrics(CollectorRegistry()))) == 1
