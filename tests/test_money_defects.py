"""Money paths an outside client found wrong, each tried again: a bill settled twice, a payer
passed over without a word, a quote that was not the settlement, a reversal sent to the
node the hospital called, the wallet limits, and reconciliation as the hospital sees it."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import grpc
import pytest

from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from shared.principals import institution
from shared.privacy import mask_id_number
from tests.helpers import binding_request, refusal_of, request_id
from tests.payment_helpers import PaymentFamily, refused


@pytest.fixture
def family(payment_service) -> PaymentFamily:
    return PaymentFamily(payment_service)


def settle(family: PaymentFamily, amount: int, bill_id: str, stub=None) -> ppb.Settlement:
    bill = family.bill(amount, institution_settlement_id=bill_id)
    return (
        (stub or family.payment).Settle(papi.SettleRequest(request_id=request_id(), bill=bill), timeout=30).settlement
    )


def test_one_bill_of_an_institution_is_settled_once_until_it_is_undone(family):
    first = settle(family, 30_000, "MDTRT-0001")
    with pytest.raises(grpc.RpcError) as raised:
        settle(family, 30_000, "MDTRT-0001")
    refusal = refusal_of(raised.value)
    assert (refusal.code, refusal.reason, refusal.fields) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "DUPLICATE_BILL",
        ("bill.institution_settlement_id",),
    )
    assert first.settlement_id in refusal.message
    assert refusal.metadata["settlement_id"] == first.settlement_id
    assert family.account(family.mother).balance_fen == 70_000  # charged once
    family.refund(first.settlement_id)
    again = settle(family, 30_000, "MDTRT-0001")  # an undone bill may be settled anew
    assert again.settlement_id != first.settlement_id
    assert settle(family, 1_000, "").captured_fen == 1_000  # bills without an id are not matched
    assert family.ledger().balanced


def test_reversing_the_undo_of_a_bill_settled_anew_since_is_refused_as_a_duplicate_and_changes_nothing(family):
    """One bill of an institution is settled once: a reversal (冲正) of its undo (撤销) would charge
    it a second time while the new settlement of it stands."""
    first = settle(family, 30_000, "MDTRT-0042")
    undo_key = request_id()
    family.payment.RefundSettlement(
        papi.RefundSettlementRequest(request_id=undo_key, settlement_id=first.settlement_id), timeout=30
    )
    second = settle(family, 30_000, "MDTRT-0042")
    reversal = papi.ReverseRequestRequest(request_id=request_id(), original_request_id=undo_key, reason="timeout")
    with pytest.raises(grpc.RpcError) as raised:
        family.payment.ReverseRequest(reversal, timeout=30)
    refusal = refusal_of(raised.value)
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.ALREADY_EXISTS, "DUPLICATE_BILL")
    assert refusal.metadata["settlement_id"] == second.settlement_id

    def state(settlement: ppb.Settlement) -> int:
        request = papi.GetSettlementRequest(settlement_id=settlement.settlement_id)
        return family.payment.GetSettlement(request, timeout=30).settlement.state

    assert (state(first), state(second)) == (ppb.SETTLEMENT_STATE_REFUNDED, ppb.SETTLEMENT_STATE_CAPTURED)
    assert family.account(family.mother).balance_fen == 70_000  # charged once
    assert family.ledger().balanced
    # With the new settlement undone, the first undo may be reversed: the bill is paid once again.
    family.refund(second.settlement_id)
    again = family.payment.ReverseRequest(
        papi.ReverseRequestRequest(request_id=request_id(), original_request_id=undo_key), timeout=30
    )
    assert again.settlement.state == ppb.SETTLEMENT_STATE_CAPTURED
    assert family.account(family.mother).balance_fen == 70_000
    assert family.ledger().balanced


@pytest.mark.slow
def test_ten_hospital_threads_settling_one_bill_at_once_charge_it_once(family, payment_service):
    barrier = threading.Barrier(10)

    def attempt(_: int) -> str:
        stub = payment_service.fresh_stub()
        try:
            barrier.wait(timeout=30)
            settle(family, 40_000, "MDTRT-RACE", stub)
            return "settled"
        except grpc.RpcError as error:
            return refusal_of(error).reason
        finally:
            stub.close()

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = sorted(pool.map(attempt, range(10)))
    assert outcomes == ["DUPLICATE_BILL"] * 9 + ["settled"]
    assert family.account(family.mother).balance_fen == 60_000
    assert family.ledger().balanced


def test_a_settlement_says_which_relative_was_passed_over_and_why(family):
    family.binding.ReportLifeEvent(
        bapi.ReportLifeEventRequest(
            request_id=request_id(), id_number=family.mother.id_number, event_type=bapi.LIFE_EVENT_TYPE_CONTACT_CHANGED
        )
    )
    family.clock.advance(timedelta(days=16))
    settled = family.settle(20_000)
    assert [(leg.payer_id_number, leg.amount_fen) for leg in settled.legs] == [
        (mask_id_number(family.father.id_number), 20_000)
    ]
    assert [(p.binding_id, p.grantor_id_number, p.reason) for p in settled.passed_over] == [
        (family.mother_binding.binding_id, mask_id_number(family.mother.id_number), "CONTACT_CHANGE_OVERDUE")
    ]
    whole = family.operator_view(settled)
    assert [p.grantor_id_number for p in whole.passed_over] == [family.mother.id_number]
    assert family.ledger().balanced


def test_a_bill_refused_for_want_of_money_says_why_the_relatives_bound_to_the_patient_paid_nothing(family):
    for grantor in (family.mother, family.father):
        family.binding.ReportLifeEvent(
            bapi.ReportLifeEventRequest(
                request_id=request_id(), id_number=grantor.id_number, event_type=bapi.LIFE_EVENT_TYPE_CONTACT_CHANGED
            )
        )
    family.clock.advance(timedelta(days=16))
    with pytest.raises(grpc.RpcError) as raised:
        family.payment.Settle(
            papi.SettleRequest(request_id=request_id(), bill=family.bill(20_000, refuse_cash_part=True)), timeout=10
        )
    refusal = refusal_of(raised.value)
    assert (refusal.reason, refusal.metadata) == (
        "INSUFFICIENT_FUNDS",
        {"shortfall_fen": "20000", "passed_over": "CONTACT_CHANGE_OVERDUE"},
    )
    assert "CONTACT_CHANGE_OVERDUE" in refusal.message
    assert family.account(family.mother).balance_fen == 100_000
    assert family.ledger().balanced


def test_a_quote_shows_what_the_settlement_will_take_remote_payers_included(two_nodes):
    from tests.test_cross_province import CrossFamily

    cross = CrossFamily(two_nodes)
    east = two_nodes.east.stub
    quoted = east.QuoteSettlement(papi.QuoteSettlementRequest(bill=cross.bill(50_000))).settlement
    settled = east.Settle(papi.SettleRequest(request_id=request_id(), bill=cross.bill(50_000))).settlement

    def split(settlement: ppb.Settlement) -> list[tuple[str, str, int]]:
        return [(leg.payer_id_number, leg.payer_admdvs, leg.amount_fen) for leg in settlement.legs]

    assert (
        split(quoted)
        == split(settled)
        == [
            (mask_id_number(cross.mother.id_number), "320100", 10_000),
            (mask_id_number(cross.father.id_number), "620100", 40_000),
        ]
    )
    assert (quoted.cash_pay_fen, quoted.mutual_aid_pay_fen) == (0, 50_000)
    cross.assert_books_close()


def test_a_reversal_sent_to_the_node_the_hospital_called_reaches_the_node_that_settled(two_nodes):
    from tests.test_cross_province import CrossFamily

    cross = CrossFamily(two_nodes)
    east, west = two_nodes.east.stub, two_nodes.west.stub
    key = request_id()
    settled = west.Settle(papi.SettleRequest(request_id=key, bill=cross.bill(30_000))).settlement  # east's bill
    assert settled.state == ppb.SETTLEMENT_STATE_CAPTURED
    reversal = west.ReverseRequest(papi.ReverseRequestRequest(request_id=request_id(), original_request_id=key))
    assert (reversal.original_found, reversal.settlement.settlement_id) == (True, settled.settlement_id)
    assert reversal.settlement.state == ppb.SETTLEMENT_STATE_REVERSED
    assert cross.balance(east, cross.mother).balance_fen == 10_000
    assert cross.balance(west, cross.father).balance_fen == 100_000

    never_sent = request_id()
    early = west.ReverseRequest(papi.ReverseRequestRequest(request_id=request_id(), original_request_id=never_sent))
    assert not early.original_found
    with pytest.raises(grpc.RpcError) as raised:  # it arrives after all, at either node: refused
        west.Settle(papi.SettleRequest(request_id=never_sent, bill=cross.bill(30_000)))
    assert refusal_of(raised.value).reason == "REQUEST_REVERSED"
    assert cross.balance(east, cross.mother).balance_fen == 10_000
    cross.assert_books_close()


def test_every_settlement_call_sent_to_the_node_the_hospital_called_reaches_the_node_that_holds_it(two_nodes):
    """A hospital in Nanjing talks to west; east holds its settlements. Reads, captures,
    releases and refunds sent to west act on east, and another hospital learns nothing."""
    from tests.test_cross_province import CrossFamily

    cross = CrossFamily(two_nodes)
    east, west = two_nodes.east.stub, two_nodes.west.stub
    held = west.AuthorizeSettlement(papi.AuthorizeSettlementRequest(request_id=request_id(), bill=cross.bill(30_000)))
    settlement_id = held.settlement.settlement_id
    assert west.GetSettlement(papi.GetSettlementRequest(settlement_id=settlement_id)).settlement == (
        east.GetSettlement(papi.GetSettlementRequest(settlement_id=settlement_id)).settlement
    )
    captured = west.CaptureSettlement(
        papi.CaptureSettlementRequest(request_id=request_id(), settlement_id=settlement_id, amount_fen=20_000)
    ).settlement
    assert (captured.state, captured.captured_fen) == (ppb.SETTLEMENT_STATE_CAPTURED, 20_000)
    refunded = west.RefundSettlement(
        papi.RefundSettlementRequest(request_id=request_id(), settlement_id=settlement_id)
    ).settlement
    assert refunded.state == ppb.SETTLEMENT_STATE_REFUNDED
    assert cross.balance(east, cross.mother).balance_fen == 10_000
    assert cross.balance(west, cross.father).balance_fen == 100_000

    released = west.AuthorizeSettlement(
        papi.AuthorizeSettlementRequest(request_id=request_id(), bill=cross.bill(5_000))
    ).settlement
    west.ReleaseSettlement(papi.ReleaseSettlementRequest(request_id=request_id(), settlement_id=released.settlement_id))
    assert east.GetSettlement(papi.GetSettlementRequest(settlement_id=released.settlement_id)).settlement.state == (
        ppb.SETTLEMENT_STATE_RELEASED
    )
    assert cross.balance(east, cross.mother).held_fen == 0

    other_hospital = west.as_principal(institution("H320100-777"))
    with pytest.raises(grpc.RpcError) as raised:
        other_hospital.GetSettlement(papi.GetSettlementRequest(settlement_id=settlement_id))
    assert refusal_of(raised.value).code == grpc.StatusCode.NOT_FOUND
    cross.assert_books_close()


def transfer(family: PaymentFamily, amount: int, method=ppb.VERIFICATION_METHOD_FACE, token: str | None = None,
             key: str | None = None) -> papi.TransferToWalletResponse:  # fmt: skip
    from services.payment.verification import stand_in_token

    name = ppb.VerificationMethod.Name(method).removeprefix("VERIFICATION_METHOD_")
    return family.payment.TransferToWallet(
        papi.TransferToWalletRequest(
            request_id=key or request_id(), grantor_id_number=family.mother.id_number,
            beneficiary_id_number=family.child.id_number, amount_fen=amount,
            verification=ppb.Verification(
                method=method, token=token if token is not None else stand_in_token(family.mother.id_number, name)
            ),
        ),
        timeout=20,
    )  # fmt: skip


def activate_wallet(family: PaymentFamily) -> None:
    family.payment.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=family.child.id_number, admdvs="320100")
    )


def test_a_policy_that_leaves_the_wallet_limits_unset_gets_the_national_rule(family):
    from tests.test_payment_rpcs import put_policy

    stored = put_policy(family)  # no wallet fields
    assert (stored.wallet_transfers_per_day, stored.wallet_transfer_max_fen) == (3, 200_000)
    activate_wallet(family)
    assert [transfer(family, 100).transfer.state for _ in range(3)] == [ppb.TRANSFER_STATE_COMPLETED] * 3
    with pytest.raises(grpc.RpcError) as raised:
        transfer(family, 100)
    assert refusal_of(raised.value).reason == "TRANSFER_LIMIT_REACHED"
    with pytest.raises(grpc.RpcError) as raised:
        family.clock.advance(timedelta(days=1))
        transfer(family, 200_001)
    assert refusal_of(raised.value).reason == "TRANSFER_LIMIT_REACHED"
    assert family.ledger().balanced


def test_a_region_may_lift_the_wallet_limits_with_minus_one(family):
    from tests.test_payment_rpcs import put_policy

    stored = put_policy(family, wallet_transfers_per_day=-1, wallet_transfer_max_fen=-1)
    assert (stored.wallet_transfers_per_day, stored.wallet_transfer_max_fen) == (-1, -1)
    activate_wallet(family)
    family.credit(family.mother, 1_500_000)
    for _ in range(5):
        assert transfer(family, 300_000).transfer.state == ppb.TRANSFER_STATE_COMPLETED
    with pytest.raises(grpc.RpcError) as raised:
        put_policy(family, wallet_transfers_per_day=-2, effective_from=family.clock.now() - timedelta(hours=1))
    assert refusal_of(raised.value).fields == ("policy.wallet_transfers_per_day",)


def test_a_grantor_whose_contact_change_is_overdue_cannot_transfer_to_a_wallet_until_confirming_it(family):
    """Past the grace days for a changed phone or address, mutual-aid payments over the
    grantor's bindings are refused, a transfer to a relative's wallet too."""
    activate_wallet(family)
    family.binding.ReportLifeEvent(
        bapi.ReportLifeEventRequest(
            request_id=request_id(), id_number=family.mother.id_number, event_type=bapi.LIFE_EVENT_TYPE_CONTACT_CHANGED
        )
    )
    family.clock.advance(timedelta(days=16))
    key = request_id()
    with pytest.raises(grpc.RpcError) as raised:
        transfer(family, 5_000, key=key)
    refusal = refusal_of(raised.value)
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CONTACT_CHANGE_OVERDUE")
    assert family.mother.id_number not in raised.value.details()
    assert family.account(family.child, ppb.ACCOUNT_KIND_WALLET).balance_fen == 0
    family.binding.UpdateContactInfo(
        bapi.UpdateContactInfoRequest(request_id=request_id(), id_number=family.mother.id_number, phone="13900000000")
    )
    assert transfer(family, 5_000).transfer.state == ppb.TRANSFER_STATE_COMPLETED
    assert family.ledger().balanced


@pytest.fixture
def binding_before_wallet_checks(monkeypatch) -> None:
    """A binding service of a version before CheckWalletTransfer; patched before it starts."""
    from services.binding.entrypoints.grpc_servicer import BindingServicer

    async def unimplemented(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")

    monkeypatch.setattr(BindingServicer, "CheckWalletTransfer", unimplemented)


def test_a_payment_node_transfers_over_the_listed_binding_when_the_binding_service_is_a_version_behind(
    binding_before_wallet_checks, payment_service
):
    """The services upgrade one at a time: without CheckWalletTransfer the active binding comes
    from ListBindings, as before."""
    family = PaymentFamily(payment_service)
    activate_wallet(family)
    assert transfer(family, 5_000).transfer.state == ppb.TRANSFER_STATE_COMPLETED
    assert family.ledger().balanced


def test_a_wallet_transfer_leaves_the_grantor_the_balance_the_region_makes_grantors_keep(family):
    """E.g. Lhasa's 3,000 yuan: mutual aid never takes the grantor below it."""
    from tests.test_payment_rpcs import put_policy

    put_policy(family, min_grantor_balance_fen=30_000)
    activate_wallet(family)
    mother = family.account(family.mother, ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT).available_fen
    with pytest.raises(grpc.RpcError) as raised:
        transfer(family, mother - 30_000 + 1)
    refusal = refusal_of(raised.value)
    assert refusal.reason == "INSUFFICIENT_FUNDS"
    assert refusal.metadata["min_grantor_balance_fen"] == "30000"
    assert transfer(family, mother - 30_000).transfer.state == ppb.TRANSFER_STATE_COMPLETED
    assert family.account(family.mother, ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT).available_fen == 30_000
    assert family.ledger().balanced


