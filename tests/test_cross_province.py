"""Cross-province mutual aid across two payment nodes, on SQLite
and PostgreSQL: routed legs, all-or-nothing settlements, wallet transfers and
clearing reports that agree on both sides."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from gongji.node.v1 import node_service_pb2 as node
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from services.payment.entrypoints.node_servicer import PaymentNodeServicer
from services.payment.service_layer import settlements
from services.payment.verification import stand_in_token
from shared.ledger import CHINA_STANDARD_TIME
from shared.privacy import mask_id_number
from tests.conftest import running_two_nodes
from tests.helpers import binding_request, make_id_number, person, refusal_of, request_id
from tests.test_binding_rules import put_policy
from tests.test_payment_concurrency import TIMEOUT, race

PILOTS = ["32", "62"]
NANJING, LANZHOU, CHENGDU = "320100", "620100", "510100"
HOSPITAL = "H320100-001"


class CrossFamily:
    """A child and mother insured in Nanjing (node east), the father in Lanzhou (node west)."""

    def __init__(self, nodes, mother_fen: int = 10_000, father_fen: int = 100_000, pilots: list[str] = PILOTS) -> None:
        self.nodes = nodes
        self.binding = nodes.east.binding.stub
        self.clock = nodes.east.binding.clock
        for province in (f"{pilot}0000" for pilot in pilots):
            put_policy(
                self.binding, self.clock, province,
                geographic_scope=bpb.GEOGRAPHIC_SCOPE_CROSS_PROVINCE, cross_province_provinces=pilots,
                allowed_uses=[
                    common.USE_CATEGORY_OUTPATIENT, common.USE_CATEGORY_PHARMACY,
                    common.USE_CATEGORY_RESIDENT_CONTRIBUTION,
                ],
                wallet_transfers_per_day=3, wallet_transfer_max_fen=200_000,
            )  # fmt: skip
        self.child = self.register("王小宝", NANJING, resident=True)
        self.mother = self.register("李妈妈", NANJING)
        self.father = self.register("王爸爸", LANZHOU)
        self.mother_binding = self.binding.CreateBinding(binding_request(self.mother, self.child)).binding
        self.father_binding = self.binding.CreateBinding(binding_request(self.father, self.child)).binding
        self.credit(nodes.east.stub, self.mother, NANJING, mother_fen)
        self.credit(nodes.west.stub, self.father, LANZHOU, father_fen)

    def register(self, name: str, admdvs: str, resident: bool = False):
        message = person(
            make_id_number("320102" if admdvs == NANJING else "620102"), name, admdvs=admdvs,
            insurance_type=common.INSURANCE_TYPE_RESIDENT if resident else common.INSURANCE_TYPE_EMPLOYEE,
            has_personal_account=not resident,
        )  # fmt: skip
        self.binding.UpsertInsuredPerson(
            bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=message)
        )
        return message

    @staticmethod
    def credit(stub, who, admdvs: str, amount: int) -> None:
        stub.CreditAccount(
            papi.CreditAccountRequest(
                request_id=request_id(), id_number=who.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT,
                amount_fen=amount, kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION, admdvs=admdvs,
            )
        )  # fmt: skip

    def bill(self, amount: int) -> ppb.Bill:
        return ppb.Bill(
            institution_code=HOSPITAL, institution_admdvs=NANJING, patient_id_number=self.child.id_number,
            credential=ppb.Credential(type=ppb.CREDENTIAL_TYPE_CARD, holder_id_number=self.child.id_number),
            use_category=common.USE_CATEGORY_OUTPATIENT, self_pay_fen=amount,
        )  # fmt: skip

    def balance(self, stub, who) -> ppb.Account:
        return stub.GetAccount(
            papi.GetAccountRequest(id_number=who.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT)
        ).account

    def today(self) -> str:
        return self.clock.now().astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d")

    def clearing(self, stub) -> list[tuple[str, str, int]]:
        report = stub.GetClearingReport(papi.GetClearingReportRequest(date=self.today()))
        return [(b.debtor_province, b.creditor_province, b.amount_fen) for b in report.balances]

    def assert_books_close(self) -> None:
        for harness in (self.nodes.east, self.nodes.west):
            audit = harness.stub.CheckLedger(papi.CheckLedgerRequest())
            assert audit.balanced, list(audit.problems)
        assert self.clearing(self.nodes.east.stub) == self.clearing(self.nodes.west.stub)


def race_bills(harness, method: str, request_type, bills: list[tuple[CrossFamily, int]]) -> list:
    """Sends every (family, fen) bill to `harness` at once, each by `method` (Settle or
    AuthorizeSettlement) from its own thread and channel; the answers in the order of the bills."""
    return race(harness, [
        lambda stub, family=family, fen=fen: getattr(stub, method)(
            request_type(request_id=request_id(), bill=family.bill(fen)), timeout=TIMEOUT
        )
        for family, fen in bills
    ])  # fmt: skip


@pytest.fixture
def family(two_nodes) -> CrossFamily:
    return CrossFamily(two_nodes)


def test_a_credit_opens_a_personal_account_only_on_the_node_of_the_region_the_registry_has(family):
    """A Lanzhou person's bills go to node west: an account opened for them on node east would be
    stranded, so east refuses to open one, whichever region the credit names, and west opens it."""
    newcomer = family.register("赵西人", LANZHOU)
    east, west = family.nodes.east.stub, family.nodes.west.stub
    entries_before = east.CheckLedger(papi.CheckLedgerRequest()).entry_count

    def credit(stub, admdvs: str):
        return stub.CreditAccount(
            papi.CreditAccountRequest(
                request_id=request_id(), id_number=newcomer.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT,
                amount_fen=10_000, kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION, admdvs=admdvs,
            ),
            timeout=10,
        )  # fmt: skip

    with pytest.raises(grpc.RpcError) as raised:
        credit(east, NANJING)
    wrong_region = refusal_of(raised.value)
    assert (wrong_region.code, wrong_region.reason, wrong_region.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID", ("admdvs",),
    )  # fmt: skip
    assert f"insured in {LANZHOU}, not {NANJING}" in wrong_region.message
    for admdvs in (LANZHOU, ""):
        with pytest.raises(grpc.RpcError) as raised:
            credit(east, admdvs)
        elsewhere = refusal_of(raised.value)
        assert (elsewhere.code, elsewhere.reason, elsewhere.fields) == (
            grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID", ("admdvs",),
        )  # fmt: skip
        assert "kept by payment node west" in elsewhere.message
        assert elsewhere.metadata["node"] == "west"
        # Named as callers reach it; where the deployment runs it is its own business.
        assert family.nodes.west.server.address not in elsewhere.message
    assert east.CheckLedger(papi.CheckLedgerRequest()).entry_count == entries_before
    assert credit(west, "").account.admdvs == LANZHOU
    assert family.balance(west, newcomer).balance_fen == 10_000
    family.assert_books_close()


def test_a_wallet_is_activated_only_for_a_living_person_the_registry_insures_in_the_region_given(family):
    """A wallet must be activated by its holder before transfers reach it. Node east opens none
    for a person the registry does not know, none under a region the registry does not have the
    person in (the father is insured in Lanzhou, so a wallet of his on east would be stranded:
    transfers to him go to west), and none for a person who died; each refusal opens nothing,
    and the same wallets open where and for whom the registry says."""
    east = family.nodes.east.stub
    wallets_before = east.CheckLedger(papi.CheckLedgerRequest()).account_count

    def activate(stub, who: str, admdvs: str):
        return stub.ActivateWallet(
            papi.ActivateWalletRequest(request_id=request_id(), id_number=who, admdvs=admdvs), timeout=10
        )

    def refused(stub, who: str, admdvs: str):
        with pytest.raises(grpc.RpcError) as raised:
            activate(stub, who, admdvs)
        return refusal_of(raised.value)

    unknown = refused(east, make_id_number("320102"), NANJING)
    assert (unknown.code, unknown.reason, unknown.fields) == (
        grpc.StatusCode.NOT_FOUND, "PERSON_NOT_FOUND", ("id_number",),
    )  # fmt: skip
    elsewhere = refused(east, family.father.id_number, NANJING)
    assert (elsewhere.code, elsewhere.reason, elsewhere.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID", ("admdvs",),
    )  # fmt: skip
    assert f"insured in {LANZHOU}, not {NANJING}" in elsewhere.message
    departed = family.register("钱故人", NANJING)
    departed.status = common.INSURANCE_STATUS_DECEASED
    family.binding.UpsertInsuredPerson(
        bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=departed)
    )
    deceased = refused(east, departed.id_number, NANJING)
    assert (deceased.code, deceased.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "BENEFICIARY_NOT_IN_NORMAL_STATUS")
    assert departed.id_number not in deceased.message
    assert east.CheckLedger(papi.CheckLedgerRequest()).account_count == wallets_before

    assert activate(west := family.nodes.west.stub, family.father.id_number, LANZHOU).account.admdvs == LANZHOU
    assert activate(east, family.child.id_number, NANJING).account.kind == ppb.ACCOUNT_KIND_WALLET
    assert west.CheckLedger(papi.CheckLedgerRequest()).balanced


def test_a_leg_on_another_provinces_account_is_paid_by_that_provinces_node(family):
    settlement = family.nodes.east.stub.Settle(
        papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000))
    ).settlement
    assert settlement.state == ppb.SETTLEMENT_STATE_CAPTURED
    assert [(leg.payer_id_number, leg.amount_fen, leg.payer_admdvs) for leg in settlement.legs] == [
        (mask_id_number(family.mother.id_number), 10_000, NANJING),  # relatives, as the hospital sees them
        (mask_id_number(family.father.id_number), 20_000, LANZHOU),
    ]
    assert family.balance(family.nodes.west.stub, family.father).balance_fen == 80_000
    assert family.balance(family.nodes.east.stub, family.mother).balance_fen == 0
    assert family.clearing(family.nodes.east.stub) == [("62", "32", 20_000)]
    family.assert_books_close()


def test_a_remote_grantor_who_can_give_less_than_the_rest_of_the_bill_pays_what_he_has_and_cash_covers_the_rest(
    two_nodes,
):
    family = CrossFamily(two_nodes, father_fen=5_000)
    settlement = family.nodes.east.stub.Settle(
        papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000))
    ).settlement
    assert [(leg.amount_fen, leg.payer_admdvs, leg.payer_balance_after_fen) for leg in settlement.legs] == [
        (10_000, NANJING, 0),
        (5_000, LANZHOU, 0),
    ]
    assert settlement.cash_pay_fen == 15_000
    father = family.balance(family.nodes.west.stub, family.father)
    assert (father.balance_fen, father.held_fen) == (0, 0)
    assert family.clearing(family.nodes.east.stub) == [("62", "32", 5_000)]
    family.assert_books_close()


def with_grandfather_on_west(family: CrossFamily, fen: int, admdvs: str = LANZHOU):
    """A third payer, after the father in the child's payer order, also kept by node west (in
    Lanzhou unless `admdvs` says where)."""
    grandfather = family.register("王爷爷", admdvs)
    pending = family.binding.CreateBinding(
        binding_request(grandfather, family.child, relationship=common.RELATIONSHIP_PATERNAL_GRANDCHILD)
    ).binding
    family.binding.ReviewBinding(
        bapi.ReviewBindingRequest(
            request_id=request_id(), binding_id=pending.binding_id, decision=bapi.REVIEW_DECISION_APPROVE,
            operator_id="op-7",
        )
    )  # fmt: skip
    family.credit(family.nodes.west.stub, grandfather, admdvs, fen)
    return grandfather


def test_when_the_first_remote_grantor_runs_short_the_next_one_in_the_payer_order_pays_the_rest(two_nodes):
    family = CrossFamily(two_nodes, father_fen=5_000)
    grandfather = with_grandfather_on_west(family, 100_000)
    settlement = family.nodes.east.stub.Settle(
        papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000))
    ).settlement
    assert [(leg.payer_id_number, leg.amount_fen) for leg in settlement.legs] == [
        (mask_id_number(family.mother.id_number), 10_000),
        (mask_id_number(family.father.id_number), 5_000),
        (mask_id_number(grandfather.id_number), 15_000),
    ]
    assert settlement.cash_pay_fen == 0
    assert family.balance(family.nodes.west.stub, grandfather).held_fen == 0
    family.assert_books_close()


@pytest.fixture
def nodes_before_ceilings(monkeypatch) -> list[int]:
    """Participants as a node of a version before ceilings answers: hold_up_to_amount ignored (a
    leg is held in full or the prepare refused) and no payer_admdvs. Patched before the nodes
    start, which bind their handlers then. Yields what each prepare asked for in all."""
    prepare = PaymentNodeServicer.PrepareLegs
    asked: list[int] = []

    async def as_before_ceilings(self, request, context):
        asked.append(sum(leg.amount_fen for leg in request.legs))
        older = node.PrepareLegsRequest()
        older.CopyFrom(request)
        older.hold_up_to_amount = False
        answer = await prepare(self, older, context)
        del answer.payer_admdvs[:]
        return answer

    monkeypatch.setattr(PaymentNodeServicer, "PrepareLegs", as_before_ceilings)
    return asked


def test_a_node_of_a_version_before_ceilings_is_asked_what_its_grantor_can_give_and_then_holds_that(
    nodes_before_ceilings, two_nodes
):
    """Provinces upgrade their nodes at different times."""
    family = CrossFamily(two_nodes, father_fen=5_000)
    settlement = family.nodes.east.stub.Settle(
        papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000))
    ).settlement
    assert [(leg.amount_fen, leg.payer_admdvs) for leg in settlement.legs] == [(10_000, NANJING), (5_000, LANZHOU)]
    assert settlement.cash_pay_fen == 15_000
    assert nodes_before_ceilings == [20_000, 5_000], "refused at the ceiling, then held what the grantor can give"
    father = family.balance(family.nodes.west.stub, family.father)
    assert (father.balance_fen, father.held_fen) == (0, 0)
    family.assert_books_close()


def test_a_remote_grantor_with_nothing_left_holds_nothing_and_the_bill_is_paid_in_cash(family):
    first = family.nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(110_000)))
    assert [leg.amount_fen for leg in first.settlement.legs] == [10_000, 100_000]
    second = family.nodes.east.stub.Settle(
        papi.SettleRequest(request_id=request_id(), bill=family.bill(5_000))
    ).settlement
    assert second.state == ppb.SETTLEMENT_STATE_CAPTURED
    assert (list(second.legs), second.cash_pay_fen) == ([], 5_000)
    father = family.balance(family.nodes.west.stub, family.father)
    assert (father.balance_fen, father.held_fen) == (0, 0)
    assert family.clearing(family.nodes.east.stub) == [("62", "32", 100_000)]
    family.assert_books_close()


def test_a_retried_cross_node_settlement_gets_its_first_answer_and_takes_nothing_more_on_either_node(family):
    request = papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000))
    first = family.nodes.east.stub.Settle(request).settlement
    again = family.nodes.east.stub.Settle(request).settlement
    assert again == first
    father = family.balance(family.nodes.west.stub, family.father)
    assert (father.balance_fen, father.held_fen) == (80_000, 0)
    assert family.balance(family.nodes.east.stub, family.mother).balance_fen == 0
    assert family.clearing(family.nodes.east.stub) == [("62", "32", 20_000)]
    family.assert_books_close()


def test_a_bill_sent_to_the_wrong_node_is_settled_by_the_institutions_node(family):
    settlement = family.nodes.west.stub.Settle(
        papi.SettleRequest(request_id=request_id(), bill=family.bill(5_000))
    ).settlement
    found = family.nodes.east.stub.GetSettlement(papi.GetSettlementRequest(settlement_id=settlement.settlement_id))
    assert found.settlement.captured_fen == 5_000
    family.assert_books_close()


def test_an_authorization_across_nodes_holds_on_both_and_a_partial_capture_settles_both(family):
    east = family.nodes.east.stub
    held = east.AuthorizeSettlement(
        papi.AuthorizeSettlementRequest(request_id=request_id(), bill=family.bill(50_000))
    ).settlement
    assert family.balance(family.nodes.west.stub, family.father).held_fen == 40_000
    captured = east.CaptureSettlement(
        papi.CaptureSettlementRequest(request_id=request_id(), settlement_id=held.settlement_id, amount_fen=30_000)
    ).settlement
    assert captured.captured_fen == 30_000
    father = family.balance(family.nodes.west.stub, family.father)
    assert (father.balance_fen, father.held_fen) == (80_000, 0)
    family.assert_books_close()


def test_an_authorization_across_nodes_holds_on_each_remote_grantor_exactly_his_part_until_its_capture(two_nodes):
    family = CrossFamily(two_nodes, father_fen=5_000)
    grandfather = with_grandfather_on_west(family, 100_000)
    east, west = family.nodes.east.stub, family.nodes.west.stub
    held = east.AuthorizeSettlement(
        papi.AuthorizeSettlementRequest(request_id=request_id(), bill=family.bill(30_000))
    ).settlement
    assert [leg.amount_fen for leg in held.legs] == [10_000, 5_000, 15_000]
    assert family.balance(west, family.father).held_fen == 5_000
    assert family.balance(west, grandfather).held_fen == 15_000, "no more held than the authorisation may take"
    east.CaptureSettlement(
        papi.CaptureSettlementRequest(request_id=request_id(), settlement_id=held.settlement_id, amount_fen=30_000)
    )
    grandfather_after = family.balance(west, grandfather)
    assert (grandfather_after.balance_fen, grandfather_after.held_fen) == (85_000, 0)
    family.assert_books_close()


def test_racing_authorizations_of_one_family_hold_on_the_remote_father_what_the_mother_no_longer_has(two_nodes):
    """Two bills of a family authorised at once may both count on the mother's 10,000 when they
    ask west what the father can give; the one that finds it taken asks west again, so neither
    patient is left to pay cash the father could cover."""
    families = [CrossFamily(two_nodes) for _ in range(3)]
    bills = [(family, fen) for family in families for fen in (8_000, 12_000)]  # 20,000 a family
    answers = race_bills(two_nodes.east, "AuthorizeSettlement", papi.AuthorizeSettlementRequest, bills)
    assert all(isinstance(a, papi.AuthorizeSettlementResponse) for a in answers), answers
    assert [a.settlement.cash_pay_fen for a in answers] == [0] * len(bills)
    for family in families:
        mother, father = (
            family.balance(two_nodes.east.stub, family.mother),
            family.balance(two_nodes.west.stub, family.father),
        )
        assert (mother.balance_fen, mother.held_fen) == (10_000, 10_000)
        assert (father.balance_fen, father.held_fen) == (100_000, 10_000), "no more held than the bills take"
    for answer, (_, fen) in zip(answers, bills, strict=True):
        two_nodes.east.stub.CaptureSettlement(
            papi.CaptureSettlementRequest(
                request_id=request_id(), settlement_id=answer.settlement.settlement_id, amount_fen=fen
            )
        )
    for family in families:
        assert family.balance(two_nodes.west.stub, family.father).balance_fen == 90_000
    families[0].assert_books_close()


def test_a_released_cross_node_authorization_frees_the_remote_hold(family):
    east = family.nodes.east.stub
    held = east.AuthorizeSettlement(
        papi.AuthorizeSettlementRequest(request_id=request_id(), bill=family.bill(50_000))
    ).settlement
    east.ReleaseSettlement(papi.ReleaseSettlementRequest(request_id=request_id(), settlement_id=held.settlement_id))
    father = family.balance(family.nodes.west.stub, family.father)
    assert (father.balance_fen, father.held_fen) == (100_000, 0)
    family.assert_books_close()


def test_a_capture_that_finds_a_cross_node_hold_expired_frees_the_remote_hold_at_once(family):
    """The capture answers HOLD_EXPIRED and releases the holds of its own node; the father's hold in
    his province goes too, at once, as after a release (these nodes do not sweep)."""
    east = family.nodes.east.stub
    held = east.AuthorizeSettlement(
        papi.AuthorizeSettlementRequest(request_id=request_id(), bill=family.bill(50_000))
    ).settlement
    assert family.balance(family.nodes.west.stub, family.father).held_fen > 0
    family.clock.advance(timedelta(minutes=16))
    with pytest.raises(grpc.RpcError) as raised:
        east.CaptureSettlement(papi.CaptureSettlementRequest(request_id=request_id(), settlement_id=held.settlement_id))
    assert refusal_of(raised.value).reason == "HOLD_EXPIRED"
    father = family.balance(family.nodes.west.stub, family.father)
    assert (father.balance_fen, father.held_fen) == (100_000, 0)
    family.clock.advance(timedelta(minutes=10))  # past CheckLedger's grace for stale holds
    family.assert_books_close()


def test_an_undo_of_a_cross_node_settlement_gives_every_leg_back_and_clears_to_zero(family):
    east = family.nodes.east.stub
    settlement = east.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000))).settlement
    east.RefundSettlement(papi.RefundSettlementRequest(request_id=request_id(), settlement_id=settlement.settlement_id))
    assert family.balance(family.nodes.west.stub, family.father).balance_fen == 100_000
    assert family.balance(family.nodes.east.stub, family.mother).balance_fen == 10_000
    assert family.clearing(family.nodes.east.stub) == []
    family.assert_books_close()


def with_grandfather_in_chengdu(two_nodes, fen: int) -> tuple[CrossFamily, bpb.InsuredPerson]:
    """The family with the father in Lanzhou (62) holding 100 yuan and the mother 1 fen, and the
    grandfather in Chengdu (51) holding `fen`: node west keeps both their provinces."""
    family = CrossFamily(two_nodes, mother_fen=1, father_fen=10_000, pilots=["32", "62", "51"])
    return family, with_grandfather_on_west(family, fen, CHENGDU)


def test_grantors_in_two_provinces_kept_by_one_other_node_pay_one_bill_and_an_undo_gives_both_back(two_nodes):
    """Node west holds, captures and refunds both legs of the one settlement."""
    family, grandfather = with_grandfather_in_chengdu(two_nodes, 100_000)
    east, west = two_nodes.east.stub, two_nodes.west.stub

    paid = east.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000))).settlement
    assert paid.state == ppb.SETTLEMENT_STATE_CAPTURED
    assert [leg.amount_fen for leg in paid.legs] == [1, 10_000, 19_999]
    assert family.balance(west, family.father).balance_fen == 0
    assert family.balance(west, grandfather).balance_fen == 80_001
    assert family.clearing(east) == [("51", "32", 19_999), ("62", "32", 10_000)]
    family.assert_books_close()

    east.RefundSettlement(papi.RefundSettlementRequest(request_id=request_id(), settlement_id=paid.settlement_id))
    assert family.balance(west, family.father).balance_fen == 10_000
    assert family.balance(west, grandfather).balance_fen == 100_000
    assert family.clearing(east) == []
    family.assert_books_close()


def test_a_remote_grantors_leg_undone_in_the_new_year_comes_off_the_year_it_was_paid_in(family):
    """Each grantor pays up to his share cap left this year: an undo (撤销) on 1 January of a leg
    paid on New Year's Eve gives back the old year's share, and the new year's cap stays whole,
    no larger."""
    family.binding.UpdateSharingLimit(
        bapi.UpdateSharingLimitRequest(
            request_id=request_id(), binding_id=family.father_binding.binding_id, share_all=False,
            yearly_cap_fen=30_000,
        )
    )  # fmt: skip
    east, west = family.nodes.east.stub, family.nodes.west.stub
    family.clock.set(datetime(2026, 12, 31, 13, 0, tzinfo=UTC))  # 21:00 CST on New Year's Eve
    first = east.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(40_000))).settlement
    assert [(leg.payer_admdvs, leg.amount_fen) for leg in first.legs] == [(NANJING, 10_000), (LANZHOU, 30_000)]
    family.clock.set(datetime(2027, 1, 1, 2, 0, tzinfo=UTC))  # 10:00 CST on 1 January 2027
    east.RefundSettlement(papi.RefundSettlementRequest(request_id=request_id(), settlement_id=first.settlement_id))
    assert [(s.year, s.shared_fen) for s in family.balance(west, family.father).shared_this_year] == []
    second = east.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(80_000))).settlement
    assert [(leg.payer_admdvs, leg.amount_fen) for leg in second.legs] == [(NANJING, 10_000), (LANZHOU, 30_000)]
    assert second.cash_pay_fen == 40_000
    family.assert_books_close()


def test_an_unreachable_province_refuses_the_bill_and_leaves_nothing_held(family, two_nodes):
    two_nodes.west.server.stop()
    with pytest.raises(grpc.RpcError) as raised:
        family.nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000)), timeout=30)
    refusal = refusal_of(raised.value)
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.UNAVAILABLE, "PROVINCE_UNREACHABLE")
    mother = family.balance(family.nodes.east.stub, family.mother)
    assert (mother.balance_fen, mother.held_fen) == (10_000, 0)
    assert family.nodes.east.stub.CheckLedger(papi.CheckLedgerRequest()).balanced


def transfer(family, amount: int, token: str | None = None) -> papi.TransferToWalletResponse:
    return family.nodes.west.stub.TransferToWallet(
        papi.TransferToWalletRequest(
            request_id=request_id(), grantor_id_number=family.father.id_number,
            beneficiary_id_number=family.child.id_number, amount_fen=amount,
            verification=ppb.Verification(
                method=ppb.VERIFICATION_METHOD_FACE,
                token=token if token is not None else stand_in_token(family.father.id_number, "FACE"),
            ),
        )
    )  # fmt: skip


def at_noon(family) -> None:
    now = family.clock.now().astimezone(CHINA_STANDARD_TIME)
    family.clock.set(now.replace(hour=12, minute=0) + timedelta(days=1))


def test_a_wallet_transfer_moves_money_to_the_beneficiarys_province_and_pays_a_bill_there(family):
    at_noon(family)
    family.nodes.east.stub.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=family.child.id_number, admdvs=NANJING)
    )
    moved = transfer(family, 50_000).transfer
    assert moved.state == ppb.TRANSFER_STATE_COMPLETED
    assert (moved.source_province, moved.target_province) == ("62", "32")
    wallet = family.nodes.east.stub.GetAccount(
        papi.GetAccountRequest(id_number=family.child.id_number, account_kind=ppb.ACCOUNT_KIND_WALLET)
    ).account
    assert wallet.balance_fen == 50_000
    assert family.clearing(family.nodes.east.stub) == [("62", "32", 50_000)]
    family.assert_books_close()


def test_a_transfer_asked_of_the_node_that_received_it_is_not_found_there_and_the_node_that_holds_it_is_named(
    family,
):
    """West sent the father's transfer and keeps it; east credited the child's wallet with it.
    Asked of east, it is not found there, and east names west. A transfer east never received
    is not found, with no node named."""
    at_noon(family)
    family.nodes.east.stub.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=family.child.id_number, admdvs=NANJING)
    )
    moved = transfer(family, 5_000).transfer
    for transfer_id, named in ((moved.transfer_id, "west"), (str(uuid.uuid4()), None)):
        with pytest.raises(grpc.RpcError) as raised:
            family.nodes.east.stub.GetTransfer(papi.GetTransferRequest(transfer_id=transfer_id))
        refusal = refusal_of(raised.value)
        assert (refusal.code, refusal.reason) == (grpc.StatusCode.NOT_FOUND, "TRANSFER_NOT_FOUND")
        assert refusal.metadata.get("node") == named
    held = family.nodes.west.stub.GetTransfer(papi.GetTransferRequest(transfer_id=moved.transfer_id)).transfer
    assert held.state == ppb.TRANSFER_STATE_COMPLETED


def test_a_wallet_transfer_needs_verification_an_activated_wallet_and_daytime(family):
    at_noon(family)
    with pytest.raises(grpc.RpcError) as raised:
        transfer(family, 10_000, token="forged")
    assert refusal_of(raised.value).reason == "VERIFICATION_FAILED"
    with pytest.raises(grpc.RpcError) as raised:
        transfer(family, 300_000)
    assert refusal_of(raised.value).reason == "TRANSFER_LIMIT_REACHED"
    now = family.clock.now().astimezone(CHINA_STANDARD_TIME)
    family.clock.set(now.replace(hour=23))
    with pytest.raises(grpc.RpcError) as raised:
        transfer(family, 10_000)
    assert refusal_of(raised.value).reason == "TRANSFER_NOT_ALLOWED_NOW"
    assert family.balance(family.nodes.west.stub, family.father).balance_fen == 100_000


def test_the_wallet_pays_the_beneficiarys_resident_insurance_contribution_in_her_province(family):
    """The beneficiary pays bills and resident-insurance contributions from the wallet."""
    at_noon(family)
    family.nodes.east.stub.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=family.child.id_number, admdvs=NANJING)
    )
    transfer(family, 40_000)
    contribution = family.bill(38_000)
    contribution.use_category = common.USE_CATEGORY_RESIDENT_CONTRIBUTION
    contribution.institution_code = "TAX-320100"
    paid = family.nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=contribution)).settlement
    assert (paid.wallet_pay_fen, paid.mutual_aid_pay_fen, paid.cash_pay_fen) == (38_000, 0, 0)
    wallet = family.nodes.east.stub.GetAccount(
        papi.GetAccountRequest(id_number=family.child.id_number, account_kind=ppb.ACCOUNT_KIND_WALLET)
    ).account
    assert wallet.balance_fen == 2_000
    family.assert_books_close()


def transfer_state(family, transfer_id: str) -> int:
    return family.nodes.west.stub.GetTransfer(papi.GetTransferRequest(transfer_id=transfer_id)).transfer.state


def wait_for_transfer(family, transfer_id: str, state: int, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while transfer_state(family, transfer_id) != state:
        assert time.monotonic() < deadline, f"transfer {transfer_id} stayed {transfer_state(family, transfer_id)}"
        time.sleep(0.05)


@pytest.mark.sweeping(0.05)
def test_a_transfer_not_accepted_by_six_the_next_morning_goes_back_to_its_sender(family):
    """A transfer not yet accepted is refunded to the sender at 06:00 the next day.
    The child's wallet in Nanjing is never activated, so node east cannot accept the father's
    transfer from Lanzhou; at 06:00 node west gets east's promise never to credit it, then
    gives the money back, and a late credit of it is refused."""
    at_noon(family)
    pending = transfer(family, 30_000).transfer
    assert pending.state == ppb.TRANSFER_STATE_PENDING
    assert family.balance(family.nodes.west.stub, family.father).balance_fen == 70_000
    with pytest.raises(grpc.RpcError) as raised:
        transfer(family, 10_000)
    assert refusal_of(raised.value).reason == "TRANSFER_PENDING"

    next_morning = family.clock.now().astimezone(CHINA_STANDARD_TIME).replace(hour=6, minute=0) + timedelta(days=1)
    family.clock.set(next_morning - timedelta(minutes=1))
    time.sleep(0.5)  # several sweeps
    assert transfer_state(family, pending.transfer_id) == ppb.TRANSFER_STATE_PENDING

    family.clock.set(next_morning)
    wait_for_transfer(family, pending.transfer_id, ppb.TRANSFER_STATE_REFUNDED)
    assert family.balance(family.nodes.west.stub, family.father).balance_fen == 100_000

    family.nodes.east.stub.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=family.child.id_number, admdvs=NANJING)
    )
    late = node.CreditWalletRequest(
        transfer_id=pending.transfer_id, beneficiary_id_number=family.child.id_number, amount_fen=30_000,
        source_province="62", grantor_id_number=family.father.id_number,
        binding_id=family.father_binding.binding_id,
    )  # fmt: skip
    with pytest.raises(grpc.RpcError) as raised:
        family.nodes.east.node_stub("west").CreditWallet(late)
    assert refusal_of(raised.value).reason == "TRANSFER_REFUNDED"
    wallet = family.nodes.east.stub.GetAccount(
        papi.GetAccountRequest(id_number=family.child.id_number, account_kind=ppb.ACCOUNT_KIND_WALLET)
    ).account
    assert wallet.balance_fen == 0
    assert transfer(family, 10_000).transfer.state == ppb.TRANSFER_STATE_COMPLETED  # no longer blocked
    for harness in (family.nodes.east, family.nodes.west):
        assert harness.stub.CheckLedger(papi.CheckLedgerRequest()).balanced
    # West booked the pending 300 yuan as owed to Jiangsu yesterday and took it back today;
    # over both days it owes exactly what east credited: the later 100 yuan.
    days = [(next_morning - timedelta(days=1)).strftime("%Y-%m-%d"), next_morning.strftime("%Y-%m-%d")]
    assert owed_by_gansu_to_jiangsu(family.nodes.west.stub, days) == 10_000
    assert owed_by_gansu_to_jiangsu(family.nodes.east.stub, days) == 10_000


def owed_by_gansu_to_jiangsu(stub, days: list[str]) -> int:
    owed = 0
    for day in days:
        for line in stub.GetClearingReport(papi.GetClearingReportRequest(date=day)).balances:
            sign = {("62", "32"): 1, ("32", "62"): -1}[(line.debtor_province, line.creditor_province)]
            owed += sign * line.amount_fen
    return owed


@pytest.mark.sweeping(0.05)
def test_a_transfer_accepted_before_six_the_next_morning_stays_with_the_beneficiary(family):
    """Once the wallet is activated the pending transfer is credited by the
    recovery loop; six o'clock then changes nothing."""
    at_noon(family)
    pending = transfer(family, 30_000).transfer
    family.nodes.east.stub.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=family.child.id_number, admdvs=NANJING)
    )
    wait_for_transfer(family, pending.transfer_id, ppb.TRANSFER_STATE_COMPLETED)

    next_morning = family.clock.now().astimezone(CHINA_STANDARD_TIME).replace(hour=6, minute=0) + timedelta(days=1)
    family.clock.set(next_morning + timedelta(minutes=1))
    time.sleep(0.5)
    assert transfer_state(family, pending.transfer_id) == ppb.TRANSFER_STATE_COMPLETED
    assert family.balance(family.nodes.west.stub, family.father).balance_fen == 70_000
    wallet = family.nodes.east.stub.GetAccount(
        papi.GetAccountRequest(id_number=family.child.id_number, account_kind=ppb.ACCOUNT_KIND_WALLET)
    ).account
    assert wallet.balance_fen == 30_000
    family.assert_books_close()


