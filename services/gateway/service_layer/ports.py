"""What the transactions need from outside: gongji's services, and the gateway's own store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

SETTLED = "SETTLED"
UNDONE = "UNDONE"
REVERSED = "REVERSED"


class GongjiRefused(Exception):
    """A gongji call that ended in an error: its gRPC code name, ErrorInfo reason and message."""

    def __init__(self, code: str, reason: str, message: str) -> None:
        super().__init__(f"{code} [{reason}] {message}")
        self.code = code
        self.reason = reason
        self.message = message


class StoreUnavailable(Exception):
    """The gateway's own database failed a read or write. What gongji did under the msgid is
    idempotent by it, so the HIS is told to send the same msgid again and nothing is stored."""


class Gongji(Protocol):
    async def call(self, service: str, method: str, request: Any, institution_code: str) -> Any:
        """`service` ("binding" or "payment") `method` as the gateway acting for the institution;
        GongjiRefused for any error status."""


@dataclass(frozen=True)
class StoredAnswer:
    """What a msgid holds: the digest of the body that claimed it, and that body's answer, b""
    until it has one (its work is in flight, ended without a final answer, or crashed)."""

    request_digest: str
    answer: bytes
    infno: str = ""  # the transaction the message asked for


@dataclass(frozen=True)
class RelayedSettlement:
    institution_code: str
    setl_id: str
    settle_msgid: str
    infno: str
    clr_type: str
    mdtrt_id: str
    psn_no: str
    in_gongji: bool
    mid_setl: bool
    medfee_fen: int
    fund_fen: int
    psn_part_fen: int
    own_account_fen: int
    mutual_aid_fen: int
    cash_fen: int
    state: str
    settle_time: datetime
    undo_msgid: str | None = None
    close_time: datetime | None = None


@dataclass(frozen=True)
class Hold:
    """A deposit hold (AuthorizeSettlement) on the patient's accounts for an inpatient stay:
    the bill's individual share it authorised (`held_fen`, cash part included), until when."""

    settlement_id: str
    msgid: str
    held_fen: int
    expire_time: datetime


@dataclass(frozen=True)
class Stay:
    """An inpatient stay (mdtrt_id) as the gateway follows it: its live hold, if any, and
    whether a final (not mid-stay) 2304 settled it."""

    institution_code: str
    mdtrt_id: str
    psn_no: str
    hold: Hold | None
    discharged: bool


class Store(Protocol):
    async def answer(self, institution_code: str, msgid: str) -> StoredAnswer | None:
        """The msgid's stored answer, or its claim (answer b"") while it has none yet."""

    async def claim(self, institution_code: str, msgid: str, infno: str, digest: str, at: datetime) -> StoredAnswer:
        """Claims the msgid for the body of this digest unless it is claimed already; the claim
        (answer b"" until one is kept) or the answer stored, whichever body holds it."""

    async def keep_answer(
        self, institution_code: str, msgid: str, infno: str, digest: str, answer: bytes, at: datetime
    ) -> StoredAnswer:
        """Stores the answer into this body's claim unless one is stored already; what is
        stored either way (another body's claim is left as it is)."""

    async def sign_in(
        self, institution_code: str, opter: str, day: str, sign_no: str, at: datetime
    ) -> tuple[str, datetime]:
        """The day's sign-in of the operator: this one if first, else the earlier one."""

    async def signed_in(self, institution_code: str, sign_no: str) -> bool:
        """Whether a 9001 of the institution was answered with this sign_no."""

    async def record_settlement(self, settlement: RelayedSettlement) -> None:
        """Records a settlement unless it is recorded already (a retry after a crash)."""

    async def settlement(self, institution_code: str, setl_id: str) -> RelayedSettlement | None: ...

    async def settlement_of_msgid(self, institution_code: str, msgid: str) -> RelayedSettlement | None:
        """The settlement a message settled or undid."""

    async def change_state(
        self, institution_code: str, setl_id: str, state: str, undo_msgid: str | None, close_time: datetime | None
    ) -> None: ...

    async def settlements_touching(
        self, institution_code: str, start: datetime, end: datetime
    ) -> list[RelayedSettlement]:
        """Settlements settled or closed within [start, end)."""

    async def record_reversal(self, institution_code: str, omsgid: str, msgid: str, at: datetime) -> None: ...

    async def reversed(self, institution_code: str, msgid: str) -> bool:
        """Whether a 2601 cancelled this message id."""

    async def stay(self, institution_code: str, mdtrt_id: str) -> Stay | None: ...
    async def stay_held_by(self, institution_code: str, msgid: str) -> Stay | None:
        """The stay whose live hold the 2303 `msgid` placed, if any."""
        ...

    async def swap_hold(
        self, institution_code: str, mdtrt_id: str, psn_no: str, expected: str | None, hold: Hold | None, at: datetime
    ) -> bool:
        """Replaces the stay's hold if it is still `expected` (a settlement id, None for none),
        creating the stay if new; False when another request changed it first."""

    async def set_discharged(self, institution_code: str, mdtrt_id: str, discharged: bool, at: datetime) -> None: ...
