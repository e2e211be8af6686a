"""Each national transaction (infno) as calls on gongji: the use cases of the gateway.

``psn_no`` is the person's ID number, gongji's key for insured people. The individual's share
of a bill comes in the request (``psn_part_amt``, or ``medfee_sumamt − fund_pay_sumamt``): gongji
does not compute the pooled fund. Every mutating call carries ``request_id = msgid``, so a
retry after a lost answer (or a gateway crash before it stored one) moves nothing twice."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from services.common.clock import Clock
from services.gateway.service_layer import refusals as why
from services.gateway.service_layer.account_pay import AccountPayRules
from services.gateway.service_layer.inpatient import DEFAULT_HOLD_DAYS, Inpatient
from services.gateway.service_layer.ports import (
    REVERSED,
    SETTLED,
    UNDONE,
    Gongji,
    GongjiRefused,
    RelayedSettlement,
    Store,
    StoreUnavailable,
)
from services.gateway.service_layer.reconciliation import compare, net_in_gongji, period, totals
from services.gateway.service_layer.refusals import Refused
from services.gateway.wire.envelope import (
    Envelope,
    EnvelopeRefused,
    amount,
    earlier_msgid,
    id_number,
    input_node,
    same_person,
    text,
)
from services.gateway.wire.money import fen_to_yuan
from shared.china_time import CHINA_STANDARD_TIME
from shared.errors import DomainError
from shared.identity import birth_date
from shared.regions import validate_admdvs

# gRPC codes that say nothing final about the request: nothing is stored as the msgid's
# answer, so a retry of the same msgid runs again.
TRANSIENT = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "INTERNAL", "UNKNOWN", "CANCELLED"}
# Refusals of the gateway's own right to call: a deployment problem, not the request's.
NOT_THE_REQUESTS = {"UNAUTHENTICATED", "PERMISSION_DENIED"}
# 2303 too: its deposit hold is money held, and a HIS whose 2303 went unanswered reverses it.
REVERSIBLE = {"2102", "2103", "2207", "2208", "2303", "2304", "2305"}
# 3201's clearing types: outpatient, inpatient, pharmacy, and 99 (or none) for all.
CLEARING_TYPES = {"11", "21", "41", "99", ""}
# The settlement each undo undoes, and the clearing type (clr_type) of each settlement.
UNDOES = {"2208": "2207", "2305": "2304", "2103": "2102"}
# Inpatient pre-settlement and settlement: the messages of one stay (mdtrt_id).
INPATIENT = frozenset({"2303", "2304"})
CLR_TYPE = {"2207": "11", "2304": "21", "2102": "41"}
# mdtrt_cert_type → how gongji checks the credential: 01 e-credential (QR), 02 ID number
# shown at the desk (checked by face), 03 social-security card.
CREDENTIALS = {"01": ppb.CREDENTIAL_TYPE_QR, "02": ppb.CREDENTIAL_TYPE_FACE, "03": ppb.CREDENTIAL_TYPE_CARD}


def refusal_of(error: GongjiRefused) -> Refused:
    if error.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        return Refused(why.SERVICE_UNAVAILABLE, "gongji did not answer in time; send the same msgid again", final=False)
    final = error.code not in TRANSIENT and error.code not in NOT_THE_REQUESTS
    # The msgid is the body's that claimed it (see the HTTP entry point), so this says the
    # gateway built another request for that body, never that the body is wrong: not its answer.
    final = final and error.reason != "IDEMPOTENCY_KEY_REUSED"
    return Refused(error.reason, error.message, final=final)


def china_time(at: datetime) -> str:
    return at.astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M:%S")


def china_day(at: datetime) -> str:
    return at.astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d")


def _flag(node: dict[str, Any], key: str, default: str) -> bool:
    value = text(node, key, required=False, max_length=1) or default
    if value not in ("0", "1"):
        raise Refused(why.FIELD_INVALID, f'{key}: {value!r} is neither "0" nor "1"')
    return value == "1"


@dataclass(frozen=True)
class Charge:
    """A bill as the institution sends it for (pre-)settlement."""

    psn_no: str
    credential: ppb.Credential
    mdtrt_id: str
    medfee_fen: int
    fund_fen: int
    psn_part_fen: int
    use_accounts: bool
    use_category: int
    chronic: bool
    mid_setl: bool


@dataclass(frozen=True)
class Answer:
    """A transaction's output, and the answer's warn_msg."""

    output: dict[str, Any]
    warn_msg: str = ""


@dataclass(frozen=True)
class Split:
    own_account_fen: int
    mutual_aid_fen: int
    cash_fen: int
    balance_fen: int


class Transactions:
    def __init__(
        self,
        gongji: Gongji,
        store: Store,
        clock: Clock,
        account_pay: AccountPayRules,
        inpatient_hold_days: int = DEFAULT_HOLD_DAYS,
    ) -> None:
        self._gongji = gongji
        self._store = store
        self._clock = clock
        self._account_pay = account_pay
        self._inpatient = Inpatient(gongji, store, clock, inpatient_hold_days)
        self._handlers: dict[str, Callable[[Envelope], Awaitable[dict[str, Any] | Answer]]] = {
            "9001": self.sign_in,
            "9002": self.sign_out,
            "1101": self.person_info,
            "2206": self.pre_settle, "2303": self.pre_settle, "2101": self.pre_settle,
            "2207": self.settle, "2304": self.settle, "2102": self.settle,
            "2208": self.undo, "2305": self.undo, "2103": self.undo,
            "2601": self.reverse,
            "3201": self.reconcile,
        }  # fmt: skip

    @property
    def served(self) -> frozenset[str]:
        """The infnos this gateway serves."""
        return frozenset(self._handlers)

    async def run(self, envelope: Envelope) -> Answer:
        """The transaction's output and warning; Refused for an answer with infcode -1."""
        handler = self._handlers.get(envelope.infno)
        if handler is None:
            served = ", ".join(sorted(self._handlers))
            raise Refused(why.UNKNOWN_TRANSACTION, f"infno {envelope.infno} is not served here; served: {served}")
        try:
            answer = await handler(envelope)
        except EnvelopeRefused as refused:
            raise Refused(refused.reason, refused.message) from None
        except GongjiRefused as error:
            raise refusal_of(error) from None
        except StoreUnavailable:
            raise Refused(
                why.SERVICE_UNAVAILABLE,
                "the gateway could not keep its records; send the same msgid again",
                final=False,
            ) from None
        return answer if isinstance(answer, Answer) else Answer(answer)

    async def _call(self, envelope: Envelope, service: str, method: str, request: Any) -> Any:
        return await self._gongji.call(service, method, request, envelope.fixmedins_code)

    # 9001 ---------------------------------------------------------------------------------

    async def sign_in(self, envelope: Envelope) -> dict[str, Any]:
        """The same sign_no for every sign-in of the institution's operator on one China day."""
        now = self._clock.now()
        day = china_day(now)
        node = input_node(envelope, "signIn") if "signIn" in envelope.input else {}
        opter = envelope.opter or text(node, "opter_no", required=False)
        fresh = f"{day.replace('-', '')}{secrets.token_hex(6).upper()}"
        sign_no, sign_time = await self._store.sign_in(envelope.fixmedins_code, opter, day, fresh, now)
        return {"signinoutb": {"sign_time": china_time(sign_time), "sign_no": sign_no}}

    async def sign_out(self, envelope: Envelope) -> dict[str, Any]:
        """签退 of a sign_no this institution signed in with (the envelope's, or `signOut`'s). The
        gateway asks no sign_no of other transactions, so signing out ends nothing: a 9001 the
        same day gets the same sign_no again."""
        node = input_node(envelope, "signOut") if "signOut" in envelope.input else {}
        sign_no = text(node, "sign_no", required=False, max_length=32) or envelope.sign_no
        if not sign_no:
            raise Refused(why.FIELD_INVALID, "sign_no: missing; give the sign_no of the day's 9001")
        if not await self._store.signed_in(envelope.fixmedins_code, sign_no):
            raise Refused(why.FIELD_INVALID, f"sign_no {sign_no} is not a sign-in of this institution")
        return {"signoutoutb": {"sign_time": china_time(self._clock.now())}}

    # 1101 ---------------------------------------------------------------------------------

    async def person_info(self, envelope: Envelope) -> dict[str, Any]:
        """baseinfo from the binding registry; insuinfo[0].balc the personal account's available
        balance; wltinfo.balc the wallet's (医保钱包), 0.00 when there is none."""
        data = input_node(envelope)
        number = id_number(data, "certno", required=False) or id_number(data, "mdtrt_cert_no")
        asked = bapi.GetInsuredPersonRequest(id_number=number)
        found = await self._call(envelope, "binding", "GetInsuredPerson", asked)
        person = found.insured_person
        account = await self._available(envelope, number, ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT)
        wallet = await self._available(envelope, number, ppb.ACCOUNT_KIND_WALLET)
        employee = person.insurance_type == common.INSURANCE_TYPE_EMPLOYEE
        status = {common.INSURANCE_STATUS_NORMAL: "1", common.INSURANCE_STATUS_SUSPENDED: "2"}
        return {
            "baseinfo": {
                "psn_no": person.id_number, "psn_cert_type": "01", "certno": person.id_number,
                "psn_name": person.name, **_born(person.id_number, self._clock.now()),
            },
            "insuinfo": [{
                "balc": fen_to_yuan(account), "insutype": "310" if employee else "390",
                "psn_type": "11" if employee else "", "psn_insu_stas": status.get(person.status, "4"),
                "insuplc_admdvs": person.admdvs,
            }],
            "idetinfo": [],
            "wltinfo": {"balc": fen_to_yuan(wallet)},
        }  # fmt: skip

    async def _available(self, envelope: Envelope, id_number: str, kind: int) -> int:
        try:
            answer = await self._call(
                envelope, "payment", "GetAccount", papi.GetAccountRequest(id_number=id_number, account_kind=kind)
            )
        except GongjiRefused as error:
            if error.code == "NOT_FOUND":
                return 0
            raise
        return int(answer.account.available_fen)

    # 2206, 2303, 2101 ---------------------------------------------------------------------

    async def pre_settle(self, envelope: Envelope) -> Answer:
        """预结算: the split the settlement would take, nothing moved (QuoteSettlement). An
        inpatient one (2303) holds that split for the stay instead (inpatient.py); its setl_id
        stays empty all the same, as nothing is settled until the 2304."""
        charge = self._charge(envelope)
        warning = ""
        if envelope.infno == "2303":
            bill = self._bill(envelope, charge) if self._moves_accounts(charge) else None
            held, warning = await self._inpatient.hold(envelope, charge.mdtrt_id, charge.psn_no, bill)
            if held is not None:
                split = await self._split(envelope, charge, held, read_balance=True)
                return Answer({"setlinfo": self._setlinfo(envelope, charge, split, setl_id="", at=self._clock.now())})
        if not self._moves_accounts(charge):
            split = Split(0, 0, charge.psn_part_fen, await self._balance(envelope, charge.psn_no))
        else:
            quoted = await self._call(
                envelope, "payment", "QuoteSettlement", papi.QuoteSettlementRequest(bill=self._bill(envelope, charge))
            )
            split = await self._split(envelope, charge, quoted.settlement)
        return Answer({"setlinfo": self._setlinfo(envelope, charge, split, setl_id="", at=self._clock.now())}, warning)

    # 2207, 2304, 2102 ---------------------------------------------------------------------

    async def settle(self, envelope: Envelope) -> Answer:
        """结算: Settle with request_id = msgid. A bill the accounts pay nothing of (acct_used_flag
        "0", or no personal share) is settled by the gateway alone as all cash. An inpatient one
        (2304) captures the stay's deposit hold when it has one (inpatient.py)."""
        charge = self._charge(envelope)
        now = self._clock.now()
        captured, warning = None, ""
        if envelope.infno == "2304":
            captured, warning = await self._inpatient.settle(
                envelope, charge.mdtrt_id, charge.psn_no, charge.psn_part_fen, self._moves_accounts(charge)
            )
        if captured is not None:
            setl_id = captured.settlement_id
            split = await self._split(envelope, charge, captured, read_balance=True)
            settle_time = captured.capture_time.ToDatetime(tzinfo=UTC)
        elif not self._moves_accounts(charge):
            await self._refuse_if_reversed(envelope)
            setl_id = f"GW{envelope.msgid}"
            split = Split(0, 0, charge.psn_part_fen, await self._balance(envelope, charge.psn_no))
            settle_time = now
        else:
            request = papi.SettleRequest(request_id=envelope.msgid, bill=self._bill(envelope, charge))
            settled = (await self._call(envelope, "payment", "Settle", request)).settlement
            setl_id = settled.settlement_id
            split = await self._split(envelope, charge, settled)
            settle_time = settled.capture_time.ToDatetime(tzinfo=UTC) if settled.HasField("capture_time") else now
        await self._store.record_settlement(
            RelayedSettlement(
                envelope.fixmedins_code, setl_id, envelope.msgid, envelope.infno, CLR_TYPE[envelope.infno],
                charge.mdtrt_id, charge.psn_no, self._moves_accounts(charge), charge.mid_setl, charge.medfee_fen,
                charge.fund_fen, charge.psn_part_fen, split.own_account_fen, split.mutual_aid_fen, split.cash_fen,
                SETTLED, settle_time,
            )
        )  # fmt: skip
        if envelope.infno == "2304":
            await self._inpatient.settled(envelope, charge.mdtrt_id, charge.psn_no, charge.mid_setl)
        setlinfo = self._setlinfo(envelope, charge, split, setl_id=setl_id, at=settle_time)
        return Answer({"setlinfo": setlinfo}, warning)

    # 2208, 2305, 2103 ---------------------------------------------------------------------

    async def undo(self, envelope: Envelope) -> dict[str, Any]:
        """撤销 (input setl_id, mdtrt_id, psn_no): RefundSettlement with request_id = msgid; the
        answer's amounts are the settlement's, negated."""
        data = input_node(envelope)
        setl_id = text(data, "setl_id")
        psn_no = id_number(data, "psn_no")
        mdtrt_id = text(data, "mdtrt_id", required=False)
        found = await self._store.settlement(envelope.fixmedins_code, setl_id)
        if found is None or found.infno != UNDOES[envelope.infno]:
            raise Refused(
                why.SETTLEMENT_NOT_FOUND, f"setl_id {setl_id}: no {UNDOES[envelope.infno]} settlement of yours"
            )
        if same_person(found.psn_no) != psn_no or (mdtrt_id and found.mdtrt_id != mdtrt_id):
            raise Refused(why.SETTLEMENT_MISMATCH, f"setl_id {setl_id} is not of this psn_no and mdtrt_id")
        now = self._clock.now()
        if found.in_gongji:
            request = papi.RefundSettlementRequest(request_id=envelope.msgid, settlement_id=setl_id)
            await self._call(envelope, "payment", "RefundSettlement", request)
        else:
            await self._refuse_if_reversed(envelope)
        if not found.in_gongji and found.state != SETTLED and found.undo_msgid != envelope.msgid:
            raise Refused(
                "ALREADY_REFUNDED" if found.state == UNDONE else "REQUEST_REVERSED",
                f"setl_id {setl_id} is {found.state.lower()}",
            )
        if found.state == SETTLED:
            await self._store.change_state(envelope.fixmedins_code, setl_id, UNDONE, envelope.msgid, now)
            if found.infno == "2304" and not found.mid_setl:
                await self._inpatient.reopened(envelope.fixmedins_code, found.mdtrt_id)
        negated = replace(
            found, medfee_fen=-found.medfee_fen, fund_fen=-found.fund_fen, psn_part_fen=-found.psn_part_fen,
            own_account_fen=-found.own_account_fen, mutual_aid_fen=-found.mutual_aid_fen, cash_fen=-found.cash_fen,
        )  # fmt: skip
        balance = await self._balance(envelope, psn_no)
        return {"setlinfo": self._recorded_setlinfo(envelope, negated, balance, now)}

    async def _refuse_if_reversed(self, envelope: Envelope) -> None:
        """What gongji does for the requests it sees, for those the gateway answers alone."""
        if await self._store.reversed(envelope.fixmedins_code, envelope.msgid):
            raise Refused("REQUEST_REVERSED", f"msgid {envelope.msgid} was reversed (2601) before it arrived")

    # 2601 ---------------------------------------------------------------------------------

    async def reverse(self, envelope: Envelope) -> dict[str, Any]:
        """冲正 by omsgid: ReverseRequest(original_request_id=omsgid), whether or not the original
        arrived. One that arrives after its reversal is refused (REQUEST_REVERSED)."""
        data = input_node(envelope)
        psn_no = id_number(data, "psn_no", max_length=30)
        oinfno = text(data, "oinfno", max_length=4)
        if oinfno not in REVERSIBLE:
            raise Refused(why.NOT_REVERSIBLE, f"oinfno {oinfno}: only {', '.join(sorted(REVERSIBLE))} can be reversed")
        code = envelope.fixmedins_code
        omsgid = earlier_msgid(data, "omsgid", code)
        # The original, when it arrived, must be what the reversal says it was, and the patient's.
        original = await self._store.answer(code, omsgid)
        if original is not None and original.infno and original.infno != oinfno:
            raise Refused(
                why.NOT_REVERSIBLE if original.infno not in REVERSIBLE else why.FIELD_INVALID,
                f"oinfno {oinfno}: msgid {omsgid} was a {original.infno}",
            )
        earlier = await self._store.settlement_of_msgid(code, omsgid)
        if earlier is not None and same_person(earlier.psn_no) != psn_no:
            raise Refused(why.SETTLEMENT_MISMATCH, f"msgid {omsgid} was not a bill of this psn_no")
        held = await self._inpatient.hold_of(code, omsgid, psn_no) if oinfno == "2303" else None
        request = papi.ReverseRequestRequest(request_id=envelope.msgid, original_request_id=omsgid, reason="2601")
        reversed_ = await self._call(envelope, "payment", "ReverseRequest", request)
        if held is not None:
            await self._inpatient.hold_reversed(envelope, held)
        now = self._clock.now()
        await self._store.record_reversal(code, omsgid, envelope.msgid, now)
        # Read again: an original still in flight at the first read may have recorded its settlement since.
        found = await self._store.settlement_of_msgid(code, omsgid)
        if found is not None:
            state = await self._follow_reversal(envelope, found, omsgid, reversed_, now)
            # A final 2304 closed the stay and its 2305 opened it again; a reversal undoes either.
            if found.infno == "2304" and not found.mid_setl:
                if state == SETTLED:
                    await self._inpatient.closed_again(envelope, found.mdtrt_id, found.psn_no)
                elif state == REVERSED:
                    await self._inpatient.reopened(code, found.mdtrt_id)
        return {
            "data": {
                "omsgid": omsgid, "oinfno": oinfno, "orig_found": "1" if reversed_.original_found or found else "0",
                "setl_id": found.setl_id if found is not None else reversed_.settlement.settlement_id,
            }
        }  # fmt: skip

    async def _follow_reversal(
        self, envelope: Envelope, found: RelayedSettlement, omsgid: str, answer: Any, now: datetime
    ) -> str | None:
        """Keeps the gateway's record of the settlement in step: gongji's state when gongji
        holds it, else the gateway's own undo or settlement cancelled. The state it moved the
        record to (SETTLED again after an undo was reversed, or REVERSED), None when it stayed."""
        if found.in_gongji:
            if not answer.HasField("settlement") or answer.settlement.settlement_id != found.setl_id:
                return None
            state = answer.settlement.state
            if state == ppb.SETTLEMENT_STATE_CAPTURED and found.state != SETTLED:
                await self._store.change_state(found.institution_code, found.setl_id, SETTLED, None, None)
                return SETTLED
            if state == ppb.SETTLEMENT_STATE_REVERSED and found.state != REVERSED:
                await self._store.change_state(found.institution_code, found.setl_id, REVERSED, found.undo_msgid, now)
                return REVERSED
            return None
        if found.settle_msgid == omsgid and found.state == SETTLED:
            await self._store.change_state(found.institution_code, found.setl_id, REVERSED, None, now)
            return REVERSED
        if found.undo_msgid == omsgid and found.state == UNDONE:
            await self._store.change_state(found.institution_code, found.setl_id, SETTLED, None, None)
            return SETTLED
        return None

    # 3201 ---------------------------------------------------------------------------------

    async def reconcile(self, envelope: Envelope) -> dict[str, Any]:
        """对账 of a period: the institution's totals against the settlements the gateway relayed
        (count, medfee, fund and acct_pay as reported), after checking that record against
        gongji's books (ReconcileInstitution per day): if they disagree the answer is 3."""
        data = input_node(envelope)
        begin, end = period(text(data, "stmt_begndate", max_length=10), text(data, "stmt_enddate", max_length=10))
        clr_type = text(data, "clr_type", required=False, max_length=2)
        if clr_type not in CLEARING_TYPES:
            raise Refused(why.FIELD_INVALID, f"clr_type {clr_type}: expected 11, 21, 41, 99 or none")
        with_undone = _flag(data, "refd_setl_flag", "0")
        count = text(data, "fixmedins_setl_cnt", max_length=9)
        if not (count.isascii() and count.isdigit()):
            raise Refused(why.FIELD_INVALID, "fixmedins_setl_cnt: expected a whole number of settlements")
        theirs = (
            int(count), amount(data, "medfee_sumamt", allow_negative=True),
            amount(data, "fund_pay_sumamt", allow_negative=True), amount(data, "acct_pay", allow_negative=True),
        )  # fmt: skip
        code = envelope.fixmedins_code
        relayed = await self._store.settlements_touching(code, begin, end)
        books = 0
        day = begin
        while day < end:
            request = papi.ReconcileInstitutionRequest(institution_code=code, date=china_day(day))
            books += (await self._call(envelope, "payment", "ReconcileInstitution", request)).net_fen
            day += timedelta(days=1)
        ours = totals(relayed, begin, end, clr_type, with_undone, self._account_pay, envelope.mdtrtarea_admvs)
        if net_in_gongji(relayed, begin, end) != books:
            result, description = "3", "gongji's account books differ from the settlements relayed by this gateway"
        else:
            result, description = compare(ours, theirs)
        shown = (
            f"centre: {ours[0]} settlements, medfee_sumamt {fen_to_yuan(ours[1])}, "
            f"fund_pay_sumamt {fen_to_yuan(ours[2])}, acct_pay {fen_to_yuan(ours[3])}"
        )
        return {
            "stmtinfo": {
                "setl_optins": text(data, "setl_optins", required=False) or envelope.insuplc_admdvs,
                "stmt_rslt": result, "stmt_rslt_dscr": f"{description}; {shown}",
            }
        }  # fmt: skip

    # shared -------------------------------------------------------------------------------

    def _charge(self, envelope: Envelope) -> Charge:
        data = input_node(envelope)
        psn_no = id_number(data, "psn_no")
        cert_type = text(data, "mdtrt_cert_type", max_length=2)
        if cert_type not in CREDENTIALS:
            raise Refused(
                why.FIELD_INVALID, f"mdtrt_cert_type: {cert_type!r}; use 01 (e-credential), 02 (ID) or 03 (card)"
            )
        holder = id_number(data, "mdtrt_cert_no")
        medfee = amount(data, "medfee_sumamt")
        given_part = data.get("psn_part_amt") is not None
        given_fund = data.get("fund_pay_sumamt") is not None
        if not given_part and not given_fund:
            raise Refused("FIELD_REQUIRED", "psn_part_amt: missing; send it, or fund_pay_sumamt")
        part = amount(data, "psn_part_amt") if given_part else medfee - amount(data, "fund_pay_sumamt")
        fund = medfee - part
        if given_fund and given_part and amount(data, "fund_pay_sumamt") != fund:
            raise Refused(why.AMOUNTS_INCONSISTENT, "medfee_sumamt − fund_pay_sumamt differs from psn_part_amt")
        if part < 0 or part > medfee:
            raise Refused(why.AMOUNTS_INCONSISTENT, "psn_part_amt must lie between 0 and medfee_sumamt")
        med_type = text(data, "med_type", required=False, max_length=6)
        return Charge(
            psn_no=psn_no,
            credential=ppb.Credential(type=CREDENTIALS[cert_type], holder_id_number=holder),
            # A stay's messages find its deposit hold by mdtrt_id, so an inpatient one must name it.
            mdtrt_id=text(data, "mdtrt_id", required=envelope.infno in INPATIENT) or envelope.msgid,
            medfee_fen=medfee, fund_fen=fund, psn_part_fen=part,
            use_accounts=_flag(data, "acct_used_flag", "1"),
            use_category=_use_category(envelope.infno, med_type), chronic=med_type == "14",
            mid_setl=_flag(data, "mid_setl_flag", "0"),
        )  # fmt: skip

    @staticmethod
    def _moves_accounts(charge: Charge) -> bool:
        return charge.use_accounts and charge.psn_part_fen > 0

    def _bill(self, envelope: Envelope, charge: Charge) -> ppb.Bill:
        if not envelope.mdtrtarea_admvs:
            raise Refused("INVALID_ADMDVS", "mdtrtarea_admvs: missing; send the region of treatment")
        try:  # checked here, so that the refusal names the field the institution sent
            validate_admdvs(envelope.mdtrtarea_admvs, "mdtrtarea_admvs")
        except DomainError as refusal:
            raise Refused(refusal.reason.value, refusal.message) from None
        return ppb.Bill(
            institution_code=envelope.fixmedins_code, institution_admdvs=envelope.mdtrtarea_admvs,
            patient_id_number=charge.psn_no, credential=charge.credential, use_category=charge.use_category,
            self_pay_fen=charge.psn_part_fen, chronic_disease=charge.chronic, use_own_account=True,
            institution_settlement_id=envelope.msgid,
        )  # fmt: skip

    async def _split(
        self, envelope: Envelope, charge: Charge, settlement: ppb.Settlement, *, read_balance: bool = False
    ) -> Split:
        """The split of a settlement; balc the leg's balance after, or (read_balance, for holds
        and captures) the personal account's available balance read afterwards."""
        own = settlement.own_account_pay_fen + settlement.wallet_pay_fen
        own_legs = (
            leg.payer_balance_after_fen
            for leg in settlement.legs
            if leg.source == ppb.PAYMENT_SOURCE_OWN_ACCOUNT and leg.payer_id_number == charge.psn_no
        )
        balance = None if read_balance else next(own_legs, None)
        if balance is None:
            balance = await self._balance(envelope, charge.psn_no)
        return Split(own, settlement.mutual_aid_pay_fen, settlement.cash_pay_fen, balance)

    async def _balance(self, envelope: Envelope, psn_no: str) -> int:
        return await self._available(envelope, psn_no, ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT)

    def _setlinfo(
        self, envelope: Envelope, charge: Charge, split: Split, *, setl_id: str, at: datetime
    ) -> dict[str, Any]:
        record = RelayedSettlement(
            envelope.fixmedins_code, setl_id, envelope.msgid, envelope.infno, "", charge.mdtrt_id, charge.psn_no,
            True, charge.mid_setl, charge.medfee_fen, charge.fund_fen, charge.psn_part_fen, split.own_account_fen,
            split.mutual_aid_fen, split.cash_fen, SETTLED, at,
        )  # fmt: skip
        return self._recorded_setlinfo(envelope, record, split.balance_fen, at)

    def _recorded_setlinfo(
        self, envelope: Envelope, record: RelayedSettlement, balance_fen: int, at: datetime
    ) -> dict[str, Any]:
        acct_pay = self._account_pay.acct_pay(envelope.mdtrtarea_admvs, record.own_account_fen, record.mutual_aid_fen)
        money: dict[str, Decimal] = {
            "medfee_sumamt": fen_to_yuan(record.medfee_fen), "fund_pay_sumamt": fen_to_yuan(record.fund_fen),
            "psn_part_amt": fen_to_yuan(record.psn_part_fen), "acct_pay": fen_to_yuan(acct_pay),
            "acct_mulaid_pay": fen_to_yuan(record.mutual_aid_fen), "psn_cash_pay": fen_to_yuan(record.cash_fen),
            "balc": fen_to_yuan(balance_fen),
        }  # fmt: skip
        return {
            "setl_id": record.setl_id, "mdtrt_id": record.mdtrt_id, "psn_no": record.psn_no,
            "setl_time": china_time(at), **money, "medins_setl_id": record.settle_msgid,
            "mid_setl_flag": "1" if record.mid_setl else "0",
            # The agency that clears the bill (清算经办机构): the patient's insurance region's.
            "clr_optins": envelope.insuplc_admdvs,
        }  # fmt: skip


def _use_category(infno: str, med_type: str) -> int:
    if infno in ("2101", "2102"):
        return common.USE_CATEGORY_PHARMACY
    if med_type.startswith("5"):  # 生育 (maternity) medical types 51, 52, 53
        return common.USE_CATEGORY_MATERNITY
    if infno in ("2303", "2304"):
        return common.USE_CATEGORY_INPATIENT
    return common.USE_CATEGORY_CHRONIC_DISEASE_OUTPATIENT if med_type == "14" else common.USE_CATEGORY_OUTPATIENT


def _born(id_number: str, now: datetime) -> dict[str, Any]:
    """gend (1 male, 2 female), brdy and age, read from an 18-digit ID number."""
    born = birth_date(id_number)
    if born is None:
        return {"gend": "", "brdy": "", "age": None}
    today = now.astimezone(CHINA_STANDARD_TIME).date()
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return {"gend": "1" if int(id_number[16]) % 2 else "2", "brdy": born.isoformat(), "age": age}