def test_a_node_that_holds_both_provinces_reports_their_debt_once_down_to_one_fen(payment_service):
    """One node for the whole country books a Lanzhou payer's leg at a Nanjing hospital on both
    provinces' clearing accounts; its report still names the debt once, even a single fen."""
    from types import SimpleNamespace

    single = CrossFamily(SimpleNamespace(east=payment_service, west=payment_service))
    stub = payment_service.stub
    settled = stub.Settle(papi.SettleRequest(request_id=request_id(), bill=single.bill(10_001))).settlement
    assert [leg.amount_fen for leg in settled.legs] == [10_000, 1]  # the mother's all, the father's one fen
    assert single.clearing(stub) == [("62", "32", 1)]
    stub.Settle(papi.SettleRequest(request_id=request_id(), bill=single.bill(2_000)))  # the father alone now
    assert single.clearing(stub) == [("62", "32", 2_001)]
    assert stub.CheckLedger(papi.CheckLedgerRequest()).balanced


def test_a_bill_under_per_use_limits_of_two_regions_settles_across_nodes_as_it_was_quoted(two_nodes):
    """Each grantor pays up to what the earlier ones left of its region's per-use limit, whether
    or not the grantor on the other node has anything left to hold."""
    family = CrossFamily(two_nodes, mother_fen=100_000, father_fen=1)
    put_policy(
        family.binding, family.clock, "620000", effective_from=family.clock.now() - timedelta(hours=1),
        geographic_scope=bpb.GEOGRAPHIC_SCOPE_CROSS_PROVINCE, cross_province_provinces=PILOTS,
        allowed_uses=[common.USE_CATEGORY_OUTPATIENT], per_use_limit_fen=10_000,
    )  # fmt: skip
    east = family.nodes.east.stub
    east.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(1)))  # one grantor's last fen
    quoted = east.QuoteSettlement(papi.QuoteSettlementRequest(bill=family.bill(50_000))).settlement
    settled = east.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(50_000))).settlement
    legs = [(leg.payer_id_number, leg.amount_fen) for leg in settled.legs]
    assert legs == [(leg.payer_id_number, leg.amount_fen) for leg in quoted.legs]
    assert settled.cash_pay_fen == quoted.cash_pay_fen
    family.assert_books_close()


