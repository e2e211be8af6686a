"""The payment flows of the service layer with the binding service replaced by a fake port.

Settling a bill and transferring to a wallet ask the binding service first (who may pay, the
region's limits, whether two people are bound). Here a fake BindingDirectory answers, so each
test says exactly what the binding service said, and the flow runs on a real database
(SQLite and PostgreSQL) in its real unit of work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from typing import Any

import pytest

from gongji.payment.v1 import payment_service_pb2 as papi
from services.common.database import create_database_engine, migrate
from services.common.interceptors import RpcFailure
from services.common.runner import UseCaseRunner
from services.payment.adapters.node_repository import ParticipantTransaction
from services.payment.entrypoints import converters as convert
from services.payment.routing import RoutingTable
from services.payment.service_layer import accounts, coordination, suspensions, wallets
from services.payment.service_layer.binding_directory import (
    AskEveryTime,
    BoundPair,
    PayerQuery,
    PayerReads,
    WalletLimits,
)
from services.payment.service_layer.coordination import RemoteCapacity
from services.payment.service_layer.coordinator import RECOVERY_PAGE, Coordinator
from services.payment.service_layer.node_routing import NodeRouting
from services.payment.service_layer.settlements import Payers
from services.payment.service_layer.settling import Settling
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from services.payment.service_layer.wallet_transfers import TransferAsked, WalletTransfers
from shared.errors import DomainError, Reason
from shared.ledger import AccountKind, Purpose, personal_account
from shared.payers import PayerGrant
from shared.policy import UseCategory
from shared.regions import PROVINCES
from shared.relationships import Relationship
from shared.settlements import Bill, CredentialType
from tests.helpers import make_id_number, request_id

NANJING = "320100"
MOTHER, FATHER, CHILD = (make_id_number("320102", birth) for birth in ("19700101", "19690101", "20150101"))


def grant(grantor: str, priority: int) -> PayerGrant:
    return PayerGrant(
        binding_id=f"binding-{grantor[-4:]}", grantor_id_number=grantor, grantor_admdvs=NANJING,
        relationship=Relationship.PARENT, priority=priority, share_all=True, yearly_cap_fen=0,
        annual_share_ratio_percent=0, per_use_limit_fen=0, earmark_shared_amount=False,
        min_grantor_balance_fen=0, policy_version="320100@2024-07-01T00:00:00+08:00",
    )  # fmt: skip


@dataclass
class FakeBindingDirectory:
    """What the binding service would answer, set by each test; `down` makes every call fail."""

    grants: tuple[PayerGrant, ...] = ()
    bound: dict[tuple[str, str], BoundPair] = field(default_factory=dict)
    limits: WalletLimits = field(default_factory=lambda: WalletLimits(3, 200_000))
    threshold: int = 3
    down: bool = False
    asked: list[str] = field(default_factory=list)
    # Settlement attempts to be told, at their last step, that payers changed meanwhile.
    changes_during: int = 0
    # Grants after a change (what a fresh answer holds).
    grants_after_change: tuple[PayerGrant, ...] | None = None

    @asynccontextmanager
    async def settlement_reads(self) -> AsyncIterator[PayerReads]:
        if not self.changes_during:
            yield AskEveryTime(self)
            return
        self.changes_during -= 1
        yield _ChangedMeanwhile(self)

    def _answer(self, what: str) -> None:
        self.asked.append(what)
        if self.down:
            raise DomainError(Reason.BINDING_SERVICE_UNAVAILABLE, "the fake binding service is down")

    async def payers(self, query: PayerQuery) -> Payers | DomainError:
        self._answer("payers")
        return Payers(grants=self.grants)

    async def binding(self, binding_id: str) -> BoundPair | None:
        self._answer("binding")
        return next((pair for pair in self.bound.values() if pair.binding_id == binding_id), None)

    async def active_binding_between(self, grantor_id_number: str, beneficiary_id_number: str) -> BoundPair:
        self._answer("active_binding_between")
        pair = self.bound.get((grantor_id_number, beneficiary_id_number))
        if pair is None:
            raise DomainError(Reason.BINDING_NOT_ACTIVE, "no active binding", field="beneficiary_id_number")
        return pair

    async def impersonation_threshold(self, admdvs: str) -> int:
        self.asked.append("impersonation_threshold")
        return self.threshold

    async def wallet_limits(self, admdvs: str) -> WalletLimits:
        self._answer("wallet_limits")
        return self.limits


class NoOtherNodes:
    """A single node never calls another; any call is a bug in the flow."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a single node called another node: {name}")


