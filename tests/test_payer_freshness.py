"""A payment node keeps who may pay, and the binding service keeps it current.

The promise: once a call that removes or narrows a payer has answered OK, no settlement sent
after that answer draws on the old state, though the node answers most bills from what it
keeps. The tests race real settlements against EndBinding over gRPC, on SQLite and PostgreSQL,
and read the binding service's own RPC counts to show the kept answers were used.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.payment.v1 import payment_service_pb2 as papi
from services.binding.entrypoints.payer_watch import LEASE_MARGIN_SECONDS, PayerChangeHub
from services.binding.service_layer import use_cases
from services.common.clock import ManualClock
from services.common.security.transport import Transport
from services.common.server import ServerSecurity
from services.payment.adapters.payer_cache import PayerWatch
from services.payment.service_layer import settling
from services.payment.service_layer.binding_directory import PayerReads
from shared.principals import BINDING_SERVICE, payment_node
from tests.conftest import (
    KNOWN_NODES,
    BindingHarness,
    PaymentHarness,
    _free_port,
    running_binding,
    running_payment,
    running_two_nodes,
)
from tests.helpers import metric_total, refusal_of, request_id
from tests.payment_helpers import PaymentFamily
from tests.tcp_proxy import TcpProxy
from tests.test_cross_province import CrossFamily

LEASE = 1.0


@dataclass
class Cached:
    payment: PaymentHarness
    binding: BindingHarness
    binding_metrics: str

    def binding_calls(self, method: str, counter: str = "grpc_server_handled_total") -> int:
        return binding_calls(self.binding_metrics, method, counter)

    def wait_until_watched(self) -> None:
        wait_until_watched(self.binding_metrics, 1)


def binding_calls(metrics: str, method: str, counter: str = "grpc_server_handled_total") -> int:
    """How often the binding service answered (or, with grpc_server_started_total, began) `method`,
    by its own metrics at `metrics`."""
    return int(metric_total(metrics, counter, grpc_method=method))


def wait_until_watched(metrics: str, nodes: int) -> None:
    deadline = time.monotonic() + 20
    while binding_calls(metrics, "WatchPayerChanges", "grpc_server_started_total") < nodes:
        assert time.monotonic() < deadline, "a payment node never opened its payer watch"
        time.sleep(0.05)
    time.sleep(0.3)  # their first keepalives answered: the leases hold


@contextmanager
def running_cached(
    databases,
    clock,
    pki,
    roles,
    proxied: bool = False,
    payment_settings: dict[str, Any] | None = None,
    **binding_settings: Any,
) -> Iterator[tuple[Cached, TcpProxy | None]]:
    """A binding service that announces payer changes, and a payment node that keeps payers
    (with `payment_settings` added); with `proxied`, the node reaches the binding service through
    a TCP proxy a test can cut."""
    metrics = f"127.0.0.1:{_free_port()}"
    with running_binding(
        databases, clock, pki, roles, payer_watch_lease=LEASE, metrics_address=metrics, **binding_settings
    ) as binding:
        proxy = TcpProxy(binding.server.address) if proxied else None
        try:
            address = proxy.address if proxy else None
            with running_payment(databases, binding, address, payer_cache=True, **(payment_settings or {})) as payment:
                cached = Cached(payment, binding, metrics)
                cached.wait_until_watched()
                yield cached, proxy
        finally:
            if proxy is not None:
                proxy.close()


@pytest.fixture
def cached(databases, clock, pki, roles) -> Iterator[Cached]:
    with running_cached(databases, clock, pki, roles) as (harness, _):
        yield harness


def _end(family: PaymentFamily, binding_id: str, grantor_id_number: str) -> None:
    family.binding.EndBinding(
        bapi.EndBindingRequest(
            request_id=request_id(), binding_id=binding_id, actor=bpb.ACTOR_GRANTOR, actor_id=grantor_id_number
        )
    )


@dataclass
class Sent:
    sent_at: float
    binding_ids: frozenset[str]


@dataclass
class Round:
    mother_binding: str
    father_binding: str
    ended_at: float
    sent: list[Sent]
    resolved: int  # ResolvePayers the binding service answered during the round


def _race(cached: Cached, seed: int, callers: int = 4) -> Round:
    """Callers settle the child's bills while the mother's binding is ended at a random moment."""
    family = PaymentFamily(cached.payment)
    mother_binding = family.mother_binding.binding_id
    family.settle(100)  # the node now keeps the child's payers
    resolved_before = cached.binding_calls("ResolvePayers")
    sent: list[Sent] = []
    stop = threading.Event()
    ended_at: list[float] = []

    def settle_until_stopped() -> None:
        stub = cached.payment.fresh_stub()
        try:
            while not stop.is_set():
                started = time.monotonic()
                answer = stub.Settle(_settle_request(family, 100))
                sent.append(Sent(started, frozenset(leg.binding_id for leg in answer.settlement.legs)))
        finally:
            stub.close()

    def end_at_a_random_moment() -> None:
        time.sleep(random.Random(seed).uniform(0.2, 0.6))
        _end(family, mother_binding, family.mother.id_number)
        ended_at.append(time.monotonic())  # EndBinding has answered OK
        time.sleep(0.5)
        stop.set()

    threads = [threading.Thread(target=settle_until_stopped) for _ in range(callers)]
    threads.append(threading.Thread(target=end_at_a_random_moment))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert ended_at, "EndBinding never answered"
    assert family.ledger().balanced
    resolved = cached.binding_calls("ResolvePayers") - resolved_before
    return Round(mother_binding, family.father_binding.binding_id, ended_at[0], sent, resolved)


@pytest.fixture
def slow_to_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    """The node takes a while to apply each change, as a busy node far away would: without the
    binding service waiting for its acknowledgement, bills sent after the answer would find the
    old payers still kept."""
    apply_change = PayerWatch.apply_change

    async def slowly(self: PayerWatch) -> None:
        await asyncio.sleep(0.3)
        await apply_change(self)

    monkeypatch.setattr(PayerWatch, "apply_change", slowly)


@pytest.mark.usefixtures("slow_to_apply")
def test_no_settlement_sent_after_end_binding_answered_draws_on_the_ended_binding(cached: Cached) -> None:
    for seed in range(3):
        race = _race(cached, seed)
        before = [s for s in race.sent if s.sent_at < race.ended_at]
        after = [s for s in race.sent if s.sent_at > race.ended_at]
        assert any(race.mother_binding in s.binding_ids for s in before), "the race never drew on the binding"
        assert after, "no settlement was sent after EndBinding answered"
        assert all(s.binding_ids == {race.father_binding} for s in after)
        # Most bills were answered from what the node keeps: far fewer ResolvePayers than settlements.
        assert race.resolved < len(race.sent) / 2


@dataclass
class HeldWork:
    """A use case whose work waits, its change written but not committed, until `release` is set."""

    entered: threading.Event
    release: threading.Event


def hold_before_commit(monkeypatch: pytest.MonkeyPatch, use_case: str) -> HeldWork:
    """Makes `use_cases.<use_case>` wait after its writes, before the runner commits them."""
    held = HeldWork(threading.Event(), threading.Event())
    original = getattr(use_cases, use_case)

    def waiting(*args: Any, **kwargs: Any) -> Any:
        done = original(*args, **kwargs)
        held.entered.set()
        assert held.release.wait(30), f"the test never released {use_case}"
        return done

    monkeypatch.setattr(use_cases, use_case, waiting)
    return held


@pytest.fixture
def end_binding_held_before_commit(monkeypatch: pytest.MonkeyPatch) -> HeldWork:
    return hold_before_commit(monkeypatch, "end_binding")


def test_an_end_binding_the_caller_gave_up_on_is_announced_once_it_commits_not_before(
    end_binding_held_before_commit: HeldWork, cached: Cached
) -> None:
    """The caller's cancel does not stop the work on the service's thread, which may still commit.
    Announced at the cancel, the change would let the node keep the old payers again before the
    commit, and then nothing would announce the commit: the ended binding would pay on."""
    held = end_binding_held_before_commit
    family = PaymentFamily(cached.payment)
    mother_binding = family.mother_binding.binding_id
    assert mother_binding in {leg.binding_id for leg in family.settle(100).legs}  # the node keeps the payers
    request = bapi.EndBindingRequest(
        request_id=request_id(), binding_id=mother_binding, actor=bpb.ACTOR_GRANTOR, actor_id=family.mother.id_number
    )
    stub = family.binding.stub_as(family.binding.roles.principal_for("EndBinding", request))
    call = stub.EndBinding.future(request)
    assert held.entered.wait(20), "EndBinding never started its work"
    call.cancel()
    time.sleep(0.3)  # anything announced at the cancel has been applied by the node
    assert mother_binding in {leg.binding_id for leg in family.settle(100).legs}, "not yet committed"
    held.release.set()
    time.sleep(LEASE)  # the commit, its announcement and the node's acknowledgement
    after = family.settle(100)
    assert {leg.binding_id for leg in after.legs} == {family.father_binding.binding_id}
    assert family.binding.GetBinding(bapi.GetBindingRequest(binding_id=mother_binding)).binding.state == (
        bpb.BINDING_STATE_ENDED
    )


@dataclass
class HeldCommit:
    """A settlement whose work waits between its last payer check and its commit until `release`
    is set (once `armed`): the instant a caller's cancel must not let a payer change through."""

    armed: threading.Event
    entered: threading.Event
    release: threading.Event


