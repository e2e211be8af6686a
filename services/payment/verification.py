"""Verification of wallet transfers by face or QR-code password (医保码 / 刷脸).

The real check belongs to the national platform; gongji asks a Verifier. The
one shipped here is a stand-in for tests and the demo: it accepts a token of the
form "verified:<id number>:<method>" issued for that grantor and method.
"""

from __future__ import annotations

from typing import Protocol


class Verifier(Protocol):
    def verify(self, method: str, token: str, id_number: str) -> bool: ...


class StandInVerifier:
    def verify(self, method: str, token: str, id_number: str) -> bool:
        return token == stand_in_token(id_number, method)


def stand_in_token(id_number: str, method: str) -> str:
    return f"verified:{id_number}:{method}"