def test_a_wallet_transfer_needs_an_activated_wallet_and_confirms_by_qr_password_too(family):
    with pytest.raises(grpc.RpcError) as raised:
        transfer(family, 5_000)
    assert refusal_of(raised.value).reason == "WALLET_NOT_ACTIVATED"
    activate_wallet(family)
    done = transfer(family, 5_000, method=ppb.VERIFICATION_METHOD_QR_PASSWORD).transfer
    assert done.state == ppb.TRANSFER_STATE_COMPLETED
    wallet = family.account(family.child, ppb.ACCOUNT_KIND_WALLET)
    assert wallet.balance_fen == 5_000
    assert family.ledger().balanced


def test_a_wallet_transfer_confirmed_by_a_forged_qr_password_is_refused_and_moves_nothing(family):
    from services.payment.verification import stand_in_token

    activate_wallet(family)
    qr = ppb.VERIFICATION_METHOD_QR_PASSWORD
    forged = [
        "forged",
        "",
        stand_in_token(family.mother.id_number, "FACE"),  # a face proof offered as the QR password
        stand_in_token(family.father.id_number, "QR_PASSWORD"),  # another grantor's QR password
        stand_in_token(family.child.id_number, "QR_PASSWORD"),  # the beneficiary's own
    ]
    for token in forged:
        with pytest.raises(grpc.RpcError) as raised:
            transfer(family, 5_000, method=qr, token=token)
        refusal = refusal_of(raised.value)
        assert (refusal.code, refusal.reason) == (grpc.StatusCode.PERMISSION_DENIED, "VERIFICATION_FAILED"), token
    assert family.account(family.mother).balance_fen == 100_000
    assert family.account(family.child, ppb.ACCOUNT_KIND_WALLET).balance_fen == 0
    assert transfer(family, 5_000, method=qr).transfer.state == ppb.TRANSFER_STATE_COMPLETED  # the true one passes
    assert family.account(family.child, ppb.ACCOUNT_KIND_WALLET).balance_fen == 5_000
    assert family.ledger().balanced


