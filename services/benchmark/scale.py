"""The scale phase (`--population N[,N…]`): does a settlement cost the same with ten thousand insured
persons as with ten million?

For each population, smallest first: two fresh scratch databases (binding, payment), migrated and
loaded with COPY by `gongji populate` (services/population: families of three, two bindings each,
personal accounts with an opening balance, and a year of journal history for the active share), then
vacuumed and checkpointed (as a database long in service would be); then binding and payment "east"
start on them as the single-node phase starts its servers (mutual TLS, every bill settled by its
hospital), a uniform random sample of the populated families is read back from the binding database
(`--families` of them, from every region), and their children's bills are settled at their own
region's hospitals: a closed loop at `--scale-concurrency` callers, then an open loop (Poisson
arrivals, timed from the intended send) at one fixed rate for every population — OPEN_LOOP_SHARE of
the smallest population's closed-loop rate, or `--scale-rate` — so the p99s compare at the same
offered load. The servers then stop and the databases are dropped before the next population is
loaded. The project's targets: the rate at the largest population is at least TARGET_RATE_SHARE of the
rate at the smallest, and the open-loop p99 grows at most TARGET_P99_GROWTH times."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import psycopg

from services.benchmark.cpu import CpuMeter
from services.benchmark.deployment import institutions
from services.benchmark.desk import Connect, open_desk
from services.benchmark.driver import Level, drive
from services.benchmark.errors import BenchmarkError
from services.benchmark.families import Family, settle_request
from services.benchmark.open_loop import OpenLevel, drive_open, open_level_row
from services.benchmark.options import Options
from services.benchmark.processes import Scratch
from services.benchmark.progress import level_line, say
from services.benchmark.servers import Servers, start_in_process_servers, start_subprocess_servers
from services.benchmark.settle_load import SettleLoad
from services.benchmark.summary import ratio, settle_row
from services.common.database import migrate
from services.common.security.development_pki import DevelopmentPKI
from services.population import PopulationError, populate
from services.population.copying import conninfo
from services.population.sample import sample_families

OPEN_LOOP_SHARE = 0.7  # of the smallest population's closed-loop rate, unless --scale-rate
TARGET_RATE_SHARE = 0.8
TARGET_P99_GROWTH = 1.25
POPULATION_SEED = 1  # `gongji populate --seed`; its other settings are populate's defaults
_LOAD_SEED = 20261212


def measure_scale(options: Options, scratch: Scratch, pki: DevelopmentPKI, connect: Connect) -> dict[str, Any]:
    """Every population of `options.population`, in order (smallest first); the open-loop rate is
    fixed by the first one's closed loop unless `options.scale_rate` names it."""
    rate = options.scale_rate
    sizes = []
    for persons in options.population:
        sizes.append(_one_population(options, scratch, pki, connect, persons, rate))
        rate = sizes[-1]["open_rate"] if rate is None else rate
    return {"sizes": sizes, "open_rate": rate}


def _one_population(
    options: Options, scratch: Scratch, pki: DevelopmentPKI, connect: Connect, persons: int, rate: float | None
) -> dict[str, Any]:
    say(f"scale: {persons:,} insured persons: fresh scratch databases, migrated, then loaded with COPY …")
    names = {service: f"scale{persons}_{service}" for service in ("binding", "payment")}
    try:
        started = time.perf_counter()
        urls = {service: scratch.create_database(name) for service, name in names.items()}
        for service, url in urls.items():
            migrate(service, url)
        migrated = time.perf_counter() - started
        try:
            loaded = populate(urls["binding"], urls["payment"], persons, seed=POPULATION_SEED)
        except PopulationError as problem:
            raise BenchmarkError(f"scale: {problem}") from None
        say(
            f"  loaded in {loaded.seconds:.1f}s (migrations {migrated:.1f}s before it): binding database "
            f"{loaded.sizes['binding'][1]}, payment database {loaded.sizes['payment'][1]}"
        )
        quiesced = _quiesce(list(urls.values()))
        say(f"  VACUUM and CHECKPOINT in {quiesced:.1f}s, so neither autovacuum nor the load's writes fall in a window")
        started = time.perf_counter()
        sampled = sample_families(urls["binding"], options.families)
        families = [Family(s.child, (s.grantors[0], s.grantors[1]), s.admdvs) for s in sampled if len(s.grantors) == 2]
        if not families:
            raise BenchmarkError(f"scale: no family with two ACTIVE bindings among {persons:,} persons")
        say(f"  {len(families)} families sampled in {time.perf_counter() - started:.1f}s, from every region")
        start = start_in_process_servers if options.in_process else start_subprocess_servers
        servers = start(scratch, replace(options, cross_node=False, profile=None), urls, pki)
        try:
            meter = CpuMeter(servers.pids, scratch.marker)
            closed, opened, rate, legs = asyncio.run(
                _settle(options, servers, connect, families, rate, meter, f"scale {persons:,}")
            )
        finally:
            servers.stop()
    finally:
        for name in names.values():
            scratch.drop_database(name)
    return {
        "persons": persons,
        "families": loaded.families,
        "active_families": loaded.active_families,
        "settlements_loaded": loaded.settlements,
        "rows_loaded": sum(table["rows"] for table in loaded.tables.values()),
        "migrate_seconds": round(migrated, 2),
        "load_seconds": round(loaded.seconds, 2),
        "vacuum_checkpoint_seconds": round(quiesced, 2),
        "database_bytes": {service: size[0] for service, size in loaded.sizes.items()},
        "database_size": {service: size[1] for service, size in loaded.sizes.items()},
        "families_sampled": len(families),
        "closed": closed,
        "opened": opened,
        "open_rate": rate,
        "legs": dict(legs),
    }