class _ChangedMeanwhile:
    """One attempt during which the binding service announced a change: its payers are old."""

    def __init__(self, directory: FakeBindingDirectory) -> None:
        self._directory = directory

    async def payers(self, query: PayerQuery) -> Payers | DomainError:
        answer = await self._directory.payers(query)
        if self._directory.grants_after_change is not None:
            self._directory.grants = self._directory.grants_after_change
        return answer

    def still_current(self) -> bool:
        return False


class CountingVerifier:
    def __init__(self) -> None:
        self.asked = 0
        self.failing = False  # its service is down: it raises, as a verifier must not

    def verify(self, method: str, token: str, id_number: str) -> bool:
        self.asked += 1
        if self.failing:
            raise ConnectionError("the verification service refused the connection")
        return token == "confirmed"


@dataclass
class Flows:
    runner: UseCaseRunner[PaymentUnitOfWork]
    directory: FakeBindingDirectory
    settling: Settling
    transfers: WalletTransfers
    verifier: CountingVerifier
    clock: Any

    def ready_to_transfer(self) -> None:
        """The mother has 20,000 fen, is bound to the child and the child's wallet is activated."""
        self.credit(MOTHER, 20_000)
        self.directory.bound[(MOTHER, CHILD)] = BoundPair("binding-1", MOTHER, CHILD, True, NANJING, NANJING)
        with self.runner.unit_of_work() as uow:
            wallets.activate_wallet(uow, CHILD, NANJING, self.clock.now())
            uow.commit()

    def credit(self, who: str, amount_fen: int) -> None:
        def run(uow: PaymentUnitOfWork) -> None:
            accounts.credit_account(
                uow, who, AccountKind.PERSONAL_ACCOUNT, amount_fen, Purpose.MONTHLY_CONTRIBUTION, NANJING,
                "contribution", self.clock.now(), request_id(),
            )  # fmt: skip
            uow.commit()

        with self.runner.unit_of_work() as uow:
            run(uow)

    def settle(self, bill: Bill, key: str | None = None) -> papi.SettleResponse:
        key = key or request_id()
        request = papi.SettleRequest(request_id=key)
        return asyncio.run(
            self.settling.settle(
                "/test/Settle", request, key, bill, None, True, papi.SettleResponse,
                lambda settlement: papi.SettleResponse(settlement=convert.settlement_to_proto(settlement)),
            )
        )  # fmt: skip

    def transfer(
        self, amount_fen: int, token: str = "confirmed", key: str | None = None
    ) -> papi.TransferToWalletResponse:
        key = key or request_id()
        asked = TransferAsked(MOTHER, CHILD, amount_fen, "QR_PASSWORD", token)
        request = papi.TransferToWalletRequest(request_id=key, amount_fen=amount_fen)
        return asyncio.run(
            self.transfers.transfer(
                "/test/TransferToWallet", request, key, asked,
                papi.TransferToWalletResponse,
                lambda row: papi.TransferToWalletResponse(transfer=convert.transfer_to_proto(row)),
                lambda answer: "",
            )
        )  # fmt: skip


@pytest.fixture
def flows(databases, clock) -> Iterator[Flows]:
    url = databases.url("payment")
    migrate("payment", url)
    engine = create_database_engine(url, pool_size=4)
    runner = UseCaseRunner(partial(PaymentUnitOfWork, engine, set()), clock, "payment.gongji", 4)
    coordinator = Coordinator(runner, RoutingTable.single(), NoOtherNodes(), clock)  # type: ignore[arg-type]
    directory, verifier = FakeBindingDirectory(), CountingVerifier()
    routing = NodeRouting(runner, coordinator)
    try:
        yield Flows(
            runner, directory, Settling(runner, clock, directory, coordinator, timedelta(minutes=15)),
            WalletTransfers(runner, clock, directory, routing, coordinator, verifier), verifier, clock,
        )  # fmt: skip
    finally:
        runner.close()
        engine.dispose()


