"""Money is an int number of fen (分, 1/100 yuan). No floats anywhere."""

from __future__ import annotations

import re

from shared.errors import DomainError, Reason

INT64_MAX = 2**63 - 1
# No personal account or wallet holds more than a billion yuan: a larger balance means money
# was made up. Credits that would pass it are refused, and the ledger audit reports one.
MAX_BALANCE_FEN = 100_000_000_000
# The most one call moves unless the deployment says otherwise (--max-amount-fen).
DEFAULT_MAX_AMOUNT_FEN = 10_000_000


def format_yuan(fen: int) -> str:
    """12345 → "123.45" (the national interface's two-decimal yuan)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


_YUAN = re.compile(r"(-?)([0-9]+)(?:\.([0-9]{0,2}))?")


def parse_yuan(text: str) -> int:
    """Yuan text to fen exactly ("123.45" → 12345): ASCII digits, at most two decimals."""
    match = _YUAN.fullmatch(text)
    if match is None:
        raise DomainError(Reason.INVALID_AMOUNT, f"{text!r} is not an amount in yuan with at most two decimals")
    sign, whole, cents = match.groups()
    fen = int(whole) * 100 + int((cents or "").ljust(2, "0"))
    return -fen if sign else fen


def require_positive(amount_fen: int, field: str) -> int:
    if amount_fen <= 0 or amount_fen > INT64_MAX:
        raise DomainError(Reason.INVALID_AMOUNT, f"{field} must be a positive number of fen", field=field)
    return amount_fen


def within_limit(amount_fen: int, field: str, limit_fen: int) -> int:
    """Refuses an amount, of either sign, larger than one call may move; every sum of a few
    such amounts then stays far inside int64 on SQLite and PostgreSQL alike."""
    if abs(amount_fen) > limit_fen:
        raise DomainError(
            Reason.AMOUNT_LIMIT_EXCEEDED,
            f"{field} may move at most {limit_fen} fen in one call",
            field=field,
            metadata={"max_fen": str(limit_fen)},
        )
    return amount_fen
