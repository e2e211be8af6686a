"""Bounded resources: work beyond what a service takes is shed at once with a reason, work
whose caller gave up does not start, and a statement running past the caller's deadline is
stopped by the database itself."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from services.common.clock import SystemClock
from services.common.database import (
    create_database_engine,
    is_past_deadline,
    normalise_url,
    statement_timeout_to_set,
)
from services.common.deadlines import reset_call_deadline, set_call_deadline, working_until
from services.common.interceptors import InFlight
from services.common.limits import ServerLimits
from services.common.runner import UseCaseRunner
from services.common.security.callers import Caller
from shared.errors import DomainError, Reason
from shared.principals import BINDING_SERVICE, institution
from tests.conftest import running_binding, running_payment
from tests.helpers import refusal_of, request_id
from tests.payment_helpers import PaymentFamily
from tests.test_servers import OPERATOR, _free_port, _wait_serving, health_of

BINDING_NAME = "gongji.binding.v1.BindingService"


def test_a_caller_with_too_many_calls_running_is_refused_until_one_ends():
    running = InFlight(per_principal=2)
    hospital, other = Caller(institution("H1")), Caller(institution("H2"))
    first, second = running.enter(hospital), running.enter(hospital)
    with pytest.raises(DomainError) as refused:
        running.enter(hospital)
    assert refused.value.reason is Reason.TOO_MANY_CALLS
    running.enter(other)  # another caller is not held back
    running.leave(first)
    running.enter(hospital)
    assert second


def test_work_beyond_the_waiting_room_is_shed_and_the_rest_runs():
    release = threading.Event()
    runner = UseCaseRunner(lambda: None, SystemClock(), "test.gongji", workers=1, max_waiting=1)  # type: ignore[arg-type]

    async def flood() -> list[object]:
        async def job() -> str:
            return await runner.in_thread(lambda: "done" if release.wait(10) else "timed out")

        tasks = [asyncio.create_task(job()) for _ in range(4)]
        await asyncio.sleep(0.2)
        release.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    try:
        answers = asyncio.run(flood())
    finally:
        runner.close()
    assert answers.count("done") == 2
    shed = [a for a in answers if isinstance(a, DomainError)]
    assert len(shed) == 2 and all(a.reason is Reason.SERVER_BUSY for a in shed)


def test_work_whose_deadline_passed_while_it_waited_does_not_start():
    release, started = threading.Event(), []
    runner = UseCaseRunner(lambda: None, SystemClock(), "test.gongji", workers=1)  # type: ignore[arg-type]

    async def run() -> list[object]:
        blocker = asyncio.create_task(runner.in_thread(lambda: release.wait(10)))
        await asyncio.sleep(0.05)
        token = set_call_deadline(0.1)
        try:
            late = asyncio.create_task(runner.in_thread(lambda: started.append(1)))
        finally:
            reset_call_deadline(token)
        await asyncio.sleep(0.3)
        release.set()
        return await asyncio.gather(blocker, late, return_exceptions=True)

    try:
        _, late = asyncio.run(run())
    finally:
        runner.close()
    assert isinstance(late, DomainError) and late.reason is Reason.DEADLINE_EXCEEDED
    assert started == []


def _slow_statement(backend: str) -> str:
    if backend == "postgresql":
        return "SELECT pg_sleep(5)"
    return "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) SELECT count(*) FROM n"


def test_a_statement_running_past_the_callers_deadline_is_stopped_by_the_database(databases, backend):
    engine = create_database_engine(databases.url("binding"), pool_size=1)
    try:
        started = time.monotonic()
        with working_until(time.monotonic() + 0.3), pytest.raises(OperationalError) as stopped, engine.begin() as conn:
            conn.execute(text(_slow_statement(backend)))
        assert is_past_deadline(stopped.value)
        assert time.monotonic() - started < 4
        with engine.begin() as conn:  # the connection is usable again, without the deadline
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def _statement_of(backend: str, seconds: float) -> str:
    """A statement that runs about `seconds` when nothing stops it."""
    if backend == "postgresql":
        return f"SELECT pg_sleep({seconds})"
    steps = int(seconds * 4_000_000)
    return f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {steps}) SELECT count(*) FROM n"


def test_each_transaction_on_a_reused_connection_is_bounded_by_its_own_callers_deadline(databases, backend):
    engine = create_database_engine(databases.url("binding"), pool_size=1)  # one connection for all
    try:
        with working_until(time.monotonic() + 60), engine.begin() as conn:
            conn.execute(text("SELECT 1"))
        started = time.monotonic()
        with working_until(time.monotonic() + 0.3), pytest.raises(OperationalError) as stopped, engine.begin() as conn:
            conn.execute(text(_slow_statement(backend)))
        assert is_past_deadline(stopped.value)
        assert time.monotonic() - started < 4
        if backend == "postgresql":  # reads outside a transaction, as the services make them there
            autocommit = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            with working_until(time.monotonic() + 0.3), pytest.raises(OperationalError) as stopped, autocommit:
                autocommit.execute(text(_slow_statement(backend)))
            assert is_past_deadline(stopped.value)
        with engine.begin() as conn:  # without a deadline, the earlier callers' bounds are gone
            conn.execute(text(_statement_of(backend, 0.6)))
        with working_until(time.monotonic() + 60), engine.begin() as conn:
            conn.execute(text(_statement_of(backend, 0.6)))
    finally:
        engine.dispose()


@given(
    current=st.one_of(st.none(), st.integers(min_value=1, max_value=10**7)),
    budget=st.one_of(st.none(), st.integers(min_value=1, max_value=10**7)),
)
def test_a_statement_timeout_is_never_longer_than_the_time_left_nor_shorter_than_most_of_it(
    current: int | None, budget: int | None
) -> None:
    timeout = statement_timeout_to_set(current, budget)
    if budget is None:
        assert timeout is None
        return
    assert timeout is not None and 1 <= timeout <= budget
    assert timeout >= min(budget, int(0.75 * budget))
    if current is not None and 0.75 * budget <= current <= budget:
        assert timeout == current  # nothing to send


def test_callers_with_like_deadlines_share_one_statement_timeout() -> None:
    first = statement_timeout_to_set(None, 5_000)
    assert first is not None
    # A new one is set with a tenth to spare: later callers with up to a third more time left fit it too.
    assert all(statement_timeout_to_set(first, left) == first for left in range(first, first * 4 // 3 + 1, 7))
    assert statement_timeout_to_set(first, first - 1) != first  # less time left than the timeout: a new one


@contextmanager
def holding_the_account(harness, backend: str, account: str) -> Iterator[None]:
    """Another writer holds `account` locked, as a long transaction would: SQLite's write lock
    on the whole database, a row lock on PostgreSQL."""
    url = normalise_url(harness.database_url)
    if backend == "sqlite":
        connection = sqlite3.connect(make_url(url).database, timeout=0, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
        return
    engine = create_engine(url)
    try:
        with engine.connect() as connection, connection.begin() as transaction:
            connection.execute(text("SELECT 1 FROM accounts WHERE account_id = :id FOR UPDATE"), {"id": account})
            try:
                yield
            finally:
                transaction.rollback()
    finally:
        engine.dispose()


def _credit(family: PaymentFamily, amount_fen: int, key: str) -> papi.CreditAccountRequest:
    return papi.CreditAccountRequest(
        request_id=key, id_number=family.mother.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT,
        amount_fen=amount_fen, kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION, admdvs="320100",
    )  # fmt: skip


def test_a_call_waiting_on_a_locked_account_past_its_deadline_is_given_up_and_writes_nothing(payment_service, backend):
    family = PaymentFamily(payment_service, father_fen=0)
    mother = f"PERSONAL_ACCOUNT:{family.mother.id_number}"
    entries = family.ledger().entry_count
    key = request_id()
    with holding_the_account(payment_service, backend, mother):
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as raised:
            family.payment.CreditAccount(_credit(family, 5_000, key), timeout=1)
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 3
        time.sleep(1)  # past the deadline with the lock still held: the database gives the call up
    time.sleep(1)  # the lock is free: work that had not given up would write now
    assert family.account(family.mother).balance_fen == 100_000
    assert family.ledger().entry_count == entries
    # Nothing was stored under the key either: the same request runs anew, once.
    assert family.payment.CreditAccount(_credit(family, 5_000, key), timeout=10).account.balance_fen == 105_000
    assert family.payment.CreditAccount(_credit(family, 5_000, key), timeout=10).account.balance_fen == 105_000
    audit = family.ledger()
    assert (audit.balanced, audit.entry_count) == (True, entries + 1)


def test_a_server_with_its_calls_all_in_flight_sheds_the_next_at_once_and_answers_all_once_they_end(
    databases, binding_service, backend
):
    with running_payment(databases, binding_service, limits=ServerLimits(max_concurrent_rpcs=2)) as harness:
        family = PaymentFamily(harness, father_fen=0)
        mother = f"PERSONAL_ACCOUNT:{family.mother.id_number}"
        look = papi.GetAccountRequest(id_number=family.mother.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT)
        stubs = [harness.fresh_stub() for _ in range(2)]
        try:
            with ThreadPoolExecutor(max_workers=2) as pool, holding_the_account(harness, backend, mother):
                held = []
                for stub in stubs:  # one after the other, each given time to reach the locked account
                    held.append(pool.submit(stub.CreditAccount, _credit(family, 1_000, request_id()), timeout=30))
                    time.sleep(1)
                assert not any(call.done() for call in held), "a held call ended before the next was tried"
                shed_after = None
                waited_until = time.monotonic() + 10
                while shed_after is None and time.monotonic() < waited_until:
                    started = time.monotonic()
                    try:
                        family.payment.GetAccount(look, timeout=5)  # gRPC counts a finished call a moment longer
                        time.sleep(0.05)
                    except grpc.RpcError as error:
                        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
                        shed_after = time.monotonic() - started
                assert shed_after is not None, "a third call was never shed while two were held"
                assert shed_after < 1
                assert not any(call.done() for call in held)
            balances = sorted(call.result(timeout=30).account.balance_fen for call in held)
        finally:
            for stub in stubs:
                stub.close()
        assert balances == [101_000, 102_000]
        assert family.payment.GetAccount(look, timeout=10).account.balance_fen == 102_000
        assert family.ledger().balanced


def test_calls_still_in_their_access_check_count_against_their_caller(databases, binding_service, backend):
    """A call's scope check reads (the person's region) and waits for a worker like the work
    itself. Counted only after it, one caller's calls filled the whole waiting room past
    --calls-per-principal, and every other caller was shed SERVER_BUSY."""
    limits = ServerLimits(calls_per_principal=2)
    with running_payment(databases, binding_service, limits=limits, workers=1) as harness:
        family = PaymentFamily(harness, father_fen=0)
        mother = f"PERSONAL_ACCOUNT:{family.mother.id_number}"
        stubs = [harness.fresh_stub() for _ in range(5)]
        try:
            with ThreadPoolExecutor(max_workers=5) as pool, holding_the_account(harness, backend, mother):
                held = pool.submit(stubs[0].CreditAccount, _credit(family, 1_000, request_id()), timeout=30)
                time.sleep(1)  # it holds the only worker, waiting for the account
                assert not held.done()
                more = [
                    pool.submit(stub.CreditAccount, _credit(family, 1_000, request_id()), timeout=30)
                    for stub in stubs[1:]
                ]
                waited_until = time.monotonic() + 10
                while sum(call.done() for call in more) < 3 and time.monotonic() < waited_until:
                    wait(more, timeout=0.1)
                refused = [refusal_of(call.exception()).reason for call in more if call.done() and call.exception()]
                assert refused == ["TOO_MANY_CALLS"] * 3, refused
                assert not held.done()
            balances = sorted(
                call.result(timeout=30).account.balance_fen for call in [held, *more] if not call.exception(timeout=30)
            )
        finally:
            for stub in stubs:
                stub.close()
        assert balances == [101_000, 102_000]
        assert family.ledger().balanced


# `gongji serve` in a process that may open at most 256 files (no preexec_fn: the test process has threads).
SERVE_WITH_256_FILES = (
    "import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)); "
    "sys.argv[0] = 'gongji'; runpy.run_module('services.cli', run_name='__main__')"
)


def test_connections_that_never_handshake_leave_the_server_its_files_and_newcomers_are_refused_at_once(tmp_path, pki):
    """Opening a TCP connection needs no certificate. Without a bound, a few hundred silent
    connections took every file the process may open: its database could not be opened (readiness
    NOT_SERVING) and a new caller hung until its deadline."""
    address = f"127.0.0.1:{_free_port()}"
    command = [sys.executable, "-c", SERVE_WITH_256_FILES, "serve", "binding", "--address", address,
               "--database", f"sqlite:///{tmp_path}/b.db", "--readiness-interval", "0.1",
               *pki.args(BINDING_SERVICE)]  # fmt: skip
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    silent: list[socket.socket] = []
    try:
        _wait_serving(pki, address, process)
        with pki.channel(address, OPERATOR) as connected:
            health = health_pb2_grpc.HealthStub(connected)
            health.Check(health_pb2.HealthCheckRequest(), timeout=5)  # connected before the flood
            host, port = address.rsplit(":", 1)
            silent = [socket.create_connection((host, int(port))) for _ in range(300)]
            for _ in range(10):  # the database is checked every 0.1 s meanwhile
                time.sleep(0.1)
                checked = health.Check(health_pb2.HealthCheckRequest(service=BINDING_NAME), timeout=5)
                assert checked.status == health_pb2.HealthCheckResponse.SERVING
            with pki.channel(address, OPERATOR) as newcomer, pytest.raises(grpc.RpcError) as refused:
                health_pb2_grpc.HealthStub(newcomer).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        for connection in silent:
            connection.close()
        assert health_of(pki, address, BINDING_NAME) == health_pb2.HealthCheckResponse.SERVING
    finally:
        for connection in silent:
            connection.close()
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_a_connection_that_does_not_finish_its_handshake_is_closed(databases, clock, pki, roles):
    with running_binding(databases, clock, pki, roles, limits=ServerLimits(handshake_timeout_ms=300)) as harness:
        host, port = harness.server.address.rsplit(":", 1)
        with socket.create_connection((host, int(port))) as silent:
            silent.settimeout(10)
            assert silent.recv(1) == b""  # closed by the server, long before the 10 s
