"""Fault tests on real processes: "a multi-node settlement must end
all-or-nothing even when a node crashes or the network fails mid-way: nothing
lost, nothing paid twice".

Two faults a single-process test cannot make: the network between the two
payment nodes fails while settlements are in flight (a TCP proxy that resets
or silently drops), and the PostgreSQL server under all three services stops
dead (`pg_ctl stop -m immediate`) under load and comes back. In both, the
hospitals retry what failed with the same request_id, and the history checker
(`converged`) must find balanced ledgers, no holds left, money conserved and
clearing sides equal, with each settlement paid exactly once.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
import pytest

from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from shared.privacy import mask_id_number
from tests.fault_checks import Books, Funded, bill, converged, fund_family
from tests.helpers import request_id
from tests.private_postgres import PrivatePostgres, private_postgres
from tests.process_cluster import ProcessCluster
from tests.tcp_proxy import TcpProxy

StatusCode = grpc.StatusCode
# What a hospital may retry with the same request_id: nothing was stored for these.
NETWORK_TRANSIENT = frozenset({StatusCode.UNAVAILABLE, StatusCode.ABORTED, StatusCode.DEADLINE_EXCEEDED})
# A database that vanished mid-transaction surfaces as INTERNAL; committed or not, a retry with the key is safe.
DATABASE_TRANSIENT = NETWORK_TRANSIENT | {StatusCode.INTERNAL, StatusCode.UNKNOWN}
MOTHER_FEN, FATHER_FEN = 100, 2_000_000  # the mother runs dry at once: nearly every fen comes from the west node


# The history of one run ------------------------------------------------------------------------


@dataclass
class History:
    """Every Settle the hospitals sent, and how each one ended (so far)."""

    requests: dict[str, papi.SettleRequest] = field(default_factory=dict)
    settled: dict[str, ppb.Settlement] = field(default_factory=dict)
    failed: dict[str, tuple[StatusCode, str]] = field(default_factory=dict)
    codes: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, request: papi.SettleRequest, answer: ppb.Settlement | grpc.RpcError) -> None:
        key = request.request_id
        with self.lock:
            self.requests[key] = request
            if isinstance(answer, grpc.RpcError):
                self.failed[key] = (answer.code(), answer.details() or "")
                self.codes[answer.code().name] += 1
            else:
                self.settled[key] = answer
                self.failed.pop(key, None)
                self.codes["OK"] += 1

    def success_count(self) -> int:
        with self.lock:
            return len(self.settled)


def settle(stub: payment_grpc.PaymentServiceStub, request: papi.SettleRequest) -> ppb.Settlement | grpc.RpcError:
    try:
        return stub.Settle(request, timeout=20).settlement
    except grpc.RpcError as error:
        return error


class Hospitals:
    """Threads, each with its own channel to node east, sending cross-node Settles with
    fresh request_ids until told to stop or `limit` requests were sent in all."""

    def __init__(self, cluster: ProcessCluster, family: Funded, threads: int, limit: int) -> None:
        self.cluster = cluster
        self.family = family
        self.history = History()
        self.stop = threading.Event()
        self._numbers = itertools.count()
        self._limit = limit
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Hospitals:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in self._threads), "a hospital thread hung"

    def _run(self) -> None:
        stub = self.cluster.payment("east")
        while not self.stop.is_set():
            number = next(self._numbers)
            if number >= self._limit:
                return
            # Distinct amounts, so a settlement paid twice could not hide behind another.
            request = papi.SettleRequest(request_id=request_id(), bill=bill(self.family, 1_000 + number))
            answer = settle(stub, request)
            self.history.record(request, answer)
            if isinstance(answer, grpc.RpcError):
                time.sleep(0.1)  # a failing node answers at once; do not spin

    def wait_for_successes(self, count: int, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while self.history.success_count() < count:
            assert time.monotonic() < deadline, f"only {self.history.success_count()} settlements before the fault"
            assert not self.stop.is_set()
            time.sleep(0.02)


def retry_until_settled(cluster: ProcessCluster, history: History, transient: frozenset, seconds: float) -> None:
    """The hospitals' retries: every request that failed transiently, again with its own request_id."""
    deadline = time.monotonic() + seconds
    stub = cluster.payment("east")
    while True:
        retryable = [key for key, (code, _) in history.failed.items() if code in transient]
        if not retryable or time.monotonic() > deadline:
            break
        for key in retryable:
            history.record(history.requests[key], settle(stub, history.requests[key]))
        time.sleep(0.2)
    assert history.failed == {}, f"requests that never settled: {dict(list(history.failed.items())[:5])}"