def test_a_failed_verification_is_the_answer_to_every_retry_of_the_request(family):
    activate_wallet(family)
    key = request_id()
    for _ in range(2):
        with pytest.raises(grpc.RpcError) as raised:
            transfer(family, 5_000, token="forged", key=key)
        assert refusal_of(raised.value).reason == "VERIFICATION_FAILED"
    with pytest.raises(grpc.RpcError) as raised:  # the key holds that refusal, not a new request
        transfer(family, 5_000, key=key)
    assert refusal_of(raised.value).reason == "IDEMPOTENCY_KEY_REUSED"
    assert family.account(family.child, ppb.ACCOUNT_KIND_WALLET).balance_fen == 0


def test_a_transfer_refused_for_want_of_a_binding_is_the_answer_to_its_retry_after_the_pair_is_bound(family):
    """The binding service's refusal is stored under the key like one the transaction gives:
    once the pair is bound, the identical retry still moves nothing, and the key stays taken."""
    from services.payment.verification import stand_in_token

    activate_wallet(family)
    uncle = family.register("王二哥")
    family.credit(uncle, 50_000)
    request = papi.TransferToWalletRequest(
        request_id=request_id(), grantor_id_number=uncle.id_number, beneficiary_id_number=family.child.id_number,
        amount_fen=1_000,
        verification=ppb.Verification(
            method=ppb.VERIFICATION_METHOD_FACE, token=stand_in_token(uncle.id_number, "FACE")
        ),
    )  # fmt: skip
    first = refused(family.payment.TransferToWallet, request)
    assert (first.code, first.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "BINDING_NOT_ACTIVE")
    family.binding.CreateBinding(binding_request(uncle, family.child))
    retry = refused(family.payment.TransferToWallet, request)
    assert (retry.code, retry.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "BINDING_NOT_ACTIVE")
    other = papi.TransferToWalletRequest()
    other.CopyFrom(request)
    other.amount_fen = 2_000
    reused = refused(family.payment.TransferToWallet, other)
    assert (reused.code, reused.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    assert family.account(uncle).balance_fen == 50_000
    assert family.account(family.child, ppb.ACCOUNT_KIND_WALLET).balance_fen == 0
    assert family.ledger().balanced


def test_a_wallet_transfer_while_the_binding_service_is_down_is_unavailable_and_moves_nothing(family, payment_service):
    activate_wallet(family)
    payment_service.binding.server.stop()
    with pytest.raises(grpc.RpcError) as raised:
        transfer(family, 5_000)
    refusal = refusal_of(raised.value)
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.UNAVAILABLE, "BINDING_SERVICE_UNAVAILABLE")
    assert family.account(family.mother).balance_fen == 100_000
    assert family.account(family.child, ppb.ACCOUNT_KIND_WALLET).balance_fen == 0


