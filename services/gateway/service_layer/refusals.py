"""Refusals of a transaction: the reason that goes into err_msg, and whether the refusal is
the message id's answer for good or a passing state a retry of the same msgid may get past."""

from __future__ import annotations

# Reasons of the gateway's own (gongji's come in the ErrorInfo of the refusal).
INSTITUTION_MISMATCH = "INSTITUTION_MISMATCH"
MSGID_REUSED = "MSGID_REUSED"
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
NOT_REVERSIBLE = "NOT_REVERSIBLE"
SETTLEMENT_MISMATCH = "SETTLEMENT_MISMATCH"
SETTLEMENT_NOT_FOUND = "SETTLEMENT_NOT_FOUND"
AMOUNTS_INCONSISTENT = "AMOUNTS_INCONSISTENT"
FIELD_INVALID = "FIELD_INVALID"
PERIOD_TOO_LONG = "PERIOD_TOO_LONG"
UNKNOWN_TRANSACTION = "UNKNOWN_TRANSACTION"
STAY_BUSY = "STAY_BUSY"
STAY_CLOSED = "STAY_CLOSED"


class Refused(Exception):
    """A transaction answered with infcode -1. `final`: the answer is stored as the msgid's
    first answer (a repeat gets it back); otherwise nothing is stored and a retry runs again."""

    def __init__(self, reason: str, message: str, *, final: bool = True) -> None:
        super().__init__(f"[{reason}] {message}")
        self.reason = reason
        self.message = message
        self.final = final