def check_paid_once(cluster: ProcessCluster, family: Funded, history: History, books: Books) -> None:
    """Money moved exactly once per settlement: what left the two accounts, what the
    hospital got and what the west node owes the east node all equal the captures."""
    settlements = list(history.settled.values())
    assert len({s.settlement_id for s in settlements}) == len(settlements), "two requests share a settlement"
    for key, settlement in history.settled.items():
        request = history.requests[key]
        assert settlement.state == ppb.SETTLEMENT_STATE_CAPTURED, key
        assert settlement.captured_fen == request.bill.self_pay_fen - settlement.cash_pay_fen, key
        assert settlement.captured_fen == sum(leg.captured_fen for leg in settlement.legs), key
    captured = sum(s.captured_fen for s in settlements)
    from_father = sum(
        leg.captured_fen
        for s in settlements
        for leg in s.legs
        if leg.payer_id_number == mask_id_number(family.father.id_number)  # a relative, as the hospital sees him
    )
    debited = family.credited_fen - books.mother.balance_fen - books.father.balance_fen
    assert debited == captured, f"{debited} fen left the accounts for {captured} fen of captured settlements"
    assert books.institution_net_fen == captured
    assert FATHER_FEN - books.father.balance_fen == from_father, "the west node moved another sum than agreed"
    assert from_father > 0, "no settlement crossed the nodes"
    assert books.clearing_east == [("62", "32", from_father)]

    # Asked again after the dust settled, every request answers with the settlement it made.
    stub = cluster.payment("east")
    for key, settlement in history.settled.items():
        again = stub.Settle(history.requests[key], timeout=20).settlement
        assert (again.settlement_id, again.captured_fen) == (settlement.settlement_id, settlement.captured_fen)
    assert converged(cluster, family) == books, "a replay moved money"


def run_fault(cluster: ProcessCluster, family: Funded, fault: Callable[[], None], threads: int, limit: int) -> History:
    """A stream of settlements with the fault in the middle of it, kept going a moment after."""
    with Hospitals(cluster, family, threads, limit) as hospitals:
        hospitals.wait_for_successes(threads)
        fault()
        time.sleep(1)
    return hospitals.history


# The network between the nodes fails -----------------------------------------------------------


def test_the_tcp_proxy_resets_or_silently_drops_and_then_forwards_again():
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(5)

        def echo() -> None:
            while True:
                try:
                    connection, _ = server.accept()
                except OSError:
                    return  # closed, or nobody came for 5 s
                with connection, contextlib.suppress(OSError):  # the proxy may reset it
                    while data := connection.recv(1024):
                        connection.sendall(data)

        threading.Thread(target=echo, daemon=True).start()
        with TcpProxy(f"127.0.0.1:{server.getsockname()[1]}", lifetime=30) as proxy:
            host, port = proxy.address.split(":")
            with socket.create_connection((host, int(port)), timeout=2) as client:
                client.sendall(b"one")
                assert client.recv(16) == b"one"
                proxy.cut("drop")
                client.sendall(b"two")
                client.settimeout(0.5)
                with pytest.raises(TimeoutError):
                    client.recv(16)  # silence, not an error
                proxy.restore()
                client.settimeout(2)
                assert client.recv(16) == b"two"  # a healed partition delivers what waited
                proxy.cut("reset")
                with pytest.raises(ConnectionError):
                    client.sendall(b"three")
                    client.recv(16)
            try:  # the RST may come while connecting, while sending, or read as an end of stream
                with socket.create_connection((host, int(port)), timeout=2) as late:
                    late.sendall(b"four")
                    answer = late.recv(16)
            except ConnectionError:
                answer = b""
            assert answer == b"", "a connection made during a reset cut must not get through"
            proxy.restore()
            with socket.create_connection((host, int(port)), timeout=2) as client:
                client.sendall(b"five")
                assert client.recv(16) == b"five"


@pytest.fixture
def proxied(databases, tmp_path) -> Iterator[tuple[ProcessCluster, TcpProxy]]:
    """The cluster of tests/test_faults.py, but node east reaches node west only through a proxy."""
    urls = {name: databases.url(name) if name != "west" else None for name in ("binding", "payment")}
    west = (
        f"sqlite:///{tmp_path}/payment-west.db"
        if databases.backend == "sqlite"
        else databases.cluster_url("payment_west")
    )
    cluster = ProcessCluster(tmp_path, urls["binding"], {"east": urls["payment"], "west": west})
    with TcpProxy(cluster.address("west"), lifetime=240) as proxy:
        cluster.peer_address_override["west"] = proxy.address
        try:
            yield cluster, proxy
        finally:
            cluster.stop_all()


