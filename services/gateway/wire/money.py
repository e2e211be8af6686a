"""Money on the national interface: decimal yuan with two places on the wire, int fen inside.

Conversion is exact or refused; nothing is ever rounded. Bodies are parsed with
``json.loads(..., parse_float=Decimal)``, so an amount arrives as a ``Decimal`` (``12.30``,
``1E+2``), an ``int`` (``12``) or, as some HIS systems send it, a string of digits (``"12.30"``).
A refusal names the field and says what was wrong, for the HIS developer who reads it.
"""

from __future__ import annotations

import re
from decimal import Decimal

from shared.privacy import scrub

# A bound on any one amount on the wire: one billion yuan. Larger figures are not money a
# hospital moves in one call, and refusing them keeps every sum far inside int64.
MAX_AMOUNT_FEN: int = 100_000_000_000
_MAX_AMOUNT_YUAN = Decimal(f"{MAX_AMOUNT_FEN}e-2")
# Caller input quoted in a refusal is cut to this many characters.
_SHOWN = 64
# An amount sent as a JSON string: ASCII digits, an optional sign, at most one point.
_YUAN_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


class AmountRefused(ValueError):
    """An amount that is not a whole number of fen in bounds; ``str()`` is ``"field: problem"``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def yuan_to_fen(value: object, field: str, *, allow_negative: bool = False) -> int:
    """Yuan as the parsed body gives it (``Decimal``, ``int`` or a string of digits) to fen, exactly.

    Refused: booleans, floats (the body was parsed without ``parse_float=Decimal``), NaN and
    Infinity, anything that is not a whole number of fen (``1.005``, ``1E-3``), negatives unless
    ``allow_negative``, and magnitudes beyond ``MAX_AMOUNT_FEN``. Trailing zeros are the same
    value (``12.300`` is ``12.30``), and an exponent form is accepted when it is whole fen
    (``1E+2`` is ``100.00``)."""
    amount = _as_decimal(value, field)
    if not amount.is_finite():
        raise AmountRefused(field, f"{_shown(amount)} is not an amount; send a number such as 12.30")
    if amount < 0 and not allow_negative:
        raise AmountRefused(field, f"{_shown(amount)} is negative; send zero or more")
    if amount > _MAX_AMOUNT_YUAN:
        raise AmountRefused(field, f"{_shown(amount)} is more than the largest amount, {_MAX_AMOUNT_YUAN} yuan")
    if amount < -_MAX_AMOUNT_YUAN:
        raise AmountRefused(field, f"{_shown(amount)} is less than the smallest amount, -{_MAX_AMOUNT_YUAN} yuan")
    return _whole_fen(amount, field)


def fen_to_yuan(fen: int) -> Decimal:
    """Fen to yuan with exactly two places (``1230`` → ``Decimal("12.30")``), for any int."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"fen must be an int, not {type(fen).__name__}")
    # Built from text, which Decimal takes exactly whatever the context's precision.
    return Decimal(f"{int(fen)}e-2")


def _as_decimal(value: object, field: str) -> Decimal:
    # bool before int: True is an int in Python, and JSON true is no amount.
    if isinstance(value, bool):
        raise AmountRefused(field, f"{str(value).lower()} is not an amount; send a number such as 12.30")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        raise AmountRefused(
            field, f"{_shown(repr(value))} arrived as a binary float; parse the body with parse_float=Decimal"
        )
    if isinstance(value, str):
        if _YUAN_TEXT.fullmatch(value) is None:
            raise AmountRefused(field, f"{_shown(value, quoted=True)} is not an amount in yuan such as 12.30")
        return Decimal(value)
    if value is None:
        raise AmountRefused(field, "missing (null); send an amount in yuan such as 12.30")
    kind = {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)
    raise AmountRefused(field, f"expected an amount in yuan such as 12.30, got {kind}")


def _whole_fen(amount: Decimal, field: str) -> int:
    """The exact fen of an amount already bounded in size, read from its digits.

    Decimal arithmetic rounds to the context's precision, so a long tail of digits could
    vanish in ``amount * 100``; the digits themselves cannot lie."""
    sign, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite, checked by the caller
    kept = len(digits)
    while kept > 1 and digits[kept - 1] == 0:
        kept -= 1
    exponent += len(digits) - kept
    if kept == 1 and digits[0] == 0:
        return 0
    if exponent < -2:
        raise AmountRefused(field, f"{_shown(amount)} has more than two decimal places")
    # Bounded by MAX_AMOUNT_FEN, so at most 12 significant digits and a small exponent.
    fen = int("".join(map(str, digits[:kept]))) * 10 ** (exponent + 2)
    return -fen if sign else fen


def _shown(value: object, *, quoted: bool = False) -> str:
    """Caller input as quoted in a refusal: ID and mobile numbers masked, cut to ``_SHOWN`` characters."""
    text = scrub(str(value))
    if len(text) > _SHOWN:
        text = text[: _SHOWN - 1] + "…"
    return repr(text) if quoted else text
