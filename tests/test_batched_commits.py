"""Commits to one node decided while another is on its way go together (BatchCommitLegs): one
call and one transaction on that node, each commit still applied exactly as alone."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import bindparam, create_engine, select, text

from gongji.node.v1 import node_service_pb2 as node
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from services.payment.adapters.commit_batcher import BatchUnsupported, CommitBatcher
from services.payment.adapters.node_client import GrpcNodeClient
from services.payment.adapters.orm import accounts
from services.payment.routing import Node
from shared.errors import DomainError, Reason
from shared.ledger import personal_account
from shared.principals import payment_node
from tests.conftest import _free_port, running_two_nodes
from tests.helpers import refusal_of
from tests.test_cross_province import CrossFamily, race_bills
from tests.test_metrics import NODE, scrape, total, value
from tests.test_node_contract import held, prepare_request
from tests.test_payment_concurrency import TIMEOUT
from tests.test_trust_boundaries import held_by_mother, prepare

PEER = Node("west", "west:1", frozenset({"62"}))
WAITING_FOR_A_LOCK = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


def commit(transaction_id: str, amount: int) -> node.CommitLegsRequest:
    return node.CommitLegsRequest(transaction_id=transaction_id, captures=[node.NodeLeg(leg_no=1, amount_fen=amount)])


@pytest.fixture
def west(two_nodes):
    """Node west's node-to-node service, as node east calls it."""
    stub = two_nodes.west.node_stub("east")
    yield stub
    stub.close()


# The node service's side -------------------------------------------------------------------


def test_a_batch_captures_each_transaction_as_its_own_commit_would_and_a_repeat_applies_none_again(two_nodes, west):
    family = CrossFamily(two_nodes)
    west.PrepareLegs(prepare_request(family, "txn-b1", 30_000))
    west.PrepareLegs(prepare_request(family, "txn-b2", 20_000))
    assert held(family) == (100_000, 50_000)
    batch = node.BatchCommitLegsRequest(requests=[commit("txn-b2", 10_000), commit("txn-b1", 30_000)])
    assert [r.applied for r in west.BatchCommitLegs(batch).responses] == [True, True]
    assert held(family) == (60_000, 0), "30,000 and 10,000 captured, the other 10,000 released"
    assert [r.applied for r in west.BatchCommitLegs(batch).responses] == [False, False]
    assert held(family) == (60_000, 0)
    assert family.nodes.west.stub.CheckLedger(papi.CheckLedgerRequest()).balanced


def test_a_batch_with_one_refused_commit_applies_none_of_them(two_nodes, west):
    family = CrossFamily(two_nodes)
    west.PrepareLegs(prepare_request(family, "txn-b3", 30_000))
    west.PrepareLegs(prepare_request(family, "txn-b3-too-much", 10_000))
    for wrong, reason in ((commit("txn-never-prepared", 1), "SETTLEMENT_NOT_FOUND"),
                          (commit("txn-b3-too-much", 10_001), "AMOUNT_EXCEEDS_HOLD")):  # fmt: skip
        batch = node.BatchCommitLegsRequest(requests=[commit("txn-b3", 30_000), wrong])
        with pytest.raises(grpc.RpcError) as raised:
            west.BatchCommitLegs(batch)
        assert refusal_of(raised.value).reason == reason
        assert held(family) == (100_000, 40_000)
    assert west.CommitLegs(commit("txn-b3", 30_000)).applied
    assert held(family) == (70_000, 10_000)


def test_a_batch_waiting_for_one_account_keeps_its_others_free_so_batches_in_crossing_order_cannot_deadlock(
    two_nodes, west, backend
):
    """A batch locks every account its commits take from at once, in the accounts' order, before
    capturing any. Its first transaction (by id) takes from the later account; while the earlier
    account is locked elsewhere the batch waits, and the later one stays free for others."""
    if backend != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite locks the whole database")
    earlier, later = sorted(
        (CrossFamily(two_nodes) for _ in range(2)), key=lambda f: personal_account(f.father.id_number)
    )
    west.PrepareLegs(prepare_request(later, "txn-lock-1", 10_000))
    west.PrepareLegs(prepare_request(earlier, "txn-lock-2", 20_000))
    engine = create_engine(two_nodes.west.database_url)
    row = select(accounts.c.account_id).where(accounts.c.account_id == bindparam("id"))
    try:
        with ThreadPoolExecutor(1) as pool, engine.connect() as elsewhere:
            elsewhere.execute(row.with_for_update(), {"id": personal_account(earlier.father.id_number)})
            request = node.BatchCommitLegsRequest(requests=[commit("txn-lock-1", 10_000), commit("txn-lock-2", 20_000)])
            batch = pool.submit(west.BatchCommitLegs, request, timeout=TIMEOUT)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watcher:
                deadline = time.monotonic() + TIMEOUT
                while not watcher.execute(WAITING_FOR_A_LOCK).scalar() and time.monotonic() < deadline:
                    time.sleep(0.02)
            assert not batch.done(), "the batch waits for the earlier account"
            with engine.connect() as another:  # NOWAIT raises LockNotAvailable if the batch holds it
                another.execute(row.with_for_update(nowait=True), {"id": personal_account(later.father.id_number)})
            elsewhere.rollback()
            assert [r.applied for r in batch.result(timeout=TIMEOUT).responses] == [True, True]
    finally:
        engine.dispose()
    assert (held(later), held(earlier)) == ((90_000, 0), (80_000, 0))