@pytest.mark.parametrize("cut", ["reset", "drop"])
def test_settlements_in_flight_when_the_network_between_nodes_is_cut_are_paid_once_after_retries(proxied, cut):
    """The link east→west is cut (connections reset, or every packet silently
    dropped) while cross-node settlements are in flight, then restored. Requests that got
    PROVINCE_UNREACHABLE are retried with the same request_id; every one settles, exactly once."""
    cluster, proxy = proxied
    cluster.start_all()
    family = fund_family(cluster, mother_fen=MOTHER_FEN, father_fen=FATHER_FEN)

    def partition() -> None:
        assert proxy.open_connections > 0, "east does not reach west through the proxy"
        proxy.cut(cut)
        time.sleep(2.5)  # longer than the 2 s node-to-node deadline: every call in flight fails
        proxy.restore()

    history = run_fault(cluster, family, partition, threads=10, limit=60)
    assert history.codes["UNAVAILABLE"] > 0, f"the cut failed no request: {history.codes}"
    unexpected = {c for c, _ in history.failed.values()} - NETWORK_TRANSIENT
    assert not unexpected, f"a cut network gave {unexpected}: {history.failed}"

    retry_until_settled(cluster, history, NETWORK_TRANSIENT, seconds=60)
    books = converged(cluster, family, seconds=60)
    check_paid_once(cluster, family, history, books)


# The database stops dead -----------------------------------------------------------------------


@pytest.fixture
def on_private_postgres(tmp_path) -> Iterator[tuple[ProcessCluster, PrivatePostgres]]:
    with private_postgres() as server:
        urls = {name: server.create_database(f"gongji_{name}") for name in ("binding", "payment_east", "payment_west")}
        cluster = ProcessCluster(
            tmp_path, urls["binding"], {"east": urls["payment_east"], "west": urls["payment_west"]}
        )
        try:
            yield cluster, server
        finally:
            cluster.stop_all()


def test_settlements_survive_postgresql_stopping_dead_under_load_and_are_paid_once_after_retries(
    on_private_postgres,
):
    """The PostgreSQL server holding the binding service and both payment
    nodes is stopped with `pg_ctl stop -m immediate` in the middle of a stream of
    cross-node settlements and started again 1.5 s later. The services stay up, the
    recovery loop finishes what was decided, and each request retried with its own
    request_id until it succeeds moved money exactly once."""
    cluster, server = on_private_postgres
    cluster.start_all()
    family = fund_family(cluster, mother_fen=MOTHER_FEN, father_fen=FATHER_FEN)

    def crash_and_restart() -> None:
        server.crash()
        time.sleep(1.5)
        server.start()

    history = run_fault(cluster, family, crash_and_restart, threads=4, limit=120)
    assert sum(n for code, n in history.codes.items() if code != "OK") > 0, f"the crash failed nothing: {history.codes}"
    for name in ("binding", "east", "west"):
        assert cluster.processes[name].alive, f"{name} died with its database: {cluster.processes[name].log}"

    retry_until_settled(cluster, history, DATABASE_TRANSIENT, seconds=60)
    books = converged(cluster, family, seconds=60)
    check_paid_once(cluster, family, history, books)


def test_a_settlement_already_paid_answers_its_retry_while_the_other_node_is_unreachable(proxied):
    """Once a cross-node settlement
    is captured, the hospital's retry with the same request_id gets that answer back even
    while node west cannot be reached, and the retry holds nothing anywhere."""
    cluster, proxy = proxied
    cluster.start_all()
    family = fund_family(cluster, mother_fen=MOTHER_FEN, father_fen=FATHER_FEN)
    east = cluster.payment("east")
    request = papi.SettleRequest(request_id=request_id(), bill=bill(family, 5_000))
    first = east.Settle(request, timeout=20).settlement
    assert first.state == ppb.SETTLEMENT_STATE_CAPTURED
    converged(cluster, family)

    proxy.cut("reset")
    again = settle(east, request)
    proxy.restore()
    assert not isinstance(again, grpc.RpcError), f"the retry got {again.code().name}: {again.details()}"
    assert (again.settlement_id, again.captured_fen) == (first.settlement_id, first.captured_fen)
    converged(cluster, family)
