"""The gateway phase: the single-node families' bills settled as a hospital's HIS settles them —
2207 envelopes POSTed over HTTPS to the national-interface gateway, each hospital presenting its
own certificate on keep-alive connections — at the Settle load's concurrency levels, so the
report can set 2207 settlements/s through the gateway beside direct gRPC Settle of the same run.
The gateway relays each one to east over mutual-TLS gRPC as spiffe://gongji/service/gateway,
acting for the hospital."""

from __future__ import annotations

import asyncio
import json
import random
import ssl
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp

from gongji.payment.v1 import payment_service_pb2 as papi
from services.benchmark.cpu import CpuMeter
from services.benchmark.deployment import ADMDVS, GATEWAY_INSTITUTIONS
from services.benchmark.desk import CALL_TIMEOUT, Connect, open_desk
from services.benchmark.driver import Level, drive
from services.benchmark.errors import BenchmarkError, CallRefused
from services.benchmark.families import Family
from services.benchmark.gateway_server import PATH, GatewayServer
from services.benchmark.options import Options
from services.benchmark.progress import level_line, say
from services.benchmark.servers import Servers
from services.benchmark.settle_load import ledger_summary
from services.common.security.development_pki import DevelopmentPKI
from services.gateway.wire.envelope import render
from services.gateway.wire.money import fen_to_yuan
from shared.china_time import CHINA_STANDARD_TIME
from shared.principals import institution

HEADERS = {"Content-Type": "application/json;charset=utf-8"}
_SERIALS = 10_000  # msgid ends in a four-digit sequence


@dataclass
class HisLoad:
    """Hospitals' billing systems sending 2207 as fast as the answers come back: a random family's
    bill at a random hospital, sent by that hospital with its certificate."""

    url: str
    sessions: dict[str, aiohttp.ClientSession]
    families: list[Family]
    rng: random.Random
    # msgid times count up from here, one second per 10,000 messages of a hospital: never repeated.
    started: datetime = field(default_factory=lambda: datetime.now(CHINA_STANDARD_TIME).replace(microsecond=0))
    numbered: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    succeeded: int = 0
    paid_by_accounts: int = 0  # answers whose psn_cash_pay is 0: the two grantors paid the whole part

    def envelope(self, code: str, family: Family) -> bytes:
        number = self.numbered[code]
        self.numbered[code] += 1
        moment = self.started + timedelta(seconds=number // _SERIALS)
        part_fen = self.rng.randint(200, 3000)
        return render({
            "infno": "2207", "msgid": f"{code}{moment:%Y%m%d%H%M%S}{number % _SERIALS:04d}",
            "mdtrtarea_admvs": ADMDVS, "insuplc_admdvs": ADMDVS, "recer_sys_code": "FSI_LOCAL", "dev_no": "",
            "dev_safe_info": "", "cainfo": "", "signtype": "SM3", "infver": "V1.0", "opter_type": "1",
            "opter": "0001", "opter_name": "收费员", "inf_time": f"{moment:%Y-%m-%d %H:%M:%S}",
            "fixmedins_code": code, "fixmedins_name": "南京市医院", "sign_no": "",
            "input": {"data": {
                "psn_no": family.child, "mdtrt_cert_type": "03", "mdtrt_cert_no": family.child, "med_type": "11",
                "medfee_sumamt": fen_to_yuan(2 * part_fen), "psn_part_amt": fen_to_yuan(part_fen),
                "psn_setlway": "01", "mdtrt_id": f"MD{number}", "chrg_bchno": f"CB{number}", "insutype": "390",
                "acct_used_flag": "1",
            }},
        })  # fmt: skip

    async def settle(self) -> dict[str, Any]:
        code = self.rng.choice(GATEWAY_INSTITUTIONS)
        body = self.envelope(code, self.rng.choice(self.families))
        self.sent += 1
        try:
            async with self.sessions[code].post(self.url, data=body, headers=HEADERS) as response:
                raw = await response.read()
        except (TimeoutError, aiohttp.ClientError) as error:
            raise CallRefused(f"{error.__class__.__name__}: {error}") from None
        if response.status != 200:
            raise CallRefused(f"HTTP {response.status}: {raw[:120].decode(errors='replace')}")
        answer: dict[str, Any] = json.loads(raw, parse_float=Decimal)  # yuan, exact
        if answer.get("infcode") != "0":
            raise CallRefused(f"infcode {answer.get('infcode')}: {answer.get('err_msg')}")
        self.succeeded += 1
        if answer["output"]["setlinfo"]["psn_cash_pay"] == 0:
            self.paid_by_accounts += 1
        return answer


def _his_sessions(pki: DevelopmentPKI, concurrency: int) -> dict[str, aiohttp.ClientSession]:
    """One session per hospital, presenting its certificate; its connections are kept alive."""
    sessions = {}
    for code in GATEWAY_INSTITUTIONS:
        files = pki.files(institution(code))
        context = ssl.create_default_context(cafile=str(files.ca))
        context.load_cert_chain(str(files.cert), str(files.key))
        sessions[code] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=concurrency),
            timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT),
        )
    return sessions


async def measure_gateway(
    options: Options,
    servers: Servers,
    gateway: GatewayServer,
    families: list[Family],
    pki: DevelopmentPKI,
    connect: Connect,
    meter: CpuMeter,
) -> dict[str, Any]:
    sessions = _his_sessions(pki, max(options.concurrency))
    try:
        load = HisLoad(f"https://{gateway.address}{PATH}", sessions, families, random.Random(20260305))
        try:
            sample = (await load.settle())["output"]["setlinfo"]
        except CallRefused as refused:
            raise BenchmarkError(f"the gateway refused a sample 2207: {refused}") from None
        if sample["psn_cash_pay"] != 0 or not sample["acct_mulaid_pay"]:
            raise BenchmarkError(f"expected the grantors to pay a sample 2207 entirely, got {sample}")
        say(
            f"a sample 2207 through the gateway: acct_pay {sample['acct_pay']}, acct_mulaid_pay "
            f"{sample['acct_mulaid_pay']}, psn_cash_pay {sample['psn_cash_pay']} (yuan)"
        )
        levels: list[Level] = []
        for concurrency in options.concurrency:
            level = await drive(load.settle, concurrency, options.warmup, options.seconds, None, meter)
            levels.append(level)
            say(level_line("gateway", level))
    finally:
        await asyncio.gather(*(session.close() for session in sessions.values()))
    async with open_desk(servers.binding_address, servers.payment_address, connect) as desk:
        say("checking the ledger (gateway phase, as the operator) …")
        ledger = await desk.treasury.CheckLedger(papi.CheckLedgerRequest(), timeout=300)
    return {
        "levels": levels,
        "settlements_made": load.succeeded,
        "paid_by_accounts": load.paid_by_accounts,
        "sample": {key: str(sample[key]) for key in ("acct_pay", "acct_mulaid_pay", "psn_cash_pay")},
        "ledger": ledger_summary(ledger),
    }
