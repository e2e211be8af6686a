"""The run's summary, one JSON-ready dict: each level beside its baselines (echo, pgbench) with
ratios and CPU cost, the two-payer and ledger checks, the project's targets, and the gateway,
cost-of-security, cost-of-observability and cross-node comparisons. It is what `--json` prints and what
the text report reads."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from services.benchmark.cpu import cpu_cost
from services.benchmark.deployment import EAST_PROVINCES, WEST_PROVINCES
from services.benchmark.driver import Level
from services.benchmark.open_loop import open_loop_summary
from services.benchmark.options import Options

# The project's targets, checked at the highest concurrency measured.
TARGET_SHARE_OF_PGBENCH = 0.25
TARGET_P99_MS = 50.0
TARGET_CALLERS = 32
# Postgres's CPU per settlement does not depend on the transport; when it moved more than this
# between the mutual-TLS and the plaintext phase, the machine (a shared host) or the database did.
STEADY_CONTROL = (0.9, 1.1)
# The repository measured: services/benchmark/summary.py is three levels below it.
_REPOSITORY = Path(os.path.abspath(__file__)).parents[2]


def _level_row(level: Level) -> dict[str, Any]:
    return {
        "concurrency": level.concurrency,
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in level.summary.items()},
        "errors": level.errors,
        "cpu_percent": level.cpu_percent,
        "checkpoint_write_mb": level.checkpoint_mb,
    }


def settle_row(level: Level, serving: tuple[str, ...]) -> dict[str, Any]:
    """A Settle level as the summary shows it, with the CPU each of `serving` spent per settlement."""
    row = _level_row(level)
    row["settlements_per_second"] = row.pop("per_second")
    row["cpu_cost"] = cpu_cost(row["cpu_percent"], row["settlements_per_second"], serving)
    return row


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def summarise(
    options: Options,
    gongji: dict[str, Any],
    echo: list[Level],
    pgbench: list[dict[str, Any]],
    profile: dict[str, Any] | None,
    cross: dict[str, Any] | None = None,
    plain: dict[str, Any] | None = None,
    observed: dict[str, Any] | None = None,
    through: dict[str, Any] | None = None,
    scale: dict[str, Any] | None = None,
    pgbench_open: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    rows = []
    for settle, ping, pg in zip(gongji["levels"], echo, pgbench, strict=True):
        # In-process, "client" is the servers and the load generator together.
        serving = ("client", "postgres") if options.in_process else ("binding", "payment", "postgres")
        row = settle_row(settle, serving)
        row["echo"] = _level_row(ping)
        row["pgbench"] = pg
        row["echo"]["cpu_cost"] = cpu_cost(row["echo"]["cpu_percent"], row["echo"]["per_second"], ("echo",))
        pg["cpu_cost"] = cpu_cost(pg["cpu_percent"], pg["tps"], ("postgres",))
        row["ratios"] = {
            "settlements_per_pgbench_tps": ratio(row["settlements_per_second"], pg["tps"]),
            "ceiling_settlements_per_pgbench_tps": ratio(
                row["cpu_cost"].get("ceiling_per_second"), pg["cpu_cost"].get("ceiling_per_second")
            ),
            "p50_vs_echo_p50": ratio(row["p50_ms"], row["echo"]["p50_ms"]),
            "p99_vs_echo_p99": ratio(row["p99_ms"], row["echo"]["p99_ms"]),
            "settlements_per_echo_call": ratio(row["settlements_per_second"], row["echo"]["per_second"]),
        }
        rows.append(row)
    top = max(rows, key=lambda r: r["concurrency"])
    share = top["ratios"]["settlements_per_pgbench_tps"]
    legs = gongji["legs"]
    answered = sum(legs.values())
    security = _security_summary(plain, rows)
    observability = _observability_summary(observed, rows)
    gateway = _gateway_summary(through, rows, options.in_process)
    opened = gongji.get("open_loop")
    open_loop = open_loop_summary(opened, opened.get("closed_loop_concurrency") if opened else None, pgbench_open)
    windows = [
        *rows,
        *(r["echo"] for r in rows),
        *(r["pgbench"] for r in rows),
        *(r["plaintext"] for r in (security or {}).get("levels", [])),
        *(r["on"] for r in (observability or {}).get("levels", [])),
        *(r["through_gateway"] for r in (gateway or {}).get("levels", [])),
        *(open_loop or {}).get("levels", []),
        *(level["pgbench"] for level in (open_loop or {}).get("levels", []) if level.get("pgbench")),
        *(row["closed_loop"] for row in (scale or {}).get("rows", [])),
        *(row["open_loop"] for row in (scale or {}).get("rows", []) if row["open_loop"]),
    ]
    return {
        "server_mode": "in-process" if options.in_process else "subprocess",
        # Settle, echo and the cross-node phase; the "security" part adds a plaintext run.
        "transport": "mutual TLS",
        # Payment nodes keep ResolvePayers answers, current by the binding service's payer watch.
        "payer_cache": options.payer_cache,
        # A cross-node bill whose other node's payers come last is captured there in one call.
        "one_round": options.one_round,
        "payment_processes": options.payment_processes,
        "cpu_count": os.cpu_count(),
        "families": options.families,
        "seconds": options.seconds,
        "warmup": options.warmup,
        "concurrency": list(options.concurrency),
        "server_log_level": options.server_log_level.upper(),
        "code": _code_version(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "other_cpu_percent_max": max((level["cpu_percent"].get("other", 0.0) for level in windows), default=0.0),
        "steal_cpu_percent_max": max((level["cpu_percent"].get("steal", 0.0) for level in windows), default=0.0),
        "checkpoint_write_mb_max": max((level.get("checkpoint_write_mb") or 0.0 for level in windows), default=0.0),
        "settlements_per_second": max(r["settlements_per_second"] for r in rows),
        "levels": rows,
        "two_payer": {
            "settlements_checked": answered,
            "with_two_legs": legs.get(2, 0),
            "fraction": round(legs.get(2, 0) / answered, 4) if answered else 0.0,
            "legs_histogram": {str(k): v for k, v in sorted(legs.items())},
        },
        "ledger": {**gongji["ledger"], "credits": 2 * options.families, "settlements": gongji["settlements_made"]},
        "targets": {
            "settlements_vs_pgbench": {
                "target": TARGET_SHARE_OF_PGBENCH,
                "concurrency": top["concurrency"],
                "value": share,
                "met": share is not None and share >= TARGET_SHARE_OF_PGBENCH,
                # The same comparison on CPU cost, which a busy machine hardly skews.
                "ceiling_value": top["ratios"]["ceiling_settlements_per_pgbench_tps"],
            },
            "p99_ms": {
                "target": TARGET_P99_MS,
                "concurrency": top["concurrency"],
                "value": top["p99_ms"],
                "met": top["p99_ms"] < TARGET_P99_MS,
            },
        },
        "profile": profile,
        "open_loop": open_loop,
        "gateway": gateway,
        "security": security,
        "observability": observability,
        "cross_node": _cross_summary(cross, rows),
        "scale": scale,  # services/benchmark/scale.py: scale_summary
    }


def _gateway_summary(
    through: dict[str, Any] | None, rows: list[dict[str, Any]], in_process: bool
) -> dict[str, Any] | None:
    """Each level of 2207 through the gateway beside direct gRPC Settle at the same concurrency, from
    the same run, families and servers. "gateway_per_direct_settlements" is 2207/s ÷ Settle/s."""
    if through is None:
        return None
    direct = {row["concurrency"]: row for row in rows}
    serving = ("client", "postgres") if in_process else ("gateway", "binding", "payment", "postgres")
    levels = []
    for level in through["levels"]:
        row = settle_row(level, serving)
        alone = direct[level.concurrency]
        levels.append(
            {
                "concurrency": level.concurrency,
                "direct_settle": {
                    **{key: alone[key] for key in ("settlements_per_second", "p50_ms", "p99_ms", "errors")},
                    "serving_ms_per_call": alone["cpu_cost"].get("serving_ms_per_call"),
                },
                "through_gateway": row,
                "ratios": {
                    "gateway_per_direct_settlements": ratio(
                        row["settlements_per_second"], alone["settlements_per_second"]
                    ),
                    "gateway_per_direct_p50": ratio(row["p50_ms"], alone["p50_ms"]),
                    "gateway_per_direct_p99": ratio(row["p99_ms"], alone["p99_ms"]),
                    "gateway_per_direct_serving_cpu": ratio(
                        row["cpu_cost"].get("serving_ms_per_call"), alone["cpu_cost"].get("serving_ms_per_call")
                    ),
                },
            }
        )
    made = through["settlements_made"]
    return {
        "direct": "gRPC Settle over mutual TLS, each bill sent by its hospital (the single-node phase)",
        "through_gateway": (
            "2207 envelopes POSTed over HTTPS with the hospital's client certificate on keep-alive connections "
            "(aiohttp), to the gateway, which settles each on the same payment service over mutual-TLS gRPC "
            "as spiffe://gongji/service/gateway acting for the hospital; the same families, after the direct phase"
        ),
        "settlements_per_second": max(level["through_gateway"]["settlements_per_second"] for level in levels),
        "levels": levels,
        "sample": through["sample"],
        "settlements": made,
        "paid_by_accounts": {"settlements_checked": made, "with_no_cash": through["paid_by_accounts"]},
        "ledger": through["ledger"],
        "ok": through["ledger"]["balanced"] and made > 0,
    }


def _security_summary(plain: dict[str, Any] | None, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Each plaintext level beside the mutual-TLS one at the same concurrency: what TLS costs.
    "security_cost" is the share of the plaintext rate that mutual TLS gives up (1 − mTLS ÷ plaintext).
    The phases run one after the other, so "postgres_cpu_mtls_per_plaintext" is the control: TLS does
    not touch the database, and a ratio far from 1 means the machine's speed changed in between."""
    if plain is None:
        return None
    secured = {row["concurrency"]: row for row in rows}
    levels = []
    for level in plain["levels"]:
        row = settle_row(level, ("binding", "payment", "postgres"))
        tls = secured[level.concurrency]
        rate_ratio = ratio(tls["settlements_per_second"], row["settlements_per_second"])
        control = ratio(
            tls["cpu_cost"].get("ms_per_call", {}).get("postgres"),
            row["cpu_cost"].get("ms_per_call", {}).get("postgres"),
        )
        levels.append(
            {
                "concurrency": level.concurrency,
                "mutual_tls": {
                    **{key: tls[key] for key in ("settlements_per_second", "p50_ms", "p99_ms", "errors")},
                    "serving_ms_per_call": tls["cpu_cost"].get("serving_ms_per_call"),
                },
                "plaintext": row,
                "ratios": {
                    "mtls_per_plaintext_settlements": rate_ratio,
                    "mtls_per_plaintext_p50": ratio(tls["p50_ms"], row["p50_ms"]),
                    "mtls_per_plaintext_p99": ratio(tls["p99_ms"], row["p99_ms"]),
                    "mtls_per_plaintext_serving_cpu": ratio(
                        tls["cpu_cost"].get("serving_ms_per_call"), row["cpu_cost"].get("serving_ms_per_call")
                    ),
                    "postgres_cpu_mtls_per_plaintext": control,
                },
                "security_cost": round(1 - rate_ratio, 3) if rate_ratio is not None else None,
            }
        )
    legs = plain["legs"]
    controls = [level["ratios"]["postgres_cpu_mtls_per_plaintext"] for level in levels]
    return {
        "mutual_tls": "every port mutual TLS; each call presents its caller's certificate",
        "plaintext": (
            "binding and east restarted with --insecure on the same databases and families; each call names "
            "its caller in x-forwarded-client-cert, so the access policy still judges it"
        ),
        "levels": levels,
        # Whether the control stayed within STEADY_CONTROL at every level (None: no CPU figures).
        "steady": all(STEADY_CONTROL[0] <= c <= STEADY_CONTROL[1] for c in controls) if None not in controls else None,
        "settlements": plain["settlements_made"],
        "two_payer": {"settlements_checked": sum(legs.values()), "with_two_legs": legs.get(2, 0)},
        "ledger": plain["ledger"],
        "ok": plain["ledger"]["balanced"],
    }