@pytest.fixture
def settlement_held_before_commit(monkeypatch: pytest.MonkeyPatch) -> HeldCommit:
    held = HeldCommit(threading.Event(), threading.Event(), threading.Event())
    require_current = settling.require_current

    def waiting(reads: PayerReads) -> None:
        require_current(reads)
        if held.armed.is_set():
            held.entered.set()
            assert held.release.wait(30), "the test never released the settlement"

    monkeypatch.setattr(settling, "require_current", waiting)
    return held


def test_a_settlement_the_caller_gave_up_on_holds_back_a_payer_change_until_it_commits(
    settlement_held_before_commit: HeldCommit, cached: Cached
) -> None:
    """The caller's cancel does not stop the settlement on the node's thread, which checked its
    payers and may still commit. Were its read marker dropped at the cancel, the node would
    acknowledge an EndBinding at once, and the settlement would then commit on the ended binding
    after EndBinding answered OK."""
    held = settlement_held_before_commit
    family = PaymentFamily(cached.payment)
    mother_binding = family.mother_binding.binding_id
    assert mother_binding in {leg.binding_id for leg in family.settle(100).legs}  # the node keeps the payers
    request = _settle_request(family, 100)
    settle = family.payment.stub_as(family.payment.roles.principal_for("Settle", request)).Settle
    held.armed.set()
    call = settle.future(request)
    assert held.entered.wait(20), "the settlement never reached its commit"
    held.armed.clear()
    call.cancel()
    time.sleep(0.3)  # the cancel has reached the node
    end = bapi.EndBindingRequest(
        request_id=request_id(), binding_id=mother_binding, actor=bpb.ACTOR_GRANTOR, actor_id=family.mother.id_number
    )
    ending = family.binding.stub_as(family.binding.roles.principal_for("EndBinding", end)).EndBinding.future(end)
    time.sleep(0.5)
    answered_before_the_commit = ending.done()
    held.release.set()
    ending.result(timeout=20)
    settled = settle(request, timeout=20).settlement  # the retry reads what the cut-off call committed
    assert mother_binding in {leg.binding_id for leg in settled.legs}
    assert not answered_before_the_commit, "EndBinding answered OK before a settlement on the binding committed"
    assert {leg.binding_id for leg in family.settle(100).legs} == {family.father_binding.binding_id}