def _quiesce(urls: list[str]) -> float:
    """VACUUM each freshly loaded database (its inserts would soon start autovacuum, which reads every
    page; a database in service has long been vacuumed), then CHECKPOINT, so the load's dirty
    buffers are written before the windows, not during them. Returns the seconds it took."""
    started = time.perf_counter()
    for url in urls:
        with psycopg.connect(conninfo(url, "a scale database"), autocommit=True) as connection:
            connection.execute("VACUUM")
            if url == urls[-1]:
                try:
                    connection.execute("CHECKPOINT")  # one for the whole server
                except psycopg.errors.InsufficientPrivilege:
                    say("  CHECKPOINT skipped: the --postgres-url role may not (superuser or pg_checkpoint)")
    return time.perf_counter() - started


async def _settle(
    options: Options,
    servers: Servers,
    connect: Connect,
    families: list[Family],
    rate: float | None,
    meter: CpuMeter,
    what: str,
) -> tuple[Level, OpenLevel | None, float, Counter[int]]:
    """A sample bill, the closed loop, then the open loop at `rate` (None: OPEN_LOOP_SHARE of this
    closed loop's rate); each bill is settled by a hospital of the child's region."""
    hospitals = tuple(sorted({code for family in families for code in institutions(family.admdvs)}))
    async with open_desk(servers.binding_address, servers.payment_address, connect, hospitals) as desk:
        rng = random.Random(_LOAD_SEED)
        sample = (await desk.settle(settle_request(families[0], rng))).settlement
        if len(sample.legs) != 2 or sample.cash_pay_fen:
            raise BenchmarkError(f"{what}: expected a two-payer settlement, got {len(sample.legs)} legs")
        legs: Counter[int] = Counter()

        def counted(answer: Any) -> None:
            legs.update([len(answer.settlement.legs)])

        load = SettleLoad(desk, families, rng)
        closed = await drive(load.settle, options.scale_concurrency, options.warmup, options.seconds, counted, meter)
        say(level_line(what, closed))
        if rate is None:
            rate = round(OPEN_LOOP_SHARE * closed.summary["per_second"], 1)
        opened = None
        if rate > 0:
            opened = await drive_open(
                load.settle, rate, options.warmup, options.seconds, random.Random(_LOAD_SEED), counted, meter
            )
            s = opened.summary()
            say(
                f"  {what} open loop {rate:.1f}/s: achieved {opened.achieved_per_second:.1f}/s  "
                f"p50 {s['p50_ms']:.2f} ms  p99 {s['p99_ms']:.2f} ms  max {s['max_ms']:.2f} ms"
            )
    return closed, opened, rate, legs


def scale_summary(measured: dict[str, Any] | None, options: Options) -> dict[str, Any] | None:
    """The scale table as the JSON summary carries it, and the project's two targets, comparing the
    largest population with the smallest (`met` is None with fewer than two populations, or, for
    the p99, without an open loop at both)."""
    if measured is None:
        return None
    serving = ("client", "postgres") if options.in_process else ("binding", "payment", "postgres")
    rows = []
    for size in measured["sizes"]:
        closed, opened = size.pop("closed"), size.pop("opened")
        size.pop("open_rate")
        rows.append(
            {
                **size,
                "closed_loop": settle_row(closed, serving),
                "open_loop": open_level_row(opened, None) if opened is not None else None,
            }
        )
    smallest, largest = (rows[0], rows[-1]) if len(rows) > 1 else (None, None)
    rate_share = p99_growth = closed_p99_growth = None
    if smallest is not None and largest is not None:
        rate_share = ratio(
            largest["closed_loop"]["settlements_per_second"], smallest["closed_loop"]["settlements_per_second"]
        )
        closed_p99_growth = ratio(largest["closed_loop"]["p99_ms"], smallest["closed_loop"]["p99_ms"])
        if smallest["open_loop"] and largest["open_loop"]:
            p99_growth = ratio(largest["open_loop"]["p99_ms"], smallest["open_loop"]["p99_ms"])
    rate_from = f"{OPEN_LOOP_SHARE:.0%} of the smallest population's closed-loop rate"
    return {
        "populations": [row["persons"] for row in rows],
        "databases": "fresh scratch databases per population, migrated, loaded with COPY (gongji populate "
        f"--seed {POPULATION_SEED}, its defaults otherwise), dropped after the population's run",
        "sample": f"up to {options.families} families drawn uniformly from all populated families (--families)",
        "concurrency": options.scale_concurrency,
        "open_loop_rate": measured["open_rate"],
        "open_loop_rate_from": "--scale-rate" if options.scale_rate is not None else rate_from,
        "seconds": options.seconds,
        "warmup": options.warmup,
        "rows": rows,
        "targets": {
            "rate": {
                "target": TARGET_RATE_SHARE,
                "what": "closed-loop settlements/s at the largest population ÷ at the smallest",
                "value": rate_share,
                "met": rate_share >= TARGET_RATE_SHARE if rate_share is not None else None,
            },
            "p99_growth": {
                "target": TARGET_P99_GROWTH,
                "what": "open-loop p99 at the largest population ÷ at the smallest, at the same offered rate",
                "value": p99_growth,
                "met": p99_growth <= TARGET_P99_GROWTH if p99_growth is not None else None,
                "closed_loop_value": closed_p99_growth,
            },
        },
        "ok": all(row["closed_loop"]["settlements_per_second"] > 0 for row in rows),
    }