def test_an_account_kept_by_another_provinces_node_is_read_through_any_node(family):
    """A hospital or app may ask either node about a person: the node that does not keep the
    account asks the one that does, in the caller's name, statement pages included."""
    family.nodes.east.stub.Settle(papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000)))
    east, west = family.nodes.east.stub, family.nodes.west.stub
    assert family.balance(east, family.father) == family.balance(west, family.father)
    statement = papi.ListStatementRequest(
        id_number=family.father.id_number, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT, page_size=1
    )
    first = east.ListStatement(statement)
    assert list(first.lines) == list(west.ListStatement(statement).lines) and first.next_page_token
    statement.page_token = first.next_page_token
    second = east.ListStatement(statement)
    assert [line.amount_fen for line in [*first.lines, *second.lines]] == [-20_000, 100_000]
    stranger = make_id_number("620102")
    with pytest.raises(grpc.RpcError) as raised:
        east.GetAccount(papi.GetAccountRequest(id_number=stranger, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT))
    assert refusal_of(raised.value).reason == "ACCOUNT_NOT_FOUND"


def cut_off_then_retried(family: CrossFamily) -> ppb.Account:
    """Settles a 30,000 fen bill with a half-second deadline that cuts it off; waits (the test clock
    unmoved) until the father's account on the other node holds nothing; retries with the same key
    and checks the retry settled once. The father's account as the retry left it."""
    request = papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000))
    with pytest.raises(grpc.RpcError) as raised:
        family.nodes.east.stub.Settle(request, timeout=0.5)
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    west = family.nodes.west.stub
    deadline = time.monotonic() + 10
    while family.balance(west, family.father).held_fen and time.monotonic() < deadline:
        time.sleep(0.1)
    assert family.balance(west, family.father).held_fen == 0, "released or captured, not left to the lease"
    settlement = family.nodes.east.stub.Settle(request, timeout=30).settlement
    assert [leg.amount_fen for leg in settlement.legs] == [10_000, 20_000]
    family.assert_books_close()
    return family.balance(west, family.father)


