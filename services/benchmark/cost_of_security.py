"""The cost-of-security phase: the single-node Settle load again on binding and east restarted
with --insecure, so that the report can set plaintext beside mutual TLS."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from gongji.payment.v1 import payment_service_pb2 as papi
from services.benchmark.cpu import CpuMeter
from services.benchmark.desk import open_desk, plaintext
from services.benchmark.errors import BenchmarkError
from services.benchmark.families import Family, settle_request
from services.benchmark.options import Options
from services.benchmark.progress import say
from services.benchmark.servers import Servers
from services.benchmark.settle_load import SettleLoad, ledger_summary


async def measure_plaintext(
    options: Options, servers: Servers, families: list[Family], meter: CpuMeter
) -> dict[str, Any]:
    """The single-node phase's Settle load again, on binding and east restarted with --insecure:
    plaintext channels whose calls name their hospital in x-forwarded-client-cert, so the access
    policy still judges each one and only TLS differs. The families are those already registered."""
    async with open_desk(servers.binding_address, servers.payment_address, plaintext) as desk:
        rng = random.Random(20260303)
        sample = (await desk.settle(settle_request(families[0], rng))).settlement  # as the mTLS phase's sample
        if len(sample.legs) != 2:
            raise BenchmarkError(f"plaintext: expected a two-payer settlement, got {len(sample.legs)} legs")
        legs: Counter[int] = Counter()
        load = SettleLoad(desk, families, rng)
        levels = await load.run_levels(
            "plain", options, meter, lambda answer: legs.update([len(answer.settlement.legs)])
        )
        say("checking the ledger (plaintext, as the operator) …")
        ledger = await desk.treasury.CheckLedger(papi.CheckLedgerRequest(), timeout=300)
    return {
        "levels": levels,
        "legs": dict(legs),
        "settlements_made": load.succeeded + 1,
        "ledger": ledger_summary(ledger),
    }