class RefusingPeer:
    """The payment node of Shanghai (31), refusing every hold with a refusal that is not transient."""

    def __init__(self) -> None:
        self.prepares = 0

    async def prepare(self, *args: Any, **kwargs: Any) -> tuple[list[Any], bool]:
        self.prepares += 1
        raise DomainError(Reason.PEER_CLAIM_REJECTED, "the fake peer refuses to hold")

    async def abort(self, *args: Any) -> None:
        return None


@pytest.fixture
def refusing_peer(flows: Flows) -> Iterator[tuple[Flows, RefusingPeer]]:
    """The flows on a node of every province but 31, whose node refuses every hold."""
    nodes = {"here": {"address": "", "provinces": sorted(PROVINCES - {"31"})}, "shanghai": {"address": "",
             "provinces": ["31"]}}  # fmt: skip
    peer = RefusingPeer()
    coordinator = Coordinator(
        flows.runner,
        RoutingTable.from_dict({"nodes": nodes}, "here"),
        peer,
        flows.clock,  # type: ignore[arg-type]
    )
    settling = Settling(flows.runner, flows.clock, flows.directory, coordinator, timedelta(minutes=15))
    yield replace(flows, settling=settling), peer


def refusal_reason(call: Any) -> str:
    """The reason a flow refused with: raised as it happened, or stored under the key."""
    try:
        call()
    except DomainError as error:
        return error.reason.value
    except RpcFailure as failure:
        return failure.reason
    raise AssertionError("the flow did not refuse")


def bill(self_pay_fen: int, holder: str = CHILD, number: str = "") -> Bill:
    return Bill(
        institution_code="H320100-001", institution_admdvs=NANJING, patient_id_number=CHILD,
        credential_type=CredentialType.QR, credential_holder=holder, use_category=UseCategory.OUTPATIENT,
        self_pay_fen=self_pay_fen, institution_settlement_id=number,
    )  # fmt: skip


def legs(answer: papi.SettleResponse) -> list[tuple[str, int]]:
    return [(leg.payer_id_number, leg.amount_fen) for leg in answer.settlement.legs]


def test_a_bill_draws_on_the_grantors_the_binding_service_names_in_their_order(flows):
    flows.credit(MOTHER, 20_000)
    flows.credit(FATHER, 50_000)
    flows.directory.grants = (grant(MOTHER, 1), grant(FATHER, 2))
    answer = flows.settle(bill(50_000))
    assert legs(answer) == [(MOTHER, 20_000), (FATHER, 30_000)]
    assert answer.settlement.cash_pay_fen == 0


def test_a_settlement_whose_payers_changed_meanwhile_does_not_commit_and_runs_again_with_fresh_payers(flows):
    flows.credit(MOTHER, 20_000)
    flows.credit(FATHER, 50_000)
    flows.directory.grants = (grant(MOTHER, 1), grant(FATHER, 2))
    flows.directory.grants_after_change = (grant(FATHER, 1),)  # the mother's binding ended meanwhile
    flows.directory.changes_during = 1
    key = request_id()
    answer = flows.settle(bill(10_000), key)
    assert legs(answer) == [(FATHER, 10_000)]
    assert flows.directory.asked == ["payers", "payers"]
    assert flows.settle(bill(10_000), key) == answer  # one settlement under the key, the second attempt's


def test_a_settlement_whose_payers_keep_changing_is_refused_busy_and_moves_nothing(flows):
    flows.credit(MOTHER, 20_000)
    flows.directory.grants = (grant(MOTHER, 1),)
    flows.directory.changes_during = 3
    key = request_id()
    assert refusal_reason(lambda: flows.settle(bill(10_000), key)) == "SERVER_BUSY"
    flows.directory.changes_during = 0
    assert legs(flows.settle(bill(10_000), key)) == [(MOTHER, 10_000)]  # not stored: the retry runs


