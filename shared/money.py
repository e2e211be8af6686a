"""Money is an int number of fen (分, 1/100 yuan). No floats anywhere."""

from __future__ import annotations

import re

from shared.errors import DomainError, Reason

INT64_MAX = 2**63 - 1


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
