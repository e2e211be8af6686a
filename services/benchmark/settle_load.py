"""The Settle load every phase runs: random families' bills at random hospitals, level after
level, and the ledger check each phase ends with."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gongji.payment.v1 import payment_service_pb2 as papi
from services.benchmark.cpu import CpuMeter
from services.benchmark.desk import Desk
from services.benchmark.driver import Level, drive
from services.benchmark.families import Family, settle_request
from services.benchmark.options import Options
from services.benchmark.progress import level_line, say


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