def test_a_hold_another_node_refused_is_the_answer_to_every_retry_and_that_node_is_not_asked_again(refusing_peer):
    flows, peer = refusing_peer
    flows.credit(MOTHER, 20_000)
    flows.directory.grants = (grant(MOTHER, 1), replace(grant(FATHER, 2), grantor_admdvs="310100"))
    key = request_id()
    assert refusal_reason(lambda: flows.settle(bill(30_000), key)) == "PEER_CLAIM_REJECTED"
    assert refusal_reason(lambda: flows.settle(bill(30_000), key)) == "PEER_CLAIM_REJECTED(replayed)"
    assert peer.prepares == 1
    with flows.runner.unit_of_work() as uow:
        assert accounts.get_account(uow, MOTHER, AccountKind.PERSONAL_ACCOUNT).balance_fen == 20_000


class OvercapturingPeer:
    """The payment node of Shanghai (31), capturing the whole bill from its grantor when asked to
    capture at once, whatever ceiling it was given; holding within the ceilings otherwise."""

    def __init__(self) -> None:
        self.captured: list[str] = []
        self.refunded: list[str] = []
        self.committed: dict[str, dict[int, int]] = {}

    @staticmethod
    def _legs(bill: Bill, legs: list[dict[str, Any]], whole: bool) -> list[RemoteCapacity]:
        return [
            RemoteCapacity(leg["binding_id"], leg["payer_id_number"], bill.self_pay_fen if whole else leg["amount_fen"],
                           1_000_000, "310100")
            for leg in legs
        ]  # fmt: skip

    async def prepare(
        self, peer: Any, transaction_id: str, province: str, bill: Bill, legs: list[dict[str, Any]], *args: Any,
        up_to: bool = False, capture_at_most: int | None = None,
    ) -> tuple[list[RemoteCapacity], bool]:  # fmt: skip
        if capture_at_most is None:
            return self._legs(bill, legs, whole=False), False
        self.captured.append(transaction_id)
        return self._legs(bill, legs, whole=True), True

    async def abort(self, peer: Any, transaction_id: str, province: str) -> None:
        if transaction_id in self.captured:
            raise DomainError(Reason.ALREADY_CAPTURED, f"transaction {transaction_id} was already committed here")

    async def refund(self, peer: Any, transaction_id: str) -> None:
        self.refunded.append(transaction_id)

    async def commit(self, peer: Any, transaction_id: str, captures: dict[int, int]) -> None:
        self.committed[transaction_id] = captures


def test_a_capture_at_once_the_settlement_cannot_take_is_refunded_and_the_bill_is_held_and_committed_instead(flows):
    """The last payer's node captured more than the order lets the settlement take from it: each
    such capture is refunded there, and the last try holds, then commits what the bill takes."""
    nodes = {"here": {"address": "", "provinces": sorted(PROVINCES - {"31"})}, "shanghai": {"address": "",
             "provinces": ["31"]}}  # fmt: skip
    peer = OvercapturingPeer()
    coordinator = Coordinator(flows.runner, RoutingTable.from_dict({"nodes": nodes}, "here"), peer, flows.clock)  # type: ignore[arg-type]
    settling = Settling(flows.runner, flows.clock, flows.directory, coordinator, timedelta(minutes=15))
    flows = replace(flows, settling=settling)
    flows.credit(MOTHER, 20_000)
    flows.directory.grants = (grant(MOTHER, 1), replace(grant(FATHER, 2), grantor_admdvs="310100"))

    answer = flows.settle(bill(30_000))

    assert legs(answer) == [(MOTHER, 20_000), (FATHER, 10_000)]
    assert answer.settlement.cash_pay_fen == 0
    assert peer.captured and peer.refunded == peer.captured, "every capture the settlement did not take went back"
    assert list(peer.committed) == [answer.settlement.settlement_id]
    assert list(peer.committed[answer.settlement.settlement_id].values()) == [10_000]