@pytest.fixture
def put_policy_held_before_commit(monkeypatch: pytest.MonkeyPatch) -> HeldWork:
    return hold_before_commit(monkeypatch, "put_policy")


@pytest.fixture
def cached_with_policy_book(databases, clock, pki, roles) -> Iterator[Cached]:
    """As `cached`, with the binding service keeping policies for five seconds, as it does by default."""
    with running_cached(databases, clock, pki, roles, policy_cache_seconds=5.0) as (harness, _):
        yield harness


def test_a_policy_the_caller_gave_up_on_applies_to_the_next_bill_once_it_commits(
    put_policy_held_before_commit: HeldWork, cached_with_policy_book: Cached
) -> None:
    """The caller's cancel does not stop the new version's commit on the service's thread. Its
    policy cache must be dropped once that commit is done, before the change is announced:
    dropped only when the call answered, it was never dropped, so the nodes asked again, got the
    old limits, and kept them until some later change."""
    held = put_policy_held_before_commit
    family = PaymentFamily(cached_with_policy_book.payment)
    assert sum(leg.amount_fen for leg in family.settle(500).legs) == 500  # the policies and payers are kept
    policy = family.binding.GetRegionPolicy(bapi.GetRegionPolicyRequest(admdvs=family.admdvs)).policy
    policy.admdvs = family.admdvs
    policy.ClearField("version")
    policy.effective_from.FromDatetime(family.clock.now() - timedelta(seconds=1))
    policy.per_use_limit_fen = 200
    put = bapi.PutRegionPolicyRequest(request_id=request_id(), policy=policy)
    call = family.binding.stub_as(family.binding.roles.principal_for("PutRegionPolicy", put)).PutRegionPolicy.future(
        put
    )
    assert held.entered.wait(20), "PutRegionPolicy never started its work"
    call.cancel()
    time.sleep(0.3)  # the cancel has reached the service
    held.release.set()
    time.sleep(LEASE)  # the commit, its announcement and the node's acknowledgement
    assert sum(leg.amount_fen for leg in family.settle(500).legs) == 200


