"""Inpatient stays (住院): a deposit hold that follows the bill over days, settled at discharge.

- 2303 (pre-settlement) with the stay's running individual share places a hold on the patient's
  accounts for the stay (AuthorizeSettlement, request_id = msgid, the bill's use INPATIENT,
  expire_time ``hold_days`` ahead). A later 2303 of the same stay (mdtrt_id) first releases the
  hold it has (ReleaseSettlement, request_id = msgid + "-R") and then authorises the new share,
  so the hold follows the bill and the accounts are held for one amount only.
- 2304 (settlement) of a stay with a live hold captures it (CaptureSettlement, request_id =
  msgid) for the final share; the part of the hold not captured is released by the payment
  service. A final share larger than the hold is not captured: the hold is released and the
  whole share settled afresh (Settle), so the accounts pay as much as they would have without
  a hold and only the rest is cash. A hold that expired (or was released) before the 2304 is
  settled afresh too, and the answer's warn_msg says so. ``mid_setl_flag`` "1" settles what is
  owed so far and leaves the stay open: the next 2303 places a new hold. A final 2304 closes the
  stay; a 2303 of a closed stay holds nothing (a quote, with a warning) until its 2304 is undone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from services.common.clock import Clock
from services.gateway.service_layer import refusals as why
from services.gateway.service_layer.ports import Gongji, GongjiRefused, Hold, Stay, Store
from services.gateway.service_layer.refusals import Refused
from services.gateway.wire.envelope import Envelope, same_person, sent_at
from shared.china_time import CHINA_STANDARD_TIME

# The payment service refuses an expire_time more than 60 days ahead of its own clock
# (services/payment/service_layer/settling.py MAX_HOLD); one day is left for clocks that differ.
MAX_HOLD_DAYS = 59
DEFAULT_HOLD_DAYS = 30
# Suffix of the request_id of a release a message makes (payment's request ids: up to 128 characters).
RELEASE_SUFFIX = "-R"
# A release refused because the hold is gone already: nothing left to release.
GONE = {"ALREADY_RELEASED", "ALREADY_CAPTURED", "HOLD_EXPIRED"}


def check_hold_days(days: int) -> int:
    """The hold length in days, 1 to MAX_HOLD_DAYS: a 2303's hold lapses after that many days."""
    if not 1 <= days <= MAX_HOLD_DAYS:
        raise ValueError(
            f"inpatient hold days: {days}; give 1 to {MAX_HOLD_DAYS} (the payment service holds 60 at most)"
        )
    return days