def test_a_bill_with_no_grantor_named_is_paid_in_cash(flows):
    flows.credit(MOTHER, 20_000)
    answer = flows.settle(bill(5_000))
    assert legs(answer) == []
    assert answer.settlement.cash_pay_fen == 5_000


def test_a_retry_is_answered_while_the_binding_service_is_down_and_a_new_bill_is_unavailable(flows):
    flows.credit(MOTHER, 20_000)
    flows.directory.grants = (grant(MOTHER, 1),)
    key = request_id()
    first = flows.settle(bill(8_000), key)
    flows.directory.down = True
    assert flows.settle(bill(8_000), key) == first
    assert refusal_reason(lambda: flows.settle(bill(8_000))) == "BINDING_SERVICE_UNAVAILABLE"


def test_someone_elses_credential_is_refused_and_the_regions_threshold_suspends_the_holder(flows):
    """The threshold is the region's, from the binding service: at 1, one use suspends."""
    flows.directory.threshold = 1
    assert refusal_reason(lambda: flows.settle(bill(1_000, holder=MOTHER))) == "IMPERSONATION"
    assert "impersonation_threshold" in flows.directory.asked
    own_bill = replace(bill(1_000, holder=MOTHER), patient_id_number=MOTHER)
    assert refusal_reason(lambda: flows.settle(own_bill)) == "SETTLEMENT_SUSPENDED"


@pytest.mark.parametrize("with_accounts", [True, False], ids=["with accounts here", "with none here"])
def test_a_suspended_card_holder_is_refused_whether_or_not_the_node_keeps_accounts_of_the_bills_payers(
    flows, with_accounts: bool
):
    """The suspension is read with the accounts a settlement locks; with no account to lock, alone."""
    if with_accounts:
        flows.credit(MOTHER, 20_000)
        flows.directory.grants = (grant(MOTHER, 1),)

    def by_operator(change: Any) -> None:
        with flows.runner.unit_of_work() as uow:
            change(uow, CHILD, "checked", "op-1", flows.clock.now())
            uow.commit()

    by_operator(suspensions.suspend)
    assert refusal_reason(lambda: flows.settle(bill(5_000))) == "SETTLEMENT_SUSPENDED"
    by_operator(suspensions.lift)
    answer = flows.settle(bill(5_000))
    assert legs(answer) == ([(MOTHER, 5_000)] if with_accounts else [])


def test_a_transfer_between_people_the_binding_service_does_not_bind_is_refused_before_verification(flows):
    flows.credit(MOTHER, 20_000)
    assert refusal_reason(lambda: flows.transfer(1_000)) == "BINDING_NOT_ACTIVE"
    assert flows.verifier.asked == 0


def test_a_transfer_the_binding_service_refused_is_refused_again_under_its_key_once_the_pair_is_bound(flows):
    """The refusal is stored like the transaction's own; the retry asks no one again."""
    flows.credit(MOTHER, 20_000)
    with flows.runner.unit_of_work() as uow:
        wallets.activate_wallet(uow, CHILD, NANJING, flows.clock.now())
        uow.commit()
    key = request_id()
    assert refusal_reason(lambda: flows.transfer(1_000, key=key)) == "BINDING_NOT_ACTIVE"
    flows.directory.bound[(MOTHER, CHILD)] = BoundPair("binding-1", MOTHER, CHILD, True, NANJING, NANJING)
    flows.directory.asked.clear()
    assert refusal_reason(lambda: flows.transfer(1_000, key=key)) == "BINDING_NOT_ACTIVE(replayed)"
    assert refusal_reason(lambda: flows.transfer(2_000, key=key)) == "IDEMPOTENCY_KEY_REUSED"
    assert (flows.directory.asked, flows.verifier.asked) == ([], 0)
    assert flows.transfer(1_000).transfer.amount_fen == 1_000  # a new key is judged afresh


def test_a_transfer_unavailable_while_the_binding_service_is_down_runs_when_retried_under_its_key(flows):
    flows.ready_to_transfer()
    key = request_id()
    flows.directory.down = True
    assert refusal_reason(lambda: flows.transfer(1_000, key=key)) == "BINDING_SERVICE_UNAVAILABLE"
    flows.directory.down = False
    assert flows.transfer(1_000, key=key).transfer.amount_fen == 1_000


