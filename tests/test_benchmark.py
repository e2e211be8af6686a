"""`gongji benchmark` runs end to end with tiny settings and prints one JSON object.

A smoke test of the tool, not a timed test: it never asserts on speed. It needs
PostgreSQL and pgbench; without them it skips, unless CI is set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

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
        assert {"settlements_per_pgbench_tps", "p50_vs_echo_p50", "p99_vs_echo_p99"} <= level["ratios"].keys()
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


def test_the_plaintext_baseline_can_be_skipped():
    from services.cli import build_parser

    assert build_parser().parse_args(["benchmark"]).plaintext_baseline is True
    assert build_parser().parse_args(["benchmark", "--no-plaintext-baseline"]).plaintext_baseline is False


def test_the_observability_baseline_can_be_skipped():
    from services.cli import build_parser

    assert build_parser().parse_args(["benchmark"]).observability_baseline is True
    assert build_parser().parse_args(["benchmark", "--no-observability-baseline"]).observability_baseline is False


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