def _settle_request(family: PaymentFamily, self_pay_fen: int) -> papi.SettleRequest:
    return papi.SettleRequest(request_id=request_id(), bill=family.bill(self_pay_fen))


def test_a_kept_answer_is_not_used_past_a_contact_change_falling_overdue(cached: Cached) -> None:
    family = PaymentFamily(cached.payment)
    family.binding.ReportLifeEvent(
        bapi.ReportLifeEventRequest(
            request_id=request_id(), id_number=family.mother.id_number, event_type=bapi.LIFE_EVENT_TYPE_CONTACT_CHANGED
        )
    )
    first = family.settle(100)
    assert {leg.binding_id for leg in first.legs} == {family.mother_binding.binding_id}
    family.clock.advance(timedelta(days=16))  # nothing is called: only the clock passes the 15 days
    later = family.settle(100)
    assert {leg.binding_id for leg in later.legs} == {family.father_binding.binding_id}
    assert [(p.binding_id, p.reason) for p in later.passed_over] == [
        (family.mother_binding.binding_id, "CONTACT_CHANGE_OVERDUE")
    ]


def test_a_lower_sharing_limit_applies_to_the_next_bill_at_once(cached: Cached) -> None:
    family = PaymentFamily(cached.payment)
    family.settle(100)
    family.binding.UpdateSharingLimit(
        bapi.UpdateSharingLimitRequest(
            request_id=request_id(), binding_id=family.mother_binding.binding_id, yearly_cap_fen=150
        )
    )
    settlement = family.settle(500)
    taken = {leg.binding_id: leg.amount_fen for leg in settlement.legs}
    assert taken[family.mother_binding.binding_id] == 50  # 100 of the new cap of 150 is already shared


def test_a_node_cut_off_from_the_binding_service_never_settles_on_what_it_kept_once_the_change_answered(
    databases, clock, pki, roles
) -> None:
    with running_cached(databases, clock, pki, roles, proxied=True) as (cached, proxy):
        assert proxy is not None
        family = PaymentFamily(cached.payment)
        family.settle(100)  # kept
        proxy.cut("drop")  # a partition: the node hears nothing, and nothing it sends arrives
        started = time.monotonic()
        _end(family, family.mother_binding.binding_id, family.mother.id_number)
        # The binding service cannot hear the node acknowledge, so it waited out the node's lease.
        assert time.monotonic() - started >= LEASE - 0.3
        try:
            during = family.settle(100)
        except grpc.RpcError as error:  # the node no longer trusts what it kept and cannot ask
            assert refusal_of(error).reason == "BINDING_SERVICE_UNAVAILABLE"
        else:
            assert {leg.binding_id for leg in during.legs} == {family.father_binding.binding_id}
        proxy.restore()
        after = family.settle(100)
        assert {leg.binding_id for leg in after.legs} == {family.father_binding.binding_id}