def test_a_transfer_whose_verifier_fails_is_unavailable_moves_nothing_and_runs_when_retried_under_its_key(flows):
    """A verifier must answer False for a proof it does not accept; one that raises (its service is
    failing) is not a refusal of the grantor and not an internal error: UNAVAILABLE, nothing stored."""
    flows.ready_to_transfer()
    key = request_id()
    flows.verifier.failing = True
    assert refusal_reason(lambda: flows.transfer(1_000, key=key)) == "VERIFIER_UNAVAILABLE"
    with flows.runner.unit_of_work() as uow:
        assert accounts.get_account(uow, MOTHER, AccountKind.PERSONAL_ACCOUNT).balance_fen == 20_000
    flows.verifier.failing = False
    assert flows.transfer(1_000, key=key).transfer.amount_fen == 1_000


def test_a_transfer_keeps_to_the_daily_limit_the_binding_service_gives(flows):
    flows.ready_to_transfer()
    flows.directory.limits = WalletLimits(transfers_per_day=1, max_fen=None)
    assert flows.transfer(1_000).transfer.amount_fen == 1_000
    assert refusal_reason(lambda: flows.transfer(1_000)) == "TRANSFER_LIMIT_REACHED"


class RecordingPeer:
    """The payment node of Shanghai (31), answering every phase it is sent and noting it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def abort(self, peer: Any, transaction_id: str, coordinator_province: str) -> None:
        self.sent.append(("abort", transaction_id))

    async def commit(self, peer: Any, transaction_id: str, captures: dict[int, int]) -> None:
        self.sent.append(("commit", transaction_id))

    async def refund(self, peer: Any, transaction_id: str) -> None:
        self.sent.append(("refund", transaction_id))


def test_sagas_stamped_before_the_clock_was_stepped_back_are_finished_at_the_next_recovery_pass(flows):
    """NTP steps the node's clock back two hours. An undo decided before the step, not yet sent to
    the other node, is sent at the next pass; an intent a crash left before the step is aborted
    there, not two hours later: the other node's holds must not wait for the clock to catch up."""
    nodes = {"here": {"address": "", "provinces": sorted(PROVINCES - {"31"})}, "shanghai": {"address": "",
             "provinces": ["31"]}}  # fmt: skip
    peer = RecordingPeer()
    lease = timedelta(seconds=30)
    routing = RoutingTable.from_dict({"nodes": nodes}, "here")
    coordinator = Coordinator(flows.runner, routing, peer, flows.clock, lease=lease)  # type: ignore[arg-type]
    held = {"31": [{"leg_no": 1, "payer_id_number": FATHER, "binding_id": "binding-f", "amount_fen": 500,
                    "captured_fen": 500}]}  # fmt: skip
    now = flows.clock.now()

    def sagas(uow: PaymentUnitOfWork) -> None:
        for saga in ("orphaned", "undone"):
            coordination.begin(uow, saga, "SETTLEMENT", held, "32", CHILD, "H320100-001", now + timedelta(days=1), now)
        assert uow.node_transactions.leave_preparing("undone", coordination.REFUNDING, held, now)

    asyncio.run(flows.runner.transact(sagas))
    flows.clock.advance(timedelta(hours=-2))
    asyncio.run(coordinator.recover_once())
    assert sorted(peer.sent) == [("abort", "orphaned"), ("commit", "undone"), ("refund", "undone")]
    states = asyncio.run(
        flows.runner.query(lambda uow: [uow.node_transactions.get(s).state for s in ("orphaned", "undone")])
    )
    assert states == [coordination.ABORTED, coordination.REFUNDED]