class Inpatient:
    def __init__(self, gongji: Gongji, store: Store, clock: Clock, hold_days: int = DEFAULT_HOLD_DAYS) -> None:
        self._gongji = gongji
        self._store = store
        self._clock = clock
        self._hold = timedelta(days=check_hold_days(hold_days))

    async def _call(self, envelope: Envelope, method: str, request: Any) -> Any:
        return await self._gongji.call("payment", method, request, envelope.fixmedins_code)

    async def _stay(self, envelope: Envelope, mdtrt_id: str, psn_no: str) -> Stay | None:
        stay = await self._store.stay(envelope.fixmedins_code, mdtrt_id)
        if stay is not None and same_person(stay.psn_no) != psn_no:
            raise Refused(why.SETTLEMENT_MISMATCH, f"mdtrt_id {mdtrt_id} is the stay of another psn_no")
        return stay

    async def _release(self, envelope: Envelope, settlement_id: str, reason: str) -> None:
        request = papi.ReleaseSettlementRequest(
            request_id=envelope.msgid + RELEASE_SUFFIX, settlement_id=settlement_id, reason=reason
        )
        try:
            await self._call(envelope, "ReleaseSettlement", request)
        except GongjiRefused as error:
            if error.reason not in GONE:
                raise

    async def _swap(self, envelope: Envelope, mdtrt_id: str, psn_no: str, old: str | None, new: Hold | None) -> None:
        if not await self._store.swap_hold(envelope.fixmedins_code, mdtrt_id, psn_no, old, new, self._clock.now()):
            raise Refused(
                why.STAY_BUSY, f"another message changed the hold of mdtrt_id {mdtrt_id} meanwhile; send a new msgid"
            )

    async def hold(
        self, envelope: Envelope, mdtrt_id: str, psn_no: str, bill: ppb.Bill | None
    ) -> tuple[ppb.Settlement | None, str]:
        """2303: the stay's hold renewed for `bill` (None: the accounts pay nothing, so no hold)
        and a warning; no settlement when nothing is held (the caller answers with a quote)."""
        stay = await self._stay(envelope, mdtrt_id, psn_no)
        if stay is not None and stay.discharged:
            return None, f"mdtrt_id {mdtrt_id} was settled at discharge (2304); nothing held"
        old = stay.hold if stay is not None else None
        if bill is not None and old is not None and old.msgid == envelope.msgid:
            # A retry of the 2303 that placed the current hold (its answer was lost): the same hold.
            return (await self._authorize(envelope, bill)).settlement, ""
        if old is not None:
            await self._release(envelope, old.settlement_id, "renewed by a later 2303")
            await self._swap(envelope, mdtrt_id, psn_no, old.settlement_id, None)
        if bill is None:
            return None, ""
        held = (await self._authorize(envelope, bill)).settlement
        expire = held.expire_time.ToDatetime(tzinfo=UTC)
        try:
            await self._swap(
                envelope, mdtrt_id, psn_no, None, Hold(held.settlement_id, envelope.msgid, bill.self_pay_fen, expire)
            )
        except Refused:
            await self._release(envelope, held.settlement_id, "another 2303 of the stay won")
            raise
        return held, ""

    def _expiry(self, envelope: Envelope) -> datetime:
        """When a 2303's hold lapses: `hold_days` after the message's own inf_time, so the same
        body resent (its answer lost, recorded or not) asks the payment service for the same hold;
        the gateway's clock instead when the sender's is so far off that the hold would last less
        than half its length, or lapse past what the payment service holds."""
        now = self._clock.now()
        expire = sent_at(envelope) + self._hold
        return expire if now + self._hold / 2 <= expire <= now + self._hold + timedelta(days=1) else now + self._hold

    async def _authorize(self, envelope: Envelope, bill: ppb.Bill) -> Any:
        expire = Timestamp()
        expire.FromDatetime(self._expiry(envelope))
        request = papi.AuthorizeSettlementRequest(request_id=envelope.msgid, bill=bill, expire_time=expire)
        return await self._call(envelope, "AuthorizeSettlement", request)

    async def settle(
        self, envelope: Envelope, mdtrt_id: str, psn_no: str, share_fen: int, moves_accounts: bool
    ) -> tuple[ppb.Settlement | None, str]:
        """2304: the capture of the stay's hold for `share_fen`, and a warning; no settlement
        when the caller is to settle as without a hold (none, expired, too small, or the
        accounts pay nothing). The stay has no hold afterwards either way. A stay settled at
        discharge is refused: only a retry of that final 2304 itself gets through (to its answer)."""
        stay = await self._stay(envelope, mdtrt_id, psn_no)
        if (
            stay is not None
            and stay.discharged
            and await self._store.settlement_of_msgid(envelope.fixmedins_code, envelope.msgid) is None
        ):
            raise Refused(
                why.STAY_CLOSED,
                f"mdtrt_id {mdtrt_id} was settled at discharge (a final 2304); undo that settlement (2305) "
                "before settling the stay again",
            )
        hold = stay.hold if stay is not None else None
        if hold is None:
            return None, ""
        current = (
            await self._call(envelope, "GetSettlement", papi.GetSettlementRequest(settlement_id=hold.settlement_id))
        ).settlement
        state = current.state
        live = state == ppb.SETTLEMENT_STATE_AUTHORIZED and hold.expire_time > self._clock.now()
        captured: ppb.Settlement | None = None
        warning = ""
        if moves_accounts and (state == ppb.SETTLEMENT_STATE_CAPTURED or (live and share_fen <= hold.held_fen)):
            # CAPTURED: a retry of this capture after its answer was lost; payment answers it again.
            request = papi.CaptureSettlementRequest(
                request_id=envelope.msgid, settlement_id=hold.settlement_id, amount_fen=min(share_fen, hold.held_fen)
            )
            captured = (await self._call(envelope, "CaptureSettlement", request)).settlement
        else:
            if state == ppb.SETTLEMENT_STATE_AUTHORIZED:
                await self._release(envelope, hold.settlement_id, "2304 settles afresh")
            if not live and moves_accounts:
                until = hold.expire_time.astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M:%S")
                warning = f"the deposit hold of mdtrt_id {mdtrt_id} (until {until}) had lapsed; settled afresh"
            elif moves_accounts:
                warning = "the final share exceeds the deposit hold; the hold was released and the bill settled afresh"
        await self._store.swap_hold(
            envelope.fixmedins_code, mdtrt_id, psn_no, hold.settlement_id, None, self._clock.now()
        )
        return captured, warning

    async def settled(self, envelope: Envelope, mdtrt_id: str, psn_no: str, mid_stay: bool) -> None:
        """After a 2304: a final one closes the stay (later 2303s hold nothing)."""
        if mid_stay:
            return
        now = self._clock.now()
        if await self._store.stay(envelope.fixmedins_code, mdtrt_id) is None:
            await self._store.swap_hold(envelope.fixmedins_code, mdtrt_id, psn_no, None, None, now)
        await self._store.set_discharged(envelope.fixmedins_code, mdtrt_id, True, now)

    async def closed_again(self, envelope: Envelope, mdtrt_id: str, psn_no: str) -> None:
        """After a 2601 of the 2305 that undid a final 2304: that 2304 stands again, so the stay is
        closed again and a deposit held since the undo is released (else a later 2304 would
        capture it and settle the stay twice)."""
        stay = await self._store.stay(envelope.fixmedins_code, mdtrt_id)
        if stay is not None and stay.hold is not None:
            await self._release(envelope, stay.hold.settlement_id, "the stay's final 2304 stands again")
            await self._swap(envelope, mdtrt_id, psn_no, stay.hold.settlement_id, None)
        await self.settled(envelope, mdtrt_id, psn_no, mid_stay=False)

    async def hold_of(self, institution_code: str, msgid: str, psn_no: str) -> Stay | None:
        """The stay whose live hold the 2303 `msgid` placed (None: none, or its answer was lost and
        the gateway never recorded it); refused when it is another person's."""
        stay = await self._store.stay_held_by(institution_code, msgid)
        if stay is not None and same_person(stay.psn_no) != psn_no:
            raise Refused(why.SETTLEMENT_MISMATCH, f"msgid {msgid} held the stay of another psn_no")
        return stay

    async def hold_reversed(self, envelope: Envelope, stay: Stay) -> None:
        """After a 2601 of the 2303 that placed the stay's hold: the payment service released it,
        so the stay has none (its next 2304 settles afresh)."""
        if stay.hold is not None:
            await self._swap(envelope, stay.mdtrt_id, stay.psn_no, stay.hold.settlement_id, None)

    async def reopened(self, institution_code: str, mdtrt_id: str) -> None:
        """After a 2305 undid a final 2304: the stay is open again."""
        await self._store.set_discharged(institution_code, mdtrt_id, False, self._clock.now())