def test_a_batch_is_refused_empty_beyond_a_hundred_or_naming_a_transaction_twice_and_changes_nothing(two_nodes, west):
    family = CrossFamily(two_nodes)
    west.PrepareLegs(prepare_request(family, "txn-b4", 30_000))
    for requests, reason, field in (
        ([], "FIELD_REQUIRED", "requests"),
        ([commit(f"txn-{n}", 1) for n in range(101)], "FIELD_INVALID", "requests"),
        ([commit("txn-b4", 1), commit("txn-b4", 2)], "FIELD_INVALID", "requests[1].transaction_id"),
        ([commit("txn-b4", -1)], "INVALID_AMOUNT", "requests[0].captures.amount_fen"),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            west.BatchCommitLegs(node.BatchCommitLegsRequest(requests=requests))
        refusal = refusal_of(raised.value)
        assert (refusal.code, refusal.reason) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
        assert refusal.fields == (field,), refusal
    assert held(family) == (100_000, 30_000)


def test_a_batch_naming_a_transaction_another_node_coordinates_is_out_of_scope(two_nodes):
    """West coordinates a bill at a Lanzhou hospital and holds the mother's leg on east; east, calling
    its own node service as a node of the routing file, may not commit it there."""
    cross = CrossFamily(two_nodes, mother_fen=100_000)
    request = prepare(cross, cross.mother_binding.binding_id, cross.mother.id_number, 10_000)
    by_west, by_east = two_nodes.east.node_stub("west"), two_nodes.east.node_stub("east")
    try:
        by_west.PrepareLegs(request)
        batch = node.BatchCommitLegsRequest(requests=[commit(request.transaction_id, 10_000)])
        with pytest.raises(grpc.RpcError) as raised:
            by_east.BatchCommitLegs(batch)
        refusal = refusal_of(raised.value)
        assert (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, "OUT_OF_SCOPE")
        assert held_by_mother(cross) == (100_000, 10_000)
        assert [r.applied for r in by_west.BatchCommitLegs(batch).responses] == [True]
        assert held_by_mother(cross) == (90_000, 0)
    finally:
        by_east.close()
        by_west.close()


# The coordinator's side, over a real channel ------------------------------------------------------


def test_commits_handed_over_together_reach_the_node_as_one_batch_and_each_caller_hears_its_own(two_nodes, west):
    family = CrossFamily(two_nodes)
    for number in (1, 2, 3):
        west.PrepareLegs(prepare_request(family, f"txn-c{number}", 10_000))
    peer = Node("west", two_nodes.west.server.address, frozenset({"62"}))
    sent: list[str] = []

    async def run() -> list[object]:
        client = GrpcNodeClient(two_nodes.east.binding.pki.transport(payment_node("east")))
        one, many = client._commit_one, client._commit_many

        async def counted_one(*args):
            sent.append("CommitLegs")
            await one(*args)

        async def counted_many(*args):
            sent.append("BatchCommitLegs")
            await many(*args)

        client._commits = CommitBatcher(counted_one, counted_many)
        try:
            return await asyncio.gather(
                client.commit(peer, "txn-c1", {1: 10_000}),
                client.commit(peer, "txn-c2", {1: 5_000}),
                client.commit(peer, "txn-c3", {1: 0}),
                client.commit(peer, "txn-never-prepared", {1: 1}),
                return_exceptions=True,
            )
        finally:
            await client.close()

    answers = asyncio.run(run())
    assert answers[:3] == [None, None, None]
    assert isinstance(answers[3], DomainError) and answers[3].reason is Reason.SETTLEMENT_NOT_FOUND
    # The batch was refused for the one commit never prepared; each then went alone.
    assert sent == ["BatchCommitLegs"] + ["CommitLegs"] * 4
    assert held(family) == (85_000, 0)
    assert family.nodes.west.stub.CheckLedger(papi.CheckLedgerRequest()).balanced


@pytest.fixture
def two_round_nodes(databases, binding_service, tmp_path):
    """Two nodes serving metrics that hold, then commit, every cross-node settlement (no one round)."""
    ports = {"east": _free_port(), "west": _free_port()}
    settings = lambda name: {"metrics_address": f"127.0.0.1:{ports[name]}", "one_round": False}  # noqa: E731
    with running_two_nodes(databases, binding_service, tmp_path, settings) as nodes:
        yield nodes, ports


def test_racing_cross_node_settlements_are_each_captured_exactly_once_with_their_commits_batched(two_round_nodes):
    """Twenty-four Settles of six families arrive at east at once; commits decided while another
    to west was on its way went together, and every bill is paid by the family to the fen."""
    nodes, ports = two_round_nodes
    families = [CrossFamily(nodes) for _ in range(6)]
    bills = [(family, 5_000 * (n + 1)) for family in families for n in range(4)]  # 50,000 a family
    answers = race_bills(nodes.east, "Settle", papi.SettleRequest, bills)
    assert all(isinstance(a, papi.SettleResponse) for a in answers), answers
    # No patient pays cash: two bills of one family racing may both count on the mother's 10,000
    # when they ask west to hold; the one that finds it taken asks west again for more.
    assert all(a.settlement.state == ppb.SETTLEMENT_STATE_CAPTURED and not a.settlement.cash_pay_fen for a in answers)
    for family in families:
        mother, father = family.balance(nodes.east.stub, family.mother), family.balance(nodes.west.stub, family.father)
        assert (mother.balance_fen, mother.held_fen) == (0, 0)
        assert (father.balance_fen, father.held_fen) == (100_000 + 10_000 - 50_000, 0)
    families[0].assert_books_close()
    west = scrape(ports["west"])
    served = {
        method: value(west, "grpc_server_handled_total", grpc_type="unary", grpc_service=NODE, grpc_method=method,
                      grpc_code="OK")
        for method in ("PrepareLegs", "AbortLegs", "CommitLegs", "BatchCommitLegs")
    }  # fmt: skip
    # One prepare per saga (a bill the mother's account covers alone needs none); a saga planned
    # again is aborted; fewer commit calls than sagas committed.
    committed = served["PrepareLegs"] - served["AbortLegs"]
    assert served["BatchCommitLegs"] >= 1 and served["CommitLegs"] + served["BatchCommitLegs"] < committed, served
    assert total(west, "grpc_server_handled_total", grpc_service=NODE) == sum(served.values()), "nothing refused"


# The batching itself ------------------------------------------------------------------------------


class Peer:
    """Records what is sent; a commit of a transaction in `refused` is refused, alone or in a batch."""

    def __init__(self, batches: bool = True, refused: frozenset[str] = frozenset()) -> None:
        self.calls: list[list[str]] = []
        self.release = asyncio.Event()
        self.batches = batches
        self.refused = refused

    async def one(self, peer: Node, transaction_id: str, captures: dict[int, int]) -> None:
        self.calls.append([transaction_id])
        await self.release.wait()
        if transaction_id in self.refused:
            raise DomainError(Reason.AMOUNT_EXCEEDS_HOLD, "refused")

    async def many(self, peer: Node, commits: list[tuple[str, dict[int, int]]]) -> None:
        if not self.batches:
            raise BatchUnsupported
        self.calls.append([t for t, _ in commits])
        await self.release.wait()
        if self.refused & {t for t, _ in commits}:
            raise DomainError(Reason.AMOUNT_EXCEEDS_HOLD, "refused")


async def idle() -> None:
    """Lets every task that can run, run (none here waits on anything but `release`)."""
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_commit_for_an_idle_node_goes_at_once_alone_and_those_decided_meanwhile_go_next_together():
    async def run() -> list[list[str]]:
        peer = Peer()
        batcher = CommitBatcher(peer.one, peer.many)
        first = asyncio.create_task(batcher.commit(PEER, "t1", {1: 1}))
        await idle()
        assert peer.calls == [["t1"]], "the first went without waiting for company"
        later = [asyncio.create_task(batcher.commit(PEER, f"t{n}", {1: 1})) for n in (2, 3, 4)]
        await idle()
        assert peer.calls == [["t1"]], "the others wait while the first is on its way"
        peer.release.set()
        await asyncio.gather(first, *later)
        return peer.calls

    assert asyncio.run(run()) == [["t1"], ["t2", "t3", "t4"]]


def test_a_batch_is_cut_at_its_limit():
    async def run() -> list[list[str]]:
        peer = Peer()
        peer.release.set()
        batcher = CommitBatcher(peer.one, peer.many, max_batch=2)
        await asyncio.gather(*(batcher.commit(PEER, f"t{n}", {1: 1}) for n in range(5)))
        return peer.calls

    assert asyncio.run(run()) == [["t0", "t1"], ["t2", "t3"], ["t4"]]


def test_a_refused_batch_is_sent_again_one_by_one_so_only_the_refused_commit_fails():
    async def run() -> tuple[list[object], list[list[str]]]:
        peer = Peer(refused=frozenset({"t2"}))
        peer.release.set()
        batcher = CommitBatcher(peer.one, peer.many)
        answers = await asyncio.gather(
            *(batcher.commit(PEER, f"t{n}", {1: 1}) for n in (1, 2, 3)), return_exceptions=True
        )
        return answers, peer.calls

    answers, calls = asyncio.run(run())
    assert answers[0] is None and answers[2] is None
    assert isinstance(answers[1], DomainError) and answers[1].reason is Reason.AMOUNT_EXCEEDS_HOLD
    assert calls == [["t1", "t2", "t3"], ["t1"], ["t2"], ["t3"]]


def test_a_commit_sent_alone_is_traced_under_its_callers_span_and_a_batch_under_none_of_theirs():
    tracer = TracerProvider().get_tracer(__name__)
    traced: list[tuple[list[str], str | None]] = []

    class TracedPeer(Peer):
        async def one(self, peer: Node, transaction_id: str, captures: dict[int, int]) -> None:
            traced.append(([transaction_id], getattr(trace.get_current_span(), "name", None)))
            await super().one(peer, transaction_id, captures)

        async def many(self, peer: Node, commits: list[tuple[str, dict[int, int]]]) -> None:
            traced.append(([t for t, _ in commits], getattr(trace.get_current_span(), "name", None)))
            await super().many(peer, commits)

    async def settle(batcher: CommitBatcher, transaction_id: str) -> None:
        with tracer.start_as_current_span(f"settle {transaction_id}"):
            await batcher.commit(PEER, transaction_id, {1: 1})

    async def run() -> None:
        peer = TracedPeer(refused=frozenset({"t3"}))
        batcher = CommitBatcher(peer.one, peer.many)
        first = asyncio.create_task(settle(batcher, "t1"))
        await idle()
        later = [asyncio.create_task(settle(batcher, t)) for t in ("t2", "t3")]
        await idle()
        peer.release.set()
        await asyncio.gather(first, *later, return_exceptions=True)

    asyncio.run(run())
    # The refused batch is sent again one by one, each commit under its own caller's span.
    assert traced == [(["t1"], "settle t1"), (["t2", "t3"], None), (["t2"], "settle t2"), (["t3"], "settle t3")]


def test_a_node_without_batched_commits_is_sent_them_one_by_one_from_then_on():
    async def run() -> list[list[str]]:
        peer = Peer(batches=False)
        peer.release.set()
        batcher = CommitBatcher(peer.one, peer.many)
        await asyncio.gather(*(batcher.commit(PEER, f"t{n}", {1: 1}) for n in (1, 2)))
        await asyncio.gather(*(batcher.commit(PEER, f"t{n}", {1: 1}) for n in (3, 4)))
        return peer.calls

    assert asyncio.run(run()) == [["t1"], ["t2"], ["t3"], ["t4"]]


def test_a_caller_that_stops_waiting_leaves_its_commit_to_be_sent_and_the_others_answered():
    async def run() -> list[list[str]]:
        peer = Peer()
        batcher = CommitBatcher(peer.one, peer.many)
        first = asyncio.create_task(batcher.commit(PEER, "t1", {1: 1}))
        await idle()
        impatient = asyncio.create_task(batcher.commit(PEER, "t2", {1: 1}))
        patient = asyncio.create_task(batcher.commit(PEER, "t3", {1: 1}))
        await idle()
        impatient.cancel()
        peer.release.set()
        await asyncio.gather(first, patient)
        await batcher.close()
        return peer.calls

    assert asyncio.run(run()) == [["t1"], ["t2", "t3"]]