def test_a_wallet_activation_while_the_binding_service_is_down_is_unavailable_and_opens_nothing(
    family, payment_service
):
    """Activation asks the registry where the person is insured: while it cannot, the activation
    is refused UNAVAILABLE (for a retry) and opens nothing."""
    asked = papi.ActivateWalletRequest(request_id=request_id(), id_number=family.child.id_number, admdvs="320100")
    payment_service.binding.server.stop()
    with pytest.raises(grpc.RpcError) as raised:
        family.payment.ActivateWallet(asked)
    refusal = refusal_of(raised.value)
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.UNAVAILABLE, "BINDING_SERVICE_UNAVAILABLE")
    with pytest.raises(grpc.RpcError) as raised:
        family.account(family.child, ppb.ACCOUNT_KIND_WALLET)
    assert refusal_of(raised.value).reason == "ACCOUNT_NOT_FOUND"


def test_the_access_log_prints_a_first_refusals_reason_and_marks_only_a_real_replay(family, caplog):
    caplog.set_level(logging.INFO, logger="gongji.rpc")
    key = request_id()
    for _ in range(2):
        with pytest.raises(grpc.RpcError):
            transfer(family, 5_000, key=key)  # no wallet yet
    lines = [r.getMessage() for r in caplog.records if f"request_id={key}" in r.getMessage()]
    assert [line.split()[1] for line in lines] == ["WALLET_NOT_ACTIVATED", "WALLET_NOT_ACTIVATED(replayed)"], lines


