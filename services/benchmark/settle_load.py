"""The Settle load every phase runs: random families' bills at random hospitals, level after
level, and the ledger check each phase ends with; `rerun` runs it again on restarted servers."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gongji.payment.v1 import payment_service_pb2 as papi
from services.benchmark.cpu import CpuMeter
from services.benchmark.desk import Connect, Desk, open_desk
from services.benchmark.driver import Level, drive
from services.benchmark.errors import BenchmarkError
from services.benchmark.families import Family, settle_request
from services.benchmark.options import Options
from services.benchmark.progress import level_line, say
from services.benchmark.servers import Servers


@dataclass
class SettleLoad:
    """Settle as fast as the answers come back: a random family's bill at a random hospital,
    sent by that hospital."""

    desk: Desk
    families: list[Family]
    rng: random.Random
    sent: int = 0
    succeeded: int = 0

    async def settle(self) -> papi.SettleResponse:
        self.sent += 1
        answer = await self.desk.settle(settle_request(self.rng.choice(self.families), self.rng))
        self.succeeded += 1
        return answer

    async def run_levels(
        self, what: str, options: Options, meter: CpuMeter, on_answer: Callable[[papi.SettleResponse], None]
    ) -> list[Level]:
        levels = []
        for concurrency in options.concurrency:
            level = await drive(self.settle, concurrency, options.warmup, options.seconds, on_answer, meter)
            levels.append(level)
            say(level_line(what, level))
        return levels


def ledger_summary(ledger: papi.CheckLedgerResponse) -> dict[str, Any]:
    return {
        "balanced": ledger.balanced,
        "entry_count": ledger.entry_count,
        "account_count": ledger.account_count,
        "problems": list(ledger.problems)[:20],
    }


async def rerun(
    what: str,
    seed: int,
    options: Options,
    servers: Servers,
    families: list[Family],
    connect: Connect,
    meter: CpuMeter,
) -> dict[str, Any]:
    """The single-node phase's Settle load again, on the servers as restarted for a comparison
    (plaintext, observability on), with the families already registered; `what` names it in
    the progress lines."""
    async with open_desk(servers.binding_address, servers.payment_address, connect) as desk:
        rng = random.Random(seed)
        sample = (await desk.settle(settle_request(families[0], rng))).settlement  # as the mTLS phase's sample
        if len(sample.legs) != 2:
            raise BenchmarkError(f"{what}: expected a two-payer settlement, got {len(sample.legs)} legs")
        legs: Counter[int] = Counter()
        load = SettleLoad(desk, families, rng)
        levels = await load.run_levels(what, options, meter, lambda answer: legs.update([len(answer.settlement.legs)]))
        say(f"checking the ledger ({what}, as the operator) …")
        ledger = await desk.treasury.CheckLedger(papi.CheckLedgerRequest(), timeout=300)
    return {
        "levels": levels,
        "legs": dict(legs),
        "settlements_made": load.succeeded + 1,
        "ledger": ledger_summary(ledger),
    }