def _observability_summary(observed: dict[str, Any] | None, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Each level with metrics and traces on beside the mutual-TLS one (observability off) at the same
    concurrency. "observability_cost" is the share of the rate given up (1 − on ÷ off). The postgres
    control is weaker than the security comparison's: each scrape reads its gauges from the database,
    so "postgres_cpu_on_per_off" carries that read as well as any change in the machine's speed."""
    if observed is None:
        return None
    unobserved = {row["concurrency"]: row for row in rows}
    serving = ("binding", "payment", "postgres")
    levels = []
    for level in observed["levels"]:
        row = settle_row(level, serving)
        off = unobserved[level.concurrency]
        off_ms, on_ms = off["cpu_cost"].get("ms_per_call", {}), row["cpu_cost"].get("ms_per_call", {})
        rate_ratio = ratio(row["settlements_per_second"], off["settlements_per_second"])
        levels.append(
            {
                "concurrency": level.concurrency,
                "off": {
                    **{key: off[key] for key in ("settlements_per_second", "p50_ms", "p99_ms", "errors")},
                    "ms_per_call": {name: off_ms.get(name) for name in serving},
                    "serving_ms_per_call": off["cpu_cost"].get("serving_ms_per_call"),
                },
                "on": row,
                "ratios": {
                    "on_per_off_settlements": rate_ratio,
                    "on_per_off_p50": ratio(row["p50_ms"], off["p50_ms"]),
                    "on_per_off_p99": ratio(row["p99_ms"], off["p99_ms"]),
                    "on_per_off_payment_cpu": ratio(on_ms.get("payment"), off_ms.get("payment")),
                    "on_per_off_binding_cpu": ratio(on_ms.get("binding"), off_ms.get("binding")),
                    "on_per_off_serving_cpu": ratio(
                        row["cpu_cost"].get("serving_ms_per_call"), off["cpu_cost"].get("serving_ms_per_call")
                    ),
                    "postgres_cpu_on_per_off": ratio(on_ms.get("postgres"), off_ms.get("postgres")),
                },
                "observability_cost": round(1 - rate_ratio, 3) if rate_ratio is not None else None,
            }
        )
    legs = observed["legs"]
    return {
        "off": "mutual TLS, no --metrics-address, no OTEL_* variables (the single-node phase)",
        "on": (
            "binding and east restarted with mutual TLS, --metrics-address (each /metrics scraped every second) and "
            "OTEL_TRACES_EXPORTER=otlp to a receiver in the benchmark's process (default sampler: every call traced)"
        ),
        "levels": levels,
        "spans_received": observed["spans_received"],
        "export_requests": observed["export_requests"],
        # With the warm-ups and the sample; the receiver counts every span of every settlement.
        "spans_per_settlement": round(observed["spans_received"] / observed["settlements_made"], 1)
        if observed["settlements_made"]
        else None,
        "scrapes": observed["scrapes"],
        "scrape_failures": observed["scrape_failures"],
        "scrape_ms_mean": observed["scrape_ms_mean"],
        "settlements": observed["settlements_made"],
        "two_payer": {"settlements_checked": sum(legs.values()), "with_two_legs": legs.get(2, 0)},
        "ledger": observed["ledger"],
        "ok": observed["ledger"]["balanced"] and observed["spans_received"] > 0 and observed["scrapes"] > 0,
    }


def _cross_summary(cross: dict[str, Any] | None, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The cross-node levels, each beside the single-node one at the same concurrency."""
    if cross is None:
        return None
    single = {row["concurrency"]: row for row in rows}
    levels = []
    for level in cross["levels"]:
        row = settle_row(level, ("binding", "payment", "west", "postgres"))
        alone = single[level.concurrency]
        row["single_node"] = {k: alone[k] for k in ("settlements_per_second", "p50_ms", "p99_ms")}
        row["ratios"] = {
            "cross_per_single_settlements": ratio(row["settlements_per_second"], alone["settlements_per_second"]),
            "cross_per_single_p50": ratio(row["p50_ms"], alone["p50_ms"]),
            "cross_per_single_p99": ratio(row["p99_ms"], alone["p99_ms"]),
        }
        levels.append(row)
    checked = cross["checked"]
    return {
        "nodes": {"east": list(EAST_PROVINCES), "west": list(WEST_PROVINCES)},
        "families": cross["families"],
        "settlements_per_second": max(r["settlements_per_second"] for r in levels),
        "levels": levels,
        "sample_legs": cross["sample_legs"],
        "legs": {
            "settlements_checked": checked["settlements"],
            "with_two_legs": checked["two_legs"],
            "with_a_leg_in_west": checked["west_leg"],
        },
        "settlements": cross["settlements_made"],
        "ledgers": cross["ledgers"],
        "clearing": cross["clearing"],
        "ok": all(ledger["balanced"] for ledger in cross["ledgers"].values()) and cross["clearing"]["agree"],
    }


def _code_version() -> dict[str, Any]:
    """The commit measured, and whether the working tree differed from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=_REPOSITORY, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=_REPOSITORY, capture_output=True,
            text=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(dirty) if commit else None}