def test_reconciliation_counts_reversals_apart_from_undos_and_includes_all_cash_bills(payment_service):
    from shared.ledger import CHINA_STANDARD_TIME

    family = PaymentFamily(payment_service, mother_fen=50_000, father_fen=0)
    undone = family.settle(10_000)
    family.refund(undone.settlement_id)
    key = request_id()
    family.payment.Settle(papi.SettleRequest(request_id=key, bill=family.bill(20_000)))
    family.payment.ReverseRequest(papi.ReverseRequestRequest(request_id=request_id(), original_request_id=key))
    kept = family.settle(15_000)
    family.settle(40_000)  # the mother has 35,000 left: 35,000 mutual aid and 5,000 cash
    broke = PaymentFamily(payment_service, mother_fen=0, father_fen=0)
    cash_only = broke.settle(7_000)
    assert not cash_only.legs and cash_only.cash_pay_fen == 7_000

    day = family.clock.now().astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d")
    books = family.payment.ReconcileInstitution(papi.ReconcileInstitutionRequest(date=day))
    aid = ppb.PAYMENT_SOURCE_MUTUAL_AID

    def totals(rows) -> list[tuple[int, int, int]]:
        return [(t.source, t.count, t.amount_fen) for t in rows]

    assert (books.settlement_count, books.refund_count, books.reversal_count) == (5, 1, 1)
    assert totals(books.settled) == [(aid, 4, 10_000 + 20_000 + 15_000 + 35_000)]
    assert totals(books.refunded) == [(aid, 1, 10_000)]
    assert totals(books.reversed) == [(aid, 1, 20_000)]
    assert books.settled_cash_fen == 5_000 + 7_000
    assert books.net_fen == 15_000 + 35_000
    assert kept.captured_fen == 15_000


