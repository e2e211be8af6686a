"""`gongji benchmark` runs end to end with tiny settings and prints one JSON object.

A smoke test of the tool, not a timed test: it never asserts on speed. It needs
PostgreSQL and pgbench; without them it skips, unless CI is set.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, text

POSTGRES_URL = os.environ.get("GONGJI_BENCHMARK_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _require(problem: str | None) -> None:
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI needs it: {problem}")
    pytest.skip(f"benchmark smoke test skipped: {problem} (set CI to make this a failure)")


def _postgres_problem() -> str | None:
    try:
        engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:
        return f"PostgreSQL at {POSTGRES_URL} is not reachable: {error.__class__.__name__}"
    return None


def test_benchmark_runs_and_prints_one_json_summary():
    _require(_postgres_problem())
    _require(None if shutil.which("pgbench") else "pgbench is not on PATH")

    finished = subprocess.run(
        [
            sys.executable, "-m", "services.cli", "benchmark", "--postgres-url", POSTGRES_URL,
            "--seconds", "1", "--warmup", "0", "--concurrency", "1,2", "--families", "4", "--json",
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert finished.returncode == 0, finished.stderr[-3000:]
    summary = json.loads(finished.stdout)  # the whole of stdout is the one object
    assert {
        "server_mode", "settlements_per_second", "levels", "two_payer", "ledger", "targets", "concurrency",
    } <= summary.keys()  # fmt: skip
    assert summary["server_mode"] == "subprocess"
    assert summary["transport"] == "mutual TLS"
    # By default one payment process per core (at most four): one process is bound by one core's Python.
    assert summary["payment_processes"] == min(len(os.sched_getaffinity(0)), 4)
    assert summary["settlements_per_second"] > 0
    assert summary["ledger"]["balanced"] is True
    assert summary["ledger"]["problems"] == []
    assert summary["two_payer"]["settlements_checked"] > 0
    assert summary["two_payer"]["with_two_legs"] == summary["two_payer"]["settlements_checked"]
    assert [level["concurrency"] for level in summary["levels"]] == [1, 2]
    for level in summary["levels"]:
        assert {"settlements_per_second", "p50_ms", "p99_ms", "errors", "echo", "pgbench", "ratios"} <= level.keys()
        assert level["pgbench"]["tps"] > 0
        assert level["echo"]["per_second"] > 0
        # The hypervisor's share is counted apart from other processes' (a shared host's slow run).
        assert {"other", "steal", "machine"} <= level["cpu_percent"].keys()
        # So does what PostgreSQL's checkpointer wrote (None only where /proc does not say).
        assert "checkpoint_write_mb" in level and "checkpoint_write_mb" in level["pgbench"]
        assert {"settlements_per_pgbench_tps", "p50_vs_echo_p50", "p99_vs_echo_p99"} <= level["ratios"].keys()
    assert summary["steal_cpu_percent_max"] >= 0
    assert summary["checkpoint_write_mb_max"] >= 0
    for target in summary["targets"].values():
        assert isinstance(target["met"], bool)

    # On by default: the same Settle load on binding and payment restarted --insecure, each call
    # naming its hospital in x-forwarded-client-cert, beside the mutual-TLS levels.
    security = summary["security"]
    assert [level["concurrency"] for level in security["levels"]] == [1, 2]
    for secured, level in zip(summary["levels"], security["levels"], strict=True):
        assert level["mutual_tls"]["settlements_per_second"] == secured["settlements_per_second"]
        assert level["plaintext"]["settlements_per_second"] > 0
        assert level["plaintext"]["errors"] == {}, "the access policy admitted every plaintext call"
        assert level["ratios"]["mtls_per_plaintext_settlements"] == pytest.approx(
            secured["settlements_per_second"] / level["plaintext"]["settlements_per_second"], abs=1e-3
        )
        assert level["security_cost"] == pytest.approx(1 - level["ratios"]["mtls_per_plaintext_settlements"], abs=1e-3)
        assert "postgres_cpu_mtls_per_plaintext" in level["ratios"]  # the control: TLS does not touch postgres
    assert security["steady"] in (True, False, None)
    assert security["two_payer"]["settlements_checked"] > 0
    assert security["two_payer"]["with_two_legs"] == security["two_payer"]["settlements_checked"]
    assert security["ledger"]["balanced"] is True
    assert security["ok"] is True

    # On by default: the same Settle load with --metrics-address scraped every second and every call
    # traced over OTLP, beside the mutual-TLS levels (observability off).
    observed = summary["observability"]
    assert [level["concurrency"] for level in observed["levels"]] == [1, 2]
    for off, level in zip(summary["levels"], observed["levels"], strict=True):
        assert level["off"]["settlements_per_second"] == off["settlements_per_second"]
        assert level["on"]["settlements_per_second"] > 0
        assert level["on"]["errors"] == {}
        assert level["ratios"]["on_per_off_settlements"] == pytest.approx(
            level["on"]["settlements_per_second"] / off["settlements_per_second"], abs=1e-3
        )
        assert {"on_per_off_payment_cpu", "on_per_off_binding_cpu", "postgres_cpu_on_per_off"} <= level["ratios"].keys()
    assert observed["spans_received"] > 0, "tracing was really on"
    assert observed["scrapes"] > 0, "/metrics was really served and scraped"
    assert observed["scrape_failures"] == {}
    assert observed["ledger"]["balanced"] is True
    assert observed["ok"] is True

    # On by default: the same families' bills as 2207 envelopes over HTTPS through the national-interface
    # gateway (hospital certificates), beside direct gRPC Settle at the same concurrency levels.
    gateway = summary["gateway"]
    assert gateway["settlements_per_second"] > 0
    assert [level["concurrency"] for level in gateway["levels"]] == [1, 2]
    for direct, level in zip(summary["levels"], gateway["levels"], strict=True):
        assert level["direct_settle"]["settlements_per_second"] == direct["settlements_per_second"]
        assert level["through_gateway"]["settlements_per_second"] > 0
        assert level["through_gateway"]["errors"] == {}, "every 2207 answered infcode 0"
        assert level["ratios"]["gateway_per_direct_settlements"] == pytest.approx(
            level["through_gateway"]["settlements_per_second"] / direct["settlements_per_second"], abs=1e-3
        )
    assert gateway["paid_by_accounts"]["with_no_cash"] == gateway["paid_by_accounts"]["settlements_checked"] > 0
    assert gateway["sample"]["psn_cash_pay"] == "0.00"
    assert gateway["ledger"]["balanced"] is True
    assert gateway["ok"] is True

    # On by default: right after the closed-loop levels, Poisson arrivals at 50/70/90 % of the best
    # closed-loop rate, each timed from its intended send time.
    opened = summary["open_loop"]
    assert opened["closed_loop_max_per_second"] == summary["settlements_per_second"]
    assert [level["share_of_closed_loop_max"] for level in opened["levels"]] == [0.5, 0.7, 0.9]
    for level in opened["levels"]:
        assert {"rate", "achieved_per_second", "p50_ms", "p99_ms", "p999_ms", "max_ms", "errors"} <= level.keys()
        assert level["calls"] > 0
        assert level["p50_ms"] <= level["p99_ms"] <= level["p999_ms"] <= level["max_ms"]
        assert level["cap_hits"] == 0
        # Beside it, PostgreSQL alone at the same rate, timed the same way: the commit latency under its p99.
        database = level["pgbench"]
        assert database["rate"] == level["rate"] and database["clients"] == 2 and database["tps"] > 0
        assert 0 < database["p50_ms"] <= database["p99_ms"] <= database["p999_ms"]
        assert level["p99_vs_pgbench_p99"] == pytest.approx(level["p99_ms"] / database["p99_ms"], abs=1e-3)
    assert opened["target"]["share"] == 0.7 and opened["target"]["p99_ms"] == 25.0
    assert isinstance(opened["target"]["met"], bool)
    assert opened["target"]["pgbench_p99_ms"] == opened["levels"][1]["pgbench"]["p99_ms"]

    cross = summary["cross_node"]  # on by default: a second payment node, "west", on its own database
    assert [level["concurrency"] for level in cross["levels"]] == [1, 2]
    for level in cross["levels"]:
        assert {"settlements_per_second", "p50_ms", "p99_ms", "errors", "single_node", "ratios"} <= level.keys()
        assert "cross_per_single_settlements" in level["ratios"]
    assert cross["legs"]["settlements_checked"] > 0
    assert cross["legs"]["with_a_leg_in_west"] == cross["legs"]["settlements_checked"]
    assert any(leg.endswith("@620100") for leg in cross["sample_legs"])
    assert {name: ledger["balanced"] for name, ledger in cross["ledgers"].items()} == {"east": True, "west": True}
    assert cross["clearing"]["agree"] is True
    assert cross["clearing"]["east"], "cross-node bills leave something one province owes the other"
    assert cross["ok"] is True


def test_cpu_taken_by_the_hypervisor_for_other_guests_is_reported_as_steal_and_not_as_other_processes():
    from services.benchmark.cpu import CpuMeter

    before = (0.0, {"client": {1: 0.0}, "payment": {2: 0.0}, "machine": {0: 0.0}, "steal": {0: 0.0}})
    after = (2.0, {"client": {1: 0.2}, "payment": {2: 1.0}, "machine": {0: 2.4}, "steal": {0: 0.6}})
    assert CpuMeter.percent(before, after) == {"client": 10.0, "payment": 50.0, "other": 30.0, "steal": 30.0,
                                               "machine": 120.0}  # fmt: skip


def test_a_service_of_several_processes_shows_each_process_after_its_total_without_counting_it_twice():
    from services.benchmark.cpu import CpuMeter

    before = (0.0, {"payment": {7: 0.0, 9: 0.0}, "postgres": {3: 0.0, 4: 0.0}, "machine": {0: 0.0}, "steal": {0: 0.0}})
    after = (2.0, {"payment": {7: 0.4, 9: 1.2}, "postgres": {3: 0.2, 4: 0.2}, "machine": {0: 3.0}, "steal": {0: 0.0}})
    assert list(CpuMeter.percent(before, after).items()) == [
        ("payment", 80.0), ("payment:1", 20.0), ("payment:2", 60.0), ("postgres", 20.0),
        ("other", 50.0), ("steal", 0.0), ("machine", 150.0),
    ]  # fmt: skip


def test_a_checkpoint_during_a_window_shows_what_postgres_wrote_for_it():
    from services.benchmark.cpu import CpuMeter

    _require(_postgres_problem())
    meter = CpuMeter()
    engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    table = f"checkpoint_probe_{os.getpid()}"
    try:
        with engine.connect() as connection:
            connection.execute(text(f"CREATE TABLE {table} AS SELECT g AS n, repeat('x', 200) AS pad "
                                    "FROM generate_series(1, 40000) AS g"))  # fmt: skip
            connection.execute(text("CHECKPOINT"))  # nothing of other tests' left to write
            # About 10 MB of pages dirtied in shared buffers, which only a checkpoint writes out.
            connection.execute(text(f"UPDATE {table} SET n = n + 1"))
            before = meter.snapshot()
            if before.checkpointer_bytes is None:
                pytest.skip("this machine's /proc does not show PostgreSQL's checkpointer (another user's process)")
            connection.execute(text("CHECKPOINT"))
            written = CpuMeter.checkpoint_mb(before, meter.snapshot())
            quiet = meter.snapshot()
            still = CpuMeter.checkpoint_mb(quiet, meter.snapshot())
            connection.execute(text(f"DROP TABLE {table}"))
    finally:
        engine.dispose()
    assert written is not None and written >= 5, "the updated pages are written by the checkpoint"
    assert still == 0.0, "no checkpoint, nothing written"


def test_the_plaintext_baseline_can_be_skipped():
    from services.cli import build_parser

    assert build_parser().parse_args(["benchmark"]).plaintext_baseline is True
    assert build_parser().parse_args(["benchmark", "--no-plaintext-baseline"]).plaintext_baseline is False


def test_the_observability_baseline_can_be_skipped():
    from services.cli import build_parser

    assert build_parser().parse_args(["benchmark"]).observability_baseline is True
    assert build_parser().parse_args(["benchmark", "--no-observability-baseline"]).observability_baseline is False


def test_the_gateway_phase_can_be_skipped():
    from services.cli import build_parser

    assert build_parser().parse_args(["benchmark"]).gateway is True
    assert build_parser().parse_args(["benchmark", "--no-gateway"]).gateway is False


def test_the_open_loop_phase_can_be_skipped_or_given_rates():
    from services.cli import build_parser

    assert build_parser().parse_args(["benchmark"]).open_loop is True
    assert build_parser().parse_args(["benchmark"]).rate == ()
    assert build_parser().parse_args(["benchmark", "--no-open-loop"]).open_loop is False
    assert build_parser().parse_args(["benchmark", "--rate", "50,120.5"]).rate == (50.0, 120.5)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["benchmark", "--rate", "0"])


def test_the_open_loop_schedule_is_poisson_with_the_right_mean():
    from services.benchmark.open_loop import poisson_schedule

    rate, seconds = 200.0, 100.0
    times = poisson_schedule(rate, seconds, random.Random(7))
    assert times == poisson_schedule(rate, seconds, random.Random(7)), "seeded: the same schedule again"
    assert times == sorted(times) and times[0] > 0 and times[-1] < seconds
    # Count: Poisson with mean rate × seconds = 20 000, standard deviation √20 000 ≈ 141.
    assert abs(len(times) - rate * seconds) < 5 * math.sqrt(rate * seconds)
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    mean = sum(gaps) / len(gaps)
    assert mean == pytest.approx(1 / rate, rel=0.03)
    # Exponential gaps: standard deviation equal to the mean, and P(gap > t) = exp(−rate·t).
    deviation = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps))
    assert deviation == pytest.approx(mean, rel=0.05)
    for t in (0.5 / rate, 1 / rate, 2 / rate):
        assert sum(g > t for g in gaps) / len(gaps) == pytest.approx(math.exp(-rate * t), abs=0.015)
    # Counts per second are Poisson too: variance about equal to the mean (not a regular tick).
    per_second = [0] * int(seconds)
    for t in times:
        per_second[int(t)] += 1
    counts_mean = sum(per_second) / len(per_second)
    variance = sum((c - counts_mean) ** 2 for c in per_second) / len(per_second)
    assert 0.6 < variance / counts_mean < 1.5


def test_open_loop_latency_counts_from_the_intended_send_time():
    """A target that blocks the whole event loop for 200 ms once (a stall the load generator shares,
    as with a GC pause or a saturated core): the calls due during the stall go out late, and their
    latency includes the wait. Timed from the real send they would look instant."""
    from services.benchmark.open_loop import drive_open

    stall = 0.2
    stalled: list[float] = []

    async def target() -> str:
        loop_time = asyncio.get_running_loop().time()
        if not stalled and loop_time >= started + 0.3:
            stalled.append(loop_time)
            time.sleep(stall)  # blocks everything: the generator cannot send on time either
        await asyncio.sleep(0.001)
        return "ok"

    async def run():
        nonlocal started
        started = asyncio.get_running_loop().time()
        return await drive_open(target, 200.0, 0.0, 1.0, random.Random(3))

    started = 0.0
    level = asyncio.run(run())
    summary = level.summary()
    assert stalled, "the stall happened"
    assert level.errors == {} and level.unfinished == 0
    assert level.intended == len(level.latencies_s) > 150
    # About 200/s × 0.2 s = 40 calls were due during the stall; those due in its first 150 ms waited
    # at least 50 ms. Timed from their real send (after the stall) they would all be about 1 ms.
    waited = [latency for latency in level.latencies_s if latency > 0.05]
    assert len(waited) >= 15, sorted(level.latencies_s)[-40:]
    assert summary["max_ms"] >= 180
    assert level.send_lag_max_s >= 0.15, "the generator itself was held up, and says so"
    assert summary["p50_ms"] < 50


def test_open_loop_keeps_sending_while_the_target_stalls():
    """A target that answers nothing for 200 ms (a server stall; the generator itself is free): the
    calls keep arriving on schedule, pile up in flight, and each one's latency includes the wait,
    where a closed loop of a few callers would have stopped sending and timed a handful of calls."""
    from services.benchmark.open_loop import drive_open

    async def run():
        loop = asyncio.get_running_loop()
        stall_from, stall_until = loop.time() + 0.3, loop.time() + 0.5

        async def target() -> str:
            now = loop.time()
            if stall_from <= now < stall_until:
                await asyncio.sleep(stall_until - now)
            await asyncio.sleep(0.001)
            return "ok"

        return await drive_open(target, 200.0, 0.0, 1.0, random.Random(5))

    level = asyncio.run(run())
    assert level.errors == {} and level.unfinished == 0
    assert level.max_in_flight >= 25, "sends went on at their times and did not wait for answers"
    waited = [latency for latency in level.latencies_s if latency > 0.05]
    assert len(waited) >= 15
    assert level.summary()["max_ms"] >= 180


def test_open_loop_rates_follow_the_closed_loop_maximum_or_the_given_rates():
    from services.benchmark.open_loop import open_loop_rates, open_loop_summary

    assert open_loop_rates(200.0, ()) == [(100.0, 0.5), (140.0, 0.7), (180.0, 0.9)]
    assert open_loop_rates(200.0, (50.0, 150.0)) == [(50.0, 0.25), (150.0, 0.75)]
    assert open_loop_summary(None, None) is None


def test_a_short_in_process_run_prints_2207_through_the_gateway_beside_direct_settle():
    _require(_postgres_problem())
    _require(None if shutil.which("pgbench") else "pgbench is not on PATH")

    finished = subprocess.run(
        [
            sys.executable, "-m", "services.cli", "benchmark", "--postgres-url", POSTGRES_URL, "--in-process",
            "--seconds", "0.5", "--warmup", "0", "--concurrency", "2", "--families", "2",
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert finished.returncode == 0, finished.stderr[-3000:]
    report = finished.stdout
    assert "2207 through the gateway" in report
    assert "2207÷Settle" in report
    assert re.search(r"gateway: (\d+) of \1 2207 answers had psn_cash_pay 0", report), report[-2000:]
    assert "ledger afterwards balanced" in report
    assert "PostgreSQL alone at the same rates (pgbench TPC-B -R, 2 clients" in report
    assert re.search(r"pgbench's own p99 at that rate: [0-9.]+ ms", report), report[-2000:]


def test_a_short_run_with_populations_prints_the_scale_table_in_its_json():
    _require(_postgres_problem())
    _require(None if shutil.which("pgbench") else "pgbench is not on PATH")

    finished = subprocess.run(
        [
            sys.executable, "-m", "services.cli", "benchmark", "--postgres-url", POSTGRES_URL, "--in-process",
            "--seconds", "0.5", "--warmup", "0", "--concurrency", "2", "--families", "6", "--no-gateway",
            "--no-open-loop", "--population", "6000,2000", "--scale-concurrency", "2", "--json",
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert finished.returncode == 0, finished.stderr[-3000:]
    scale = json.loads(finished.stdout)["scale"]
    assert scale["populations"] == [2000, 6000]  # smallest first
    assert scale["concurrency"] == 2
    rows = scale["rows"]
    assert [row["persons"] for row in rows] == [2000, 6000]
    for row in rows:
        assert row["families"] == row["persons"] // 3
        assert row["load_seconds"] > 0 and row["migrate_seconds"] > 0 and row["vacuum_checkpoint_seconds"] > 0
        assert row["database_bytes"]["binding"] > 0 and row["database_bytes"]["payment"] > 0
        assert row["families_sampled"] == 6
        assert row["closed_loop"]["settlements_per_second"] > 0
        assert row["closed_loop"]["errors"] == {}
        assert row["closed_loop"]["p50_ms"] <= row["closed_loop"]["p99_ms"]
        assert row["open_loop"]["rate"] == scale["open_loop_rate"]  # one offered rate for every population
        assert row["open_loop"]["calls"] > 0 and row["open_loop"]["errors"] == {}
        assert row["legs"] == {"2": sum(row["legs"].values())}, "every populated family's bill had two payers"
    assert scale["open_loop_rate"] == pytest.approx(0.7 * rows[0]["closed_loop"]["settlements_per_second"], abs=0.06)
    rate, p99 = scale["targets"]["rate"], scale["targets"]["p99_growth"]
    assert rate["target"] == 0.8 and p99["target"] == 1.25
    assert rate["value"] == pytest.approx(
        rows[1]["closed_loop"]["settlements_per_second"] / rows[0]["closed_loop"]["settlements_per_second"], abs=1e-3
    )
    assert p99["value"] == pytest.approx(rows[1]["open_loop"]["p99_ms"] / rows[0]["open_loop"]["p99_ms"], abs=1e-3)
    assert isinstance(rate["met"], bool) and isinstance(p99["met"], bool)
    assert scale["ok"] is True


def test_the_population_flag_takes_sizes_and_the_scale_table_its_own_settings():
    from services.cli import build_parser

    parse = build_parser().parse_args
    defaults = parse(["benchmark"])
    assert defaults.population == () and defaults.scale_concurrency == 8 and defaults.scale_rate is None
    assert parse(["benchmark", "--population", "10000,1000000,10000000"]).population == (10_000, 1_000_000, 10_000_000)
    assert parse(["benchmark", "--population", "1M,10k,10k"]).population == (10_000, 1_000_000)  # sorted, once each
    assert parse(["benchmark", "--population", "2.5k"]).population == (2_500,)
    chosen = parse(["benchmark", "--population", "10k", "--scale-concurrency", "32", "--scale-rate", "40"])
    assert (chosen.scale_concurrency, chosen.scale_rate) == (32, 40.0)
    for wrong in ("0", "2", "ten", ""):
        with pytest.raises(SystemExit):
            parse(["benchmark", "--population", wrong])


def test_benchmark_reports_an_unreachable_database_instead_of_a_traceback():
    finished = subprocess.run(
        [
            sys.executable, "-m", "services.cli", "benchmark", "--json", "--seconds", "1", "--families", "1",
            "--postgres-url", "postgresql+psycopg://postgres@127.0.0.1:1/postgres",
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert finished.returncode == 2
    assert finished.stdout == ""
    assert "not reachable" in finished.stderr


def test_the_benchmark_counts_every_process_listening_on_a_shared_port():
    """The load waits for every sibling of `--processes N`: the kernel spreads connections only
    over the sockets listening when each connection opens."""
    import socket

    from services.benchmark.processes import listening_sockets, wait_until_listening

    first = socket.socket()
    first.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    first.bind(("127.0.0.1", 0))
    port = first.getsockname()[1]
    second = socket.socket()
    second.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    second.bind(("127.0.0.1", port))
    with first, second:
        first.listen()
        assert listening_sockets(port) == 1
        second.listen()
        assert listening_sockets(port) == 2
        wait_until_listening(None, f"127.0.0.1:{port}", 2, timeout=5)


def test_a_free_port_lies_below_the_kernels_ephemeral_range_so_no_outgoing_connection_holds_it() -> None:
    import socket
    from pathlib import Path

    from services.benchmark.processes import free_port

    ephemeral_start = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    # Seeding the shared random number generator does not make two fixtures pick the same port.
    random.seed(7)
    first = free_port(3)
    random.seed(7)
    second = free_port(3)

    assert first != second
    for port in (first, second):
        assert port >= 10_000 and port + 2 < ephemeral_start
        with socket.socket() as server:
            server.bind(("127.0.0.1", port + 2))


def test_no_port_is_handed_out_twice_by_one_process_even_before_its_server_binds_it():
    """A test picks a server's address and its metrics ports before any of them is bound; two
    picks that overlapped once made a server find its own metrics listener on its port."""
    from services.benchmark.processes import free_port

    taken: list[int] = []
    for count in (1, 2, 1, 3) * 50:
        first = free_port(count)
        taken += range(first, first + count)
    assert len(taken) == len(set(taken))