class _Behind:
    """The test clock as read by a node whose clock runs `by` behind the binding service's."""

    def __init__(self, clock: ManualClock, by: timedelta) -> None:
        self._clock = clock
        self._by = by

    def now(self) -> datetime:
        return self._clock.now() - self._by


@contextmanager
def family_on_a_node_behind(databases, clock, pki, roles, by: timedelta) -> Iterator[PaymentFamily]:
    """A family on a payment node that keeps payers and whose clock runs `by` behind the binding
    service's; its bindings are made at the binding service's now."""
    behind = {"clock": _Behind(clock, by)}
    with running_cached(databases, clock, pki, roles, payment_settings=behind) as (cached, _):
        yield PaymentFamily(cached.payment)


def test_a_node_whose_clock_runs_two_minutes_behind_draws_on_a_binding_made_a_moment_ago(
    databases, clock, pki, roles
) -> None:
    with family_on_a_node_behind(databases, clock, pki, roles, timedelta(minutes=2)) as family:
        settlement = family.settle(100)
        assert {leg.binding_id for leg in settlement.legs} == {family.mother_binding.binding_id}
        assert settlement.cash_pay_fen == 0


def test_a_node_far_behind_draws_on_a_new_binding_once_its_own_clock_is_within_minutes_of_its_making(
    databases, clock, pki, roles
) -> None:
    with family_on_a_node_behind(databases, clock, pki, roles, timedelta(minutes=10)) as family:
        # By the node's clock both bindings are ten minutes off: the bill is paid in cash, and
        # what the node keeps of that answer must end when its clock comes near their making.
        assert family.settle(100).cash_pay_fen == 100
        family.clock.advance(timedelta(minutes=6))  # nothing is called: only the clocks move
        later = family.settle(100)
        assert {leg.binding_id for leg in later.legs} == {family.mother_binding.binding_id}
        assert later.cash_pay_fen == 0


def test_a_node_told_to_keep_payers_asks_for_every_bill_where_the_binding_service_announces_nothing(
    databases, binding_service: BindingHarness
) -> None:
    with running_payment(databases, binding_service, payer_cache=True) as payment:
        family = PaymentFamily(payment)
        assert family.settle(100).legs[0].binding_id == family.mother_binding.binding_id
        _end(family, family.mother_binding.binding_id, family.mother.id_number)
        assert family.settle(100).legs[0].binding_id == family.father_binding.binding_id


def test_the_watch_is_refused_with_a_reason_where_the_binding_service_announces_nothing(
    binding_service: BindingHarness,
) -> None:
    channel = binding_service.pki.channel(binding_service.server.address, payment_node("local"))
    try:
        stream = binding_grpc.BindingServiceStub(channel).WatchPayerChanges(
            iter([bapi.WatchPayerChangesRequest(keepalive=1)]), timeout=10
        )
        with pytest.raises(grpc.RpcError) as refused:
            next(stream)
        refusal = refusal_of(refused.value)
        assert (refusal.code, refusal.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PAYER_WATCH_OFF")
    finally:
        channel.close()


@pytest.mark.usefixtures("slow_to_apply")
def test_a_cross_node_settlement_after_end_binding_answered_holds_nothing_through_the_ended_remote_binding(
    databases, clock, pki, roles, tmp_path
) -> None:
    metrics = f"127.0.0.1:{_free_port()}"
    with (
        running_binding(databases, clock, pki, roles, payer_watch_lease=LEASE, metrics_address=metrics) as binding,
        running_two_nodes(databases, binding, tmp_path, lambda name: {"payer_cache": True}) as nodes,
    ):
        wait_until_watched(metrics, 2)
        family = CrossFamily(nodes)
        first = nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000)))
        assert {leg.binding_id for leg in first.settlement.legs} == {
            family.mother_binding.binding_id, family.father_binding.binding_id,
        }  # fmt: skip
        binding.stub.EndBinding(
            bapi.EndBindingRequest(
                request_id=request_id(), binding_id=family.father_binding.binding_id, actor=bpb.ACTOR_GRANTOR,
                actor_id=family.father.id_number,
            )
        )  # fmt: skip
        later = nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(5_000)))
        assert family.father_binding.binding_id not in {leg.binding_id for leg in later.settlement.legs}
        for node in (nodes.east, nodes.west):
            assert node.stub.CheckLedger(papi.CheckLedgerRequest()).balanced