@pytest.mark.parametrize("end", ["capture", "release"])
def test_a_hold_placed_before_its_binding_ended_is_honoured_or_released_never_lost(family, end):
    held = family.authorize(30_000)
    family.binding.EndBinding(
        bapi.EndBindingRequest(
            request_id=request_id(), binding_id=family.mother_binding.binding_id, actor=1,
            actor_id=family.mother.id_number,
        )
    )  # fmt: skip
    if end == "capture":
        assert family.capture(held.settlement_id).captured_fen == 30_000
        assert family.account(family.mother).balance_fen == 70_000
    else:
        assert family.release(held.settlement_id).state == ppb.SETTLEMENT_STATE_RELEASED
        assert family.account(family.mother).balance_fen == 100_000
    assert family.account(family.mother).held_fen == 0
    assert family.settle(1_000).legs[0].payer_id_number == mask_id_number(family.father.id_number)
    assert family.ledger().balanced


def test_the_ledger_audit_names_an_entry_that_does_not_balance_and_an_account_that_disagrees(family, payment_service):
    from sqlalchemy import create_engine, text

    from services.common.database import normalise_url

    family.settle(10_000)
    engine = create_engine(normalise_url(payment_service.database_url))
    with engine.begin() as connection:
        entry = connection.execute(text("SELECT entry_id FROM postings ORDER BY posting_id DESC LIMIT 1")).scalar_one()
        connection.execute(
            text("UPDATE postings SET amount_fen = amount_fen + 1 WHERE posting_id = "
                 "(SELECT MAX(posting_id) FROM postings)")
        )  # fmt: skip
        connection.execute(
            text("UPDATE accounts SET balance_fen = balance_fen + 7 WHERE account_id = :id"),
            {"id": f"PERSONAL_ACCOUNT:{family.father.id_number}"},
        )
    engine.dispose()
    audit = family.ledger()
    problems = "\n".join(audit.problems)
    assert not audit.balanced
    assert f"entry {entry} sums to 1 fen, not 0" in problems
    assert f"account PERSONAL_ACCOUNT:{family.father.id_number} has balance 100007 fen" in problems
