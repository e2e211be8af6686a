"""The single-node phase: N families registered entirely in Nanjing, then the Settle load on
binding and payment "east" over mutual TLS (the phase `--profile` measures), then the same load
open-loop (Poisson arrivals at shares of the best closed-loop rate, or at `--rate`) on the same
servers, before the ledger check."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from services.benchmark.cpu import CpuMeter
from services.benchmark.desk import Connect, open_desk
from services.benchmark.errors import BenchmarkError
from services.benchmark.families import Family, register_family, settle_request
from services.benchmark.open_loop import measure_open_loop
from services.benchmark.options import Options
from services.benchmark.profiling import PROFILE_START_SIGNAL, PROFILE_STOP_SIGNAL, mark_profiles
from services.benchmark.progress import say
from services.benchmark.servers import Servers
from services.benchmark.settle_load import SettleLoad, ledger_summary


async def measure_settlements(options: Options, servers: Servers, connect: Connect, meter: CpuMeter) -> dict[str, Any]:
    async with open_desk(servers.binding_address, servers.payment_address, connect) as desk:
        say(f"registering {options.families} families (3 persons, 2 bindings, 2 credits each) …")
        started = time.perf_counter()
        gate = asyncio.Semaphore(16)

        async def register(number: int) -> Family:
            async with gate:
                return await register_family(number, desk)

        families = await asyncio.gather(*(register(n) for n in range(options.families)))
        say(f"  done in {time.perf_counter() - started:.1f}s")

        rng = random.Random(20260301)
        sample = (await desk.settle(settle_request(families[0], rng))).settlement
        sources = [ppb.PaymentSource.Name(leg.source) for leg in sample.legs]
        if len(sample.legs) != 2 or sample.cash_pay_fen:
            raise BenchmarkError(f"expected a two-payer settlement, got legs {sources}, cash {sample.cash_pay_fen}")
        say(f"a sample bill settles in 2 legs: {', '.join(sources)}")
        if options.profile:
            mark_profiles(options.profile, servers.pids, PROFILE_START_SIGNAL)

        legs: Counter[int] = Counter()
        load = SettleLoad(desk, families, rng)
        levels = await load.run_levels(
            "settle", options, meter, lambda answer: legs.update([len(answer.settlement.legs)])
        )

        if options.profile:
            mark_profiles(options.profile, servers.pids, PROFILE_STOP_SIGNAL)
        open_loop, open_settled = None, 0
        best = max(levels, key=lambda level: level.summary["per_second"])
        if options.open_loop:
            say(
                "open loop: Poisson arrivals, each Settle sent at its intended time and timed from it, at "
                + (", ".join(f"{rate:g}/s" for rate in options.rates) if options.rates else "50/70/90 % of")
                + f" the best closed-loop rate ({best.summary['per_second']:.1f}/s at {best.concurrency} callers)"
            )
            opened = SettleLoad(desk, families, random.Random(20261203))
            open_loop = await measure_open_loop(
                opened.settle, best.summary["per_second"], options.rates, options.warmup, options.seconds,
                lambda answer: legs.update([len(answer.settlement.legs)]), meter,
            )  # fmt: skip
            open_loop["closed_loop_concurrency"] = best.concurrency
            open_settled = opened.succeeded
        say("checking the ledger …")
        ledger = await desk.treasury.CheckLedger(papi.CheckLedgerRequest(), timeout=300)
        return {
            "families": families,  # for the plaintext phase; not part of the summary
            "levels": levels,
            "legs": dict(legs),
            "settle_calls_sent": load.sent,
            # With the sample; every one is a journal entry, as is every credit.
            "settlements_made": load.succeeded + open_settled + 1,
            "ledger": ledger_summary(ledger),
            "open_loop": open_loop,
        }
