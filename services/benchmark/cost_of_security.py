"""The cost-of-security phase: the single-node Settle load again on binding and east restarted
with --insecure, so that the report can set plaintext beside mutual TLS."""

from __future__ import annotations

from typing import Any

from services.benchmark.cpu import CpuMeter
from services.benchmark.desk import plaintext
from services.benchmark.families import Family
from services.benchmark.options import Options
from services.benchmark.servers import Servers
from services.benchmark.settle_load import rerun


async def measure_plaintext(
    options: Options, servers: Servers, families: list[Family], meter: CpuMeter
) -> dict[str, Any]:
    """The single-node phase's Settle load again, on binding and east restarted with --insecure:
    plaintext channels whose calls name their hospital in x-forwarded-client-cert, so the access
    policy still judges each one and only TLS differs. The families are those already registered."""
    return await rerun("plain", 20260303, options, servers, families, plaintext, meter)