def test_a_saga_whose_province_no_node_keeps_any_more_does_not_stop_recovery_of_the_others(flows):
    """The routing file was changed and no node keeps Anhui (34) any more: its saga cannot be
    finished until it is routed again, but an undo to Shanghai's node is still delivered."""
    nodes = {"here": {"address": "", "provinces": sorted(PROVINCES - {"31", "34"})}, "shanghai": {"address": "",
             "provinces": ["31"]}}  # fmt: skip
    peer = RecordingPeer()
    routing = RoutingTable.from_dict({"nodes": nodes}, "here")
    coordinator = Coordinator(flows.runner, routing, peer, flows.clock)  # type: ignore[arg-type]
    leg = {"leg_no": 1, "payer_id_number": FATHER, "binding_id": "binding-f", "amount_fen": 500, "captured_fen": 500}
    now = flows.clock.now()

    def sagas(uow: PaymentUnitOfWork) -> None:
        for saga, province in (("unroutable", "34"), ("undone", "31")):
            coordination.begin(uow, saga, "SETTLEMENT", {province: [leg]}, "32", CHILD, "H320100-001",
                               now + timedelta(days=1), now)  # fmt: skip
            assert uow.node_transactions.leave_preparing(saga, coordination.REFUNDING, {province: [leg]}, now)

    asyncio.run(flows.runner.transact(sagas))
    flows.clock.advance(timedelta(seconds=1))
    asyncio.run(coordinator.recover_once())
    assert sorted(peer.sent) == [("commit", "undone"), ("refund", "undone")]
    states = asyncio.run(
        flows.runner.query(lambda uow: [uow.node_transactions.get(s).state for s in ("unroutable", "undone")])
    )
    assert states == [coordination.REFUNDING, coordination.REFUNDED]


