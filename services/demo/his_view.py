"""The demo's HIS chapter: a hospital's billing system (HIS) calls gongji as it calls the national
platform — HTTPS POST of the national envelope to the gateway, with the institution's client
certificate — and signs in (9001), reads the child's insurance (1101), pre-settles (2206) and
settles (2207) a bill. The gateway relays each as the institution to the services over gRPC.
Each step prints the envelope briefly: its infno and msgid, the answer's infcode and the
amounts (yuan on the wire, as the HIS sees them)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from services.common.clock import Clock
from services.common.security.development_pki import DevelopmentPKI
from services.common.security.natural_callers import ActingStub
from services.demo.family import NANJING
from services.demo.report import Report
from services.gateway.wire.envelope import render
from shared.ledger import CHINA_STANDARD_TIME
from shared.money import format_yuan
from shared.principals import institution
from shared.privacy import mask_id_number

# fixmedins_code is 12 characters on the national interface.
HIS_HOSPITAL = "H32010000001"
OTHER_HOSPITAL = "H32010000002"
PATH = "/fsi/api/rsfComIfsService/callService"


@dataclass
class His:
    """The hospital's billing system: numbers its messages and presents its certificate."""

    pki: DevelopmentPKI
    port: int
    clock: Clock
    code: str = HIS_HOSPITAL
    sequence: int = 0

    @property
    def caller(self) -> str:
        return f"{institution(self.code).path} by HTTPS"

    def call(self, infno: str, node: str, data: dict[str, Any], code: str = "") -> tuple[str, dict[str, Any]]:
        """(msgid, answer): the envelope posted, in the name of `code` (default its own institution)
        with its own certificate, amounts as two-decimal numbers; the answer read with exact decimals."""
        self.sequence += 1
        code = code or self.code
        now = self.clock.now().astimezone(CHINA_STANDARD_TIME)
        msgid = f"{code}{now:%Y%m%d%H%M%S}{self.sequence:04d}"
        body = {
            "infno": infno, "msgid": msgid, "mdtrtarea_admvs": NANJING, "insuplc_admdvs": NANJING,
            "recer_sys_code": "FSI_LOCAL", "dev_no": "", "dev_safe_info": "", "cainfo": "", "signtype": "SM3",
            "infver": "V1.0", "opter_type": "1", "opter": "0001", "opter_name": "收费员",
            "inf_time": f"{now:%Y-%m-%d %H:%M:%S}", "fixmedins_code": code, "fixmedins_name": "南京市第一医院",
            "sign_no": "", "input": {node: data},
        }  # fmt: skip
        context = ssl.create_default_context(cafile=str(self.pki.ca_file))
        files = self.pki.files(institution(self.code))
        context.load_cert_chain(str(files.cert), str(files.key))
        request = urllib.request.Request(
            f"https://127.0.0.1:{self.port}{PATH}", data=render(body),
            method="POST", headers={"Content-Type": "application/json;charset=utf-8"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as answer:
                return msgid, json.loads(answer.read(), parse_float=Decimal)
        except urllib.error.HTTPError as error:
            raise AssertionError(f"the gateway answered HTTP {error.code}: {error.read()[:300]!r}") from None


def _yuan(value: Any) -> str:
    return f"{Decimal(str(value)):.2f}"


def _setlinfo(answer: dict[str, Any]) -> str:
    setl = answer["output"]["setlinfo"]
    return (
        f"acct_pay {_yuan(setl['acct_pay'])}, acct_mulaid_pay {_yuan(setl['acct_mulaid_pay'])}, "
        f"psn_cash_pay {_yuan(setl['psn_cash_pay'])}"
    )


def _answered(report: Report, his: His, sent: str, msgid: str, answer: dict[str, Any], result: str) -> None:
    if answer["infcode"] != "0":
        raise AssertionError(f"the demo expected infcode 0 for {sent}: {answer['err_msg']}")
    report.ok(f"{sent} msgid …{msgid[-8:]} → infcode 0, {result}", caller=his.caller)


def walk_his_view(
    pki: DevelopmentPKI,
    gateway_port: int,
    east: ActingStub,
    report: Report,
    persons: dict[str, bpb.InsuredPerson],
    clock: Clock,
) -> None:
    mother, child = persons["spouse"], persons["child"]
    report.section(
        f"The HIS view: hospital {HIS_HOSPITAL}'s billing system calls the national interface "
        f"(国家医保接口) on the gateway, https://127.0.0.1:{gateway_port}{PATH}"
    )
    credit = east.CreditAccount(
        papi.CreditAccountRequest(
            request_id=report.key(), id_number=mother.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT,
            amount_fen=50_000, kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION, period="2026-12", admdvs=NANJING,
        )
    ).account  # fmt: skip
    report.ok(f"mother's next monthly credit: 500.00 yuan; balance {format_yuan(credit.balance_fen)}")

    his = His(pki, gateway_port, clock)
    msgid, signed = his.call("9001", "signIn", {"opter_no": "0001", "mac": "", "ip": "10.0.0.8"})
    _answered(report, his, "9001 sign-in (签到)", msgid, signed, f"sign_no {signed['output']['signinoutb']['sign_no']}")

    card = {"mdtrt_cert_type": "02", "mdtrt_cert_no": child.id_number, "psn_cert_type": "01"}
    msgid, person = his.call("1101", "data", {**card, "certno": child.id_number, "psn_name": child.name})
    base, insured = person["output"]["baseinfo"], person["output"]["insuinfo"][0]
    _answered(
        report, his, f"1101 person info (人员信息) of {mask_id_number(child.id_number)}", msgid, person,
        f"{base['psn_name']} insured in {insured['insuplc_admdvs']} (insutype {insured['insutype']}), "
        f"personal account balc {_yuan(insured['balc'])}",
    )  # fmt: skip

    bill = {
        "psn_no": child.id_number, **card, "med_type": "11", "medfee_sumamt": Decimal("300.00"),
        "psn_setlway": "01", "mdtrt_id": "MD20261202001", "chrg_bchno": "CB0001", "insutype": "390",
        "acct_used_flag": "1", "psn_part_amt": Decimal("120.50"),
    }  # fmt: skip
    msgid, quote = his.call("2206", "data", bill)
    what = "of 300.00 yuan, the patient's part (psn_part_amt) 120.50"
    _answered(report, his, f"2206 pre-settlement (预结算) {what}", msgid, quote, _setlinfo(quote))
    msgid, settled = his.call("2207", "data", bill)
    setl = settled["output"]["setlinfo"]
    _answered(
        report, his, "2207 settlement (结算) of the same bill", msgid, settled,
        f"setl_id {setl['setl_id'][:8]}: {_setlinfo(settled)}; the mother's account paid it (共济)",
    )  # fmt: skip
    msgid, refused = his.call("2207", "data", bill, code=OTHER_HOSPITAL)
    report.declined(
        f"2207 sent with fixmedins_code {OTHER_HOSPITAL}, another hospital's → infcode {refused['infcode']}",
        refused["err_msg"], caller=his.caller,
    )  # fmt: skip
    account = east.GetAccount(
        papi.GetAccountRequest(id_number=mother.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT)
    ).account
    report.ok(f"mother's balance after the HIS's settlement: {format_yuan(account.balance_fen)}")
