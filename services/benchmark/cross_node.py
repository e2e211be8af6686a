"""The cross-node phase: cross-province families (child and mother in Nanjing, father in Lanzhou
on payment "west") settle at a Nanjing hospital through east; afterwards both ledgers must balance
and both nodes must report the same clearing."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from services.benchmark.cpu import CpuMeter
from services.benchmark.deployment import ADMDVS, WEST_ADMDVS
from services.benchmark.desk import Connect, Desk, open_desk
from services.benchmark.errors import BenchmarkError
from services.benchmark.families import Family, put_cross_province_policies, register_cross_family, settle_request
from services.benchmark.options import Options
from services.benchmark.progress import say
from services.benchmark.servers import Servers
from services.benchmark.settle_load import SettleLoad, ledger_summary


def _china_today() -> str:
    """Today in China Standard Time (UTC+8), the clearing report's day."""
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))


async def measure_cross_node(options: Options, servers: Servers, connect: Connect, meter: CpuMeter) -> dict[str, Any]:
    """Bills go to east, as the hospital; west is asked only for credits, its ledger and its clearing."""
    assert servers.west_address is not None
    async with (
        open_desk(servers.binding_address, servers.payment_address, connect) as east,
        open_desk(servers.binding_address, servers.west_address, connect) as west,
    ):
        say(f"cross-node: registering {options.families} families (child + mother in {ADMDVS} on east, "
            f"father in {WEST_ADMDVS} credited on west) …")  # fmt: skip
        started = time.perf_counter()
        await put_cross_province_policies(east.registry)
        gate = asyncio.Semaphore(16)

        async def register(number: int) -> Family:
            async with gate:
                return await register_cross_family(number, east, west)

        families = await asyncio.gather(*(register(n) for n in range(options.families)))
        say(f"  done in {time.perf_counter() - started:.1f}s")

        rng = random.Random(20260302)
        sample = (await east.settle(settle_request(families[0], rng))).settlement
        where = [f"{ppb.PaymentSource.Name(leg.source)}@{leg.payer_admdvs}" for leg in sample.legs]
        if (
            len(sample.legs) != 2
            or sample.cash_pay_fen
            or [leg.payer_admdvs for leg in sample.legs].count(WEST_ADMDVS) != 1
        ):
            raise BenchmarkError(
                f"expected a cross-node settlement with one leg paid in {WEST_ADMDVS}, got legs {where}, "
                f"cash {sample.cash_pay_fen}"
            )
        say(f"a sample cross-node bill settles in 2 legs: {', '.join(where)}")

        checked = {"settlements": 0, "two_legs": 0, "west_leg": 0}

        def count_legs(answer: papi.SettleResponse) -> None:
            legs = answer.settlement.legs
            checked["settlements"] += 1
            checked["two_legs"] += len(legs) == 2
            checked["west_leg"] += [leg.payer_admdvs for leg in legs].count(WEST_ADMDVS) == 1

        load = SettleLoad(east, families, rng)
        levels = await load.run_levels("cross", options, meter, count_legs)

        say("checking both ledgers and the clearing report …")
        ledgers = {
            name: ledger_summary(await desk.treasury.CheckLedger(papi.CheckLedgerRequest(), timeout=300))
            for name, desk in (("east", east), ("west", west))
        }
        day = _china_today()

        async def clearing(desk: Desk) -> list[dict[str, Any]]:
            report = await desk.treasury.GetClearingReport(papi.GetClearingReportRequest(date=day), timeout=60)
            return [
                {
                    "debtor_province": b.debtor_province,
                    "creditor_province": b.creditor_province,
                    "amount_fen": b.amount_fen,
                }
                for b in report.balances
            ]

        # A saga's last step may still be on its way: give the nodes a little while to agree.
        deadline = time.monotonic() + 30
        while True:
            reports = {"east": await clearing(east), "west": await clearing(west)}
            if reports["east"] == reports["west"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        return {
            "levels": levels,
            "families": options.families,
            "sample_legs": where,
            "checked": checked,
            "settlements_made": load.succeeded + 1,
            "ledgers": ledgers,
            "clearing": {"date": day, **reports, "agree": reports["east"] == reports["west"]},
        }