class PartlyDownPeer:
    """The payment node of Shanghai (31), which does not answer for any transaction whose id
    begins "stuck" and answers every other one (a phase applied, an abort, a credit refused for a
    wallet not activated there and then declined)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def _answer(self, step: str, transaction_id: str) -> None:
        if transaction_id.startswith("stuck"):
            raise DomainError(Reason.PROVINCE_UNREACHABLE, "payment node shanghai did not answer")
        self.sent.append((step, transaction_id))

    async def commit(self, peer: Any, transaction_id: str, captures: dict[int, int]) -> None:
        self._answer("commit", transaction_id)

    async def refund(self, peer: Any, transaction_id: str) -> None:
        self._answer("refund", transaction_id)

    async def credit_wallet(self, peer: Any, transfer_id: str, *_: Any) -> None:
        self._answer("credit", transfer_id)
        raise DomainError(Reason.WALLET_NOT_ACTIVATED, "the beneficiary's wallet is not activated")

    async def decline_wallet_credit(self, peer: Any, transfer_id: str, *_: Any) -> bool:
        self._answer("decline", transfer_id)
        return False

    async def outcome(self, peer: Any, transaction_id: str, province: str) -> coordination.Outcome:
        self._answer("outcome", transaction_id)
        return coordination.Outcome("ABORTED")


def partly_down(flows: Flows) -> tuple[Coordinator, PartlyDownPeer]:
    nodes = {"here": {"address": "", "provinces": sorted(PROVINCES - {"31"})}, "shanghai": {"address": "",
             "provinces": ["31"]}}  # fmt: skip
    peer = PartlyDownPeer()
    routing = RoutingTable.from_dict({"nodes": nodes}, "here")
    return Coordinator(flows.runner, routing, peer, flows.clock), peer  # type: ignore[arg-type]


def passes_until(coordinator: Coordinator, done: Callable[[], bool], most: int = 3) -> int:
    """How many recovery passes it took until `done`; fails after `most`."""
    for number in range(1, most + 1):
        asyncio.run(coordinator.recover_once())
        if done():
            return number
    raise AssertionError(f"not done after {most} recovery passes")


def test_more_than_a_page_of_sagas_a_node_does_not_answer_for_do_not_keep_a_later_one_from_being_finished(flows):
    """An undo was decided just before NTP stepped the clock back an hour, so its saga is stamped
    ahead of the clock; a page and more of older undos wait for a node that does not answer for
    them, each retried at every pass. The later undo is still sent within a few passes."""
    coordinator, peer = partly_down(flows)
    leg = {"leg_no": 1, "payer_id_number": FATHER, "binding_id": "binding-f", "amount_fen": 500, "captured_fen": 500}

    def undos(uow: PaymentUnitOfWork, sagas: list[str]) -> None:
        now = flows.clock.now()
        for saga in sagas:
            coordination.begin(uow, saga, "SETTLEMENT", {"31": [leg]}, "32", CHILD, "H320100-001",
                               now + timedelta(days=1), now)  # fmt: skip
            assert uow.node_transactions.leave_preparing(saga, coordination.REFUNDING, {"31": [leg]}, now)

    asyncio.run(flows.runner.transact(lambda uow: undos(uow, [f"stuck-{n:03}" for n in range(RECOVERY_PAGE + 1)])))
    flows.clock.advance(timedelta(hours=1))
    asyncio.run(flows.runner.transact(lambda uow: undos(uow, ["undone"])))
    flows.clock.advance(timedelta(hours=-1, seconds=1))

    def undone() -> bool:
        saga = asyncio.run(flows.runner.query(lambda uow: uow.node_transactions.get("undone")))
        return saga.state == coordination.REFUNDED

    passes_until(coordinator, undone)
    assert ("refund", "undone") in peer.sent


def test_more_than_a_page_of_transfers_due_back_from_a_node_that_does_not_answer_do_not_keep_a_later_one_back(flows):
    """A page and more of transfers to Shanghai are due back to their senders, but Shanghai's node
    does not answer for them; a later transfer, also due, is declined there and refunded."""
    coordinator, peer = partly_down(flows)
    flows.credit(MOTHER, 10_000)
    made = flows.clock.now()

    def transfers(uow: PaymentUnitOfWork) -> None:
        for n in range(RECOVERY_PAGE + 1):
            uow.transfers.add(
                {"transfer_id": f"stuck-{n:03}", "request_id": f"stuck-{n:03}",
                 "grantor_id_number": make_id_number("320102", "19600101", n), "beneficiary_id_number": CHILD,
                 "binding_id": "binding-s", "amount_fen": 100, "state": "PENDING", "source_province": "32",
                 "target_province": "31", "verification_method": "QR_PASSWORD", "create_time": made,
                 "complete_time": None}
            )  # fmt: skip

    def later(uow: PaymentUnitOfWork) -> None:
        order = wallets.TransferOrder("later", "later", MOTHER, CHILD, "31", "binding-m", 1_000, "QR_PASSWORD",
                                      None, None)  # fmt: skip
        wallets.transfer_to_wallet(uow, order, False, flows.clock.now())

    asyncio.run(flows.runner.transact(transfers))
    flows.clock.advance(timedelta(minutes=1))
    asyncio.run(flows.runner.transact(later))
    flows.clock.advance(timedelta(days=2))

    def refunded() -> bool:
        return asyncio.run(flows.runner.query(lambda uow: uow.transfers.get("later").state)) == "REFUNDED"

    passes_until(coordinator, refunded)
    assert ("decline", "later") in peer.sent
    assert asyncio.run(flows.runner.query(lambda uow: uow.accounts.get(personal_account(MOTHER)).balance_fen)) == 10_000


def test_more_than_a_page_of_expired_holds_whose_coordinator_does_not_answer_do_not_keep_a_later_one_held(flows):
    """Holds here for Shanghai's settlements expired; Shanghai's node does not answer for a page
    and more of them, and says a later one was aborted: that one is released."""
    coordinator, peer = partly_down(flows)
    now = flows.clock.now()

    def holds(uow: PaymentUnitOfWork) -> None:
        for n, transaction_id in enumerate([f"stuck-{n:03}" for n in range(RECOVERY_PAGE + 1)] + ["released"]):
            uow.participants.add(
                ParticipantTransaction(transaction_id, "31", "PREPARED", CHILD, "H310100-001",
                                       now + timedelta(seconds=n), []),
                now,
            )  # fmt: skip

    asyncio.run(flows.runner.transact(holds))
    flows.clock.advance(timedelta(hours=1))

    def released() -> bool:
        return asyncio.run(flows.runner.query(lambda uow: uow.participants.get("released").state)) == "ABORTED"

    passes_until(coordinator, released)
    assert ("outcome", "released") in peer.sent
