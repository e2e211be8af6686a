"""`gongji demo` runs as a user would run it and tells the family's story over mutual TLS."""

from __future__ import annotations

import re
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
        "every port serves mutual TLS",
        "[as institution/H320100-001]",
        "[as channel/WECHAT]",
        "[as operator/000000/ops]",
        "a caller without a client certificate asks to settle  [as nobody]",
        "OUT_OF_SCOPE",
        "SETTLEMENT_NOT_FOUND",
        "CALLER_NOT_ALLOWED",
        "AMOUNT_LIMIT_EXCEEDED",
        "(masked by the server) balc 0.00",
        "passed over: father (CONTACT_CHANGE_OVERDUE)",
        # The HIS view: the national envelope over HTTPS to the gateway, amounts in yuan.
        "9001 sign-in (签到)",
        "1101 person info (人员信息) of 320102********0138",
        "2206 pre-settlement (预结算) of 300.00 yuan",
        "→ infcode 0, acct_pay 120.50, acct_mulaid_pay 120.50, psn_cash_pay 0.00",
        "2207 settlement (结算) of the same bill",
        "[as institution/H32010000001 by HTTPS]",
        "[INSTITUTION_MISMATCH]",
        "mother's balance after the HIS's settlement: 379.50",
    ):
        assert expected in out, f"missing from the demo's report: {expected}"
    assert "Traceback" not in result.stderr
    assert not re.search(r"(?<![0-9])[0-9]{17}[0-9X](?![0-9])", out), "the demo printed a whole ID number"