def test_on_plaintext_loopback_the_node_names_itself_on_the_payer_watch(databases, clock, pki, roles) -> None:
    metrics = f"127.0.0.1:{_free_port()}"
    plaintext = ServerSecurity(Transport.insecure(BINDING_SERVICE), nodes=KNOWN_NODES)
    with running_binding(
        databases, clock, pki, roles, payer_watch_lease=LEASE, metrics_address=metrics, security=plaintext
    ) as binding:
        node = ServerSecurity(Transport.insecure(payment_node("local")))
        with running_payment(databases, binding, payer_cache=True, security=node):
            wait_until_watched(metrics, 1)
            time.sleep(LEASE)  # keepalives came and went
            # Still open and never refused: the node named itself on the stream as on its single calls.
            assert binding_calls(metrics, "WatchPayerChanges", "grpc_server_started_total") == 1
            assert binding_calls(metrics, "WatchPayerChanges") == 0


# The binding service's side, alone --------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _node(hub: PayerChangeHub, acknowledge: bool, seen: list[int]) -> None:
    """A node that renews its lease once and then acknowledges (or not) what it is told."""
    inbox: asyncio.Queue[bapi.WatchPayerChangesRequest] = asyncio.Queue()
    inbox.put_nowait(bapi.WatchPayerChangesRequest(keepalive=1))

    async def requests() -> AsyncIterator[bapi.WatchPayerChangesRequest]:
        while True:
            yield await inbox.get()

    async for message in hub.watch(requests()):
        if message.revision and not message.keepalive:
            seen.append(message.revision)
            if acknowledge:
                inbox.put_nowait(bapi.WatchPayerChangesRequest(applied_revision=message.revision))


def test_a_change_answers_once_every_watching_node_has_acknowledged_it() -> None:
    async def scenario() -> tuple[float, list[int]]:
        hub = PayerChangeHub(lease_seconds=5.0)
        hub._answers_from = 0.0  # not just restarted
        seen: list[int] = []
        node = asyncio.create_task(_node(hub, acknowledge=True, seen=seen))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await hub.announce()
        took = time.monotonic() - started
        node.cancel()
        return took, seen

    took, seen = asyncio.run(scenario())
    assert seen == [1]
    assert took < 1.0


def test_a_silent_node_is_cut_off_and_the_change_answers_only_after_its_lease_ran_out() -> None:
    async def scenario() -> tuple[float, int]:
        hub = PayerChangeHub(lease_seconds=0.6)
        hub._answers_from = 0.0
        seen: list[int] = []
        node = asyncio.create_task(_node(hub, acknowledge=False, seen=seen))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await hub.announce()
        took = time.monotonic() - started
        watchers = hub.watchers
        node.cancel()
        return took, watchers

    took, watchers = asyncio.run(scenario())
    assert took >= 0.6 - 0.05 + LEASE_MARGIN_SECONDS - 0.1
    assert watchers == 0


def test_after_a_restart_changes_answer_only_once_a_predecessor_s_lease_has_passed() -> None:
    async def scenario() -> float:
        hub = PayerChangeHub(lease_seconds=0.4)
        started = time.monotonic()
        await hub.announce()
        return time.monotonic() - started

    assert asyncio.run(scenario()) >= 0.4
