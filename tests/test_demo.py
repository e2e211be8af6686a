"""`gongji demo` runs as a user would run it and tells the family's story."""

from __future__ import annotations

import subprocess
import sys


def test_the_demo_walks_a_family_through_binding_payment_and_cross_province_aid():
    result = subprocess.run([sys.executable, "-m", "services.cli", "demo"], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for expected in (
        "CAP_REACHED",
        "OUTSIDE_REGION",
        "[mother 300.00, father 200.00]",
        "undo: SETTLEMENT_STATE_REFUNDED",
        "REQUEST_REVERSED",
        "IMPERSONATION",
        "grandfather 200.00 (620100)",
        "TRANSFER_STATE_COMPLETED (62 → 32)",
        "node east: 62 owes 32 500.00; ledger balanced=True",
        "node west: 62 owes 32 500.00; ledger balanced=True",
        "the grantor dies: 3 bindings end",
    ):
        assert expected in out, f"missing from the demo's report: {expected}"
    assert "Traceback" not in result.stderr