@pytest.fixture
def slow_remote_prepare(monkeypatch) -> None:
    """The other node holds, then takes a second to answer: long enough for a caller's deadline to
    cut the settlement off while the coordinator waits. Patched before the nodes start."""
    prepare = PaymentNodeServicer.PrepareLegs

    async def slowly(self, request, context):
        answer = await prepare(self, request, context)
        await asyncio.sleep(1.0)
        return answer

    monkeypatch.setattr(PaymentNodeServicer, "PrepareLegs", slowly)


def test_a_cross_node_settlement_cut_off_by_the_callers_deadline_releases_what_it_held_on_the_other_node_at_once(
    slow_remote_prepare, two_nodes
):
    """The saga's lease (half a minute) is the last resort, not the answer to an impatient caller:
    the father's money is free again as soon as the cut-off request has stopped, and a retry with
    the same key settles once."""
    father = cut_off_then_retried(CrossFamily(two_nodes))
    assert (father.balance_fen, father.held_fen) == (80_000, 0)


@pytest.fixture
def slow_settlement_write(monkeypatch) -> None:
    """The coordinating node takes a second before it writes the settlement, after the other node
    held: the caller's deadline passes while the decision is being written."""
    authorize = settlements.authorize

    def slowly(*args, **kwargs):
        time.sleep(1.0)
        return authorize(*args, **kwargs)

    monkeypatch.setattr(settlements, "authorize", slowly)


