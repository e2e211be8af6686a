"""A running gateway in front of the test binding and payment services, and a HIS that calls
it over real HTTPS with request bodies shaped like those hospital systems send."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from services.common.hosting import BackgroundServer
from services.common.security.development_pki import DevelopmentPKI
from services.gateway.app import GatewaySettings, start_gateway
from services.gateway.wire.signatures import AccessKey, sign
from shared.principals import GATEWAY, institution
from tests.payment_helpers import PaymentFamily

CODE = "H32010000001"  # 12 characters, as fixmedins_code is on the national interface
OTHER = "H32010000002"
ADMDVS = "320100"
PATH = "/fsi/api/rsfComIfsService/callService"
KEY = AccessKey("ak-h32010000001", CODE, b"a-secret-of-the-first-hospital")


@dataclass
class His:
    """One hospital's billing system: numbers its messages, signs or presents its certificate."""

    gateway: Gateway
    code: str = CODE
    certificate: str | None = CODE  # the institution whose certificate it presents; None: none
    sequence: int = 0
    day: str = "20260302"

    def envelope(self, infno: str, data: dict[str, Any] | None, *, node: str = "data", **fields: Any) -> bytes:
        self.sequence += 1
        body = {
            "infno": infno, "msgid": f"{self.code}{self.day}090000{self.sequence:04d}", "mdtrtarea_admvs": ADMDVS,
            "insuplc_admdvs": ADMDVS, "recer_sys_code": "FSI_LOCAL", "dev_no": "", "dev_safe_info": "",
            "cainfo": "", "signtype": "SM3", "infver": "V1.0", "opter_type": "1", "opter": "0001",
            "opter_name": "收费员", "inf_time": "2026-03-02 09:00:00", "fixmedins_code": self.code,
            "fixmedins_name": "南京市第一医院", "sign_no": "", "input": {node: data} if data is not None else {},
        }  # fmt: skip
        body.update(fields)
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def post(self, body: bytes, headers: dict[str, str] | None = None, path: str = PATH) -> tuple[int, bytes]:
        context = ssl.create_default_context(cafile=str(self.gateway.pki.ca_file))
        if self.certificate is not None:
            files = self.gateway.pki.files(institution(self.certificate))
            context.load_cert_chain(str(files.cert), str(files.key))
        request = urllib.request.Request(
            f"https://127.0.0.1:{self.gateway.server.port}{path}", data=body, method="POST",
            headers={"Content-Type": "application/json;charset=utf-8", **(headers or {})},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def call(self, infno: str, data: dict[str, Any] | None, **fields: Any) -> dict[str, Any]:
        status, answer = self.post(self.envelope(infno, data, **fields))
        assert status == 200, answer
        return json.loads(answer)

    def signed(self, body: bytes, key: AccessKey = KEY, at: Any = None) -> tuple[int, bytes]:
        infno = json.loads(body)["infno"]
        return self.post(body, sign(key, infno, body, at or self.gateway.clock.now()))


@dataclass
class Gateway:
    server: BackgroundServer
    pki: DevelopmentPKI
    clock: Any
    family: PaymentFamily
    settings: GatewaySettings
    his: His = field(init=False)

    def __post_init__(self) -> None:
        self.his = His(self)

    def balances(self) -> dict[str, int]:
        """Every family member's personal-account balance, read from the payment service."""
        return {name: self.family.account(getattr(self.family, name)).balance_fen for name in ("mother", "father")}


@contextmanager
def running_gateway(payment_service: Any, database_url: str, **settings: Any):
    pki = payment_service.binding.pki
    defaults: dict[str, Any] = {
        "transport": pki.transport(GATEWAY), "binding_address": payment_service.binding.server.address,
        "payment_address": payment_service.server.address, "address": "127.0.0.1:0",
        "access_keys": {KEY.access_key: KEY}, "clock": payment_service.binding.clock,
    }  # fmt: skip
    complete = GatewaySettings(database_url=database_url, **{**defaults, **settings})
    with BackgroundServer(lambda: start_gateway(complete)) as server:  # type: ignore[arg-type,return-value]
        yield server, complete


def settle_data(family: PaymentFamily, medfee: float, psn_part: float, **extra: Any) -> dict[str, Any]:
    """2206/2207 input as a HIS sends it, for the family's child presenting an ID number."""
    return {
        "psn_no": family.child.id_number, "mdtrt_cert_type": "02", "mdtrt_cert_no": family.child.id_number,
        "med_type": "11", "medfee_sumamt": medfee, "psn_setlway": "01", "mdtrt_id": "MD0001",
        "chrg_bchno": "CB0001", "insutype": "390", "acct_used_flag": "1", "psn_part_amt": psn_part, **extra,
    }  # fmt: skip


@pytest.fixture
def gateway(databases, payment_service) -> Iterator[Gateway]:
    """The gateway before the test services, the Nanjing family of PaymentFamily registered."""
    family = PaymentFamily(payment_service)
    with running_gateway(payment_service, databases.url("gateway")) as (server, settings):
        yield Gateway(server, payment_service.binding.pki, payment_service.binding.clock, family, settings)