def test_a_cross_node_settlement_cut_off_while_it_is_written_leaves_no_hold_and_settles_once_on_retry(
    slow_settlement_write, two_nodes
):
    father = cut_off_then_retried(CrossFamily(two_nodes))
    assert (father.balance_fen, father.held_fen) == (80_000, 0)


class _ClockAhead:
    """Another clock's time moved by an offset that a test may change."""

    def __init__(self, base, offset: timedelta) -> None:
        self.base, self.offset = base, offset

    def now(self) -> datetime:
        return self.base.now() + self.offset


def test_a_bill_the_other_node_refuses_for_this_nodes_clock_is_unavailable_and_settles_on_retry_once_clocks_agree(
    databases, binding_service, tmp_path
):
    west_clock = _ClockAhead(binding_service.clock, timedelta(hours=2))  # west sees east's holds expired already
    with running_two_nodes(
        databases, binding_service, tmp_path, lambda name: {"clock": west_clock} if name == "west" else {}
    ) as nodes:
        family = CrossFamily(nodes)
        east, west = nodes.east.stub, nodes.west.stub
        request = papi.SettleRequest(request_id=request_id(), bill=family.bill(30_000))
        with pytest.raises(grpc.RpcError) as raised:
            east.Settle(request, timeout=30)
        refusal = refusal_of(raised.value)
        assert (refusal.code, refusal.reason) == (grpc.StatusCode.UNAVAILABLE, "PROVINCE_UNREACHABLE")
        mother, father = family.balance(east, family.mother), family.balance(west, family.father)
        assert (mother.balance_fen, mother.held_fen, father.balance_fen, father.held_fen) == (10_000, 0, 100_000, 0)

        west_clock.offset = timedelta(0)
        settlement = east.Settle(request, timeout=30).settlement
        assert [(leg.payer_admdvs, leg.amount_fen) for leg in settlement.legs] == [(NANJING, 10_000), (LANZHOU, 20_000)]
        assert east.Settle(request, timeout=30).settlement == settlement
        assert family.balance(west, family.father).balance_fen == 80_000
        family.assert_books_close()
