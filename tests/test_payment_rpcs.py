"""Every implemented PaymentService RPC and every refusal it gives, over real gRPC on
SQLite and PostgreSQL: what a hospital's billing system or a medical-
security operator would check — amounts to the fen, states, the leg list, the
totals acct_pay / acct_mulaid_pay / wallet / psn_cash_pay, balances, statements,
reconciliation — and a balanced ledger at the end of every scenario.

The family (tests/payment_helpers.py): mother and father, employees in Nanjing
320100 with 1,000 yuan (100,000 fen) each, bound in that order to their child,
a resident without a personal account.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from services.payment.verification import stand_in_token
from shared.privacy import mask_id_number
from tests.helpers import binding_request, make_id_number, person, refusal_of, request_id
from tests.payment_helpers import INSTITUTION, PaymentFamily, refused

INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
ALREADY_EXISTS = grpc.StatusCode.ALREADY_EXISTS

OWN = ppb.PAYMENT_SOURCE_OWN_ACCOUNT
AID = ppb.PAYMENT_SOURCE_MUTUAL_AID
WALLET = ppb.PAYMENT_SOURCE_WALLET
PERSONAL = ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT
WALLET_KIND = ppb.ACCOUNT_KIND_WALLET

# The national default policy (no regional policy stored): no quota, no per-use limit.
NATIONAL_POLICY = "000000@2024-07-01T00:00:00+08:00"
CHINA_STANDARD_TIME = timezone(timedelta(hours=8))
SERVICE = "/gongji.payment.v1.PaymentService/"
ALL_NATIONAL_USES = [
    common.USE_CATEGORY_OUTPATIENT,
    common.USE_CATEGORY_INPATIENT,
    common.USE_CATEGORY_CHRONIC_DISEASE_OUTPATIENT,
    common.USE_CATEGORY_MATERNITY,
    common.USE_CATEGORY_PHARMACY,
    common.USE_CATEGORY_RESIDENT_CONTRIBUTION,
    common.USE_CATEGORY_LONG_TERM_CARE_INSURANCE,
]


@pytest.fixture
def family(payment_service) -> PaymentFamily:
    return PaymentFamily(payment_service)


# What a hospital prints and an operator checks --------------------------------------------


def seen(relative) -> str:
    """A relative's ID number as a hospital sees it on a mutual-aid leg: masked (least data)."""
    return mask_id_number(relative.id_number)


def legs_of(settlement: ppb.Settlement) -> list[tuple]:
    """payer, source, binding_id, amount, policy version — one line per leg."""
    return [
        (leg.payer_id_number, leg.source, leg.binding_id, leg.amount_fen, leg.policy_version) for leg in settlement.legs
    ]


def without_balc(settlement: ppb.Settlement) -> ppb.Settlement:
    """The settlement without the payers' remaining balances (checked on their own)."""
    copy = ppb.Settlement()
    copy.CopyFrom(settlement)
    for leg in copy.legs:
        leg.payer_balance_after_fen = 0
    return copy


def totals(settlement: ppb.Settlement) -> tuple[int, int, int, int]:
    """(own_account_pay_fen, mutual_aid_pay_fen, wallet_pay_fen, cash_pay_fen)."""
    return (
        settlement.own_account_pay_fen,
        settlement.mutual_aid_pay_fen,
        settlement.wallet_pay_fen,
        settlement.cash_pay_fen,
    )


def money(family: PaymentFamily, who, kind=PERSONAL) -> tuple[int, int, int]:
    """(balance, held, available) of one account."""
    account = family.account(who, kind)
    return account.balance_fen, account.held_fen, account.available_fen


def shared(family: PaymentFamily, grantor) -> dict[str, int]:
    """binding_id → shared this year, from GetAccount."""
    return {share.binding_id: share.shared_fen for share in family.account(grantor).shared_this_year}


def statement(family: PaymentFamily, who, kind=PERSONAL, **request) -> list[ppb.StatementLine]:
    return list(
        family.payment.ListStatement(
            papi.ListStatementRequest(id_number=who.id_number, account_kind=kind, page_size=100, **request)
        ).lines
    )


def entry_count(family: PaymentFamily) -> int:
    return family.ledger().entry_count


def assert_ledger_balanced(family: PaymentFamily) -> None:
    """Every entry balances, every balance equals its entries, no stale hold."""
    ledger = family.ledger()
    assert list(ledger.problems) == []
    assert ledger.balanced


def put_policy(family: PaymentFamily, admdvs: str = "320100", **fields) -> bpb.RegionPolicy:
    effective = Timestamp()
    effective.FromDatetime(fields.pop("effective_from", family.clock.now() - timedelta(days=1)))
    policy = bpb.RegionPolicy(
        admdvs=admdvs,
        effective_from=effective,
        relationship_scope=fields.pop("relationship_scope", bpb.RELATIONSHIP_SCOPE_EXTENDED),
        max_beneficiaries=fields.pop("max_beneficiaries", 6),
        geographic_scope=fields.pop("geographic_scope", bpb.GEOGRAPHIC_SCOPE_SAME_PROVINCE),
        allowed_uses=fields.pop("allowed_uses", ALL_NATIONAL_USES),
        auto_approve_relationships=fields.pop(
            "auto_approve_relationships",
            [common.RELATIONSHIP_SPOUSE, common.RELATIONSHIP_PARENT, common.RELATIONSHIP_CHILD],
        ),
        contact_change_grace_days=fields.pop("contact_change_grace_days", 15),
        impersonation_suspension_threshold=fields.pop("impersonation_suspension_threshold", 3),
        **fields,
    )
    return family.binding.PutRegionPolicy(
        bapi.PutRegionPolicyRequest(request_id=request_id(), policy=policy), timeout=10
    ).policy


def set_payer_order(family: PaymentFamily, bindings, mode=bpb.PAYER_MODE_SEQUENTIAL) -> None:
    family.binding.SetPayerOrder(
        bapi.SetPayerOrderRequest(
            request_id=request_id(),
            beneficiary_id_number=family.child.id_number,
            binding_ids=[b.binding_id for b in bindings],
            mode=mode,
        ),
        timeout=10,
    )


def cap_binding(family: PaymentFamily, binding, yearly_cap_fen: int) -> None:
    family.binding.UpdateSharingLimit(
        bapi.UpdateSharingLimitRequest(
            request_id=request_id(), binding_id=binding.binding_id, share_all=False, yearly_cap_fen=yearly_cap_fen
        ),
        timeout=10,
    )


def bind_spouse(family: PaymentFamily) -> bpb.Binding:
    """The mother also grants to the father (SPOUSE), so the father can be a patient with his own account."""
    binding = family.binding.CreateBinding(
        binding_request(family.mother, family.father, common.RELATIONSHIP_SPOUSE), timeout=10
    ).binding
    assert binding.state == bpb.BINDING_STATE_ACTIVE
    return binding


def settle_request(family: PaymentFamily, self_pay_fen: int, key: str | None = None, **bill) -> papi.SettleRequest:
    return papi.SettleRequest(request_id=key or request_id(), bill=family.bill(self_pay_fen, **bill))


def authorize_request(
    family: PaymentFamily, self_pay_fen: int, key: str | None = None, **bill
) -> papi.AuthorizeSettlementRequest:
    return papi.AuthorizeSettlementRequest(request_id=key or request_id(), bill=family.bill(self_pay_fen, **bill))


def capture_request(settlement_id: str, amount_fen: int = 0, key: str | None = None) -> papi.CaptureSettlementRequest:
    return papi.CaptureSettlementRequest(
        request_id=key or request_id(), settlement_id=settlement_id, amount_fen=amount_fen
    )


def release_request(settlement_id: str) -> papi.ReleaseSettlementRequest:
    return papi.ReleaseSettlementRequest(request_id=request_id(), settlement_id=settlement_id)


def refund_request(settlement_id: str, key: str | None = None) -> papi.RefundSettlementRequest:
    return papi.RefundSettlementRequest(request_id=key or request_id(), settlement_id=settlement_id)


def reverse(family: PaymentFamily, original: str, key: str | None = None) -> papi.ReverseRequestResponse:
    return family.payment.ReverseRequest(
        papi.ReverseRequestRequest(request_id=key or request_id(), original_request_id=original, reason="timeout"),
        timeout=10,
    )


def quote(family: PaymentFamily, self_pay_fen: int, **bill) -> ppb.Settlement:
    return family.payment.QuoteSettlement(
        papi.QuoteSettlementRequest(bill=family.bill(self_pay_fen, **bill)), timeout=10
    ).settlement


def today(family: PaymentFamily) -> str:
    return family.clock.now().astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d")


def reconcile(family: PaymentFamily, date: str, institution: str = INSTITUTION) -> papi.ReconcileInstitutionResponse:
    return family.payment.ReconcileInstitution(
        papi.ReconcileInstitutionRequest(institution_code=institution, date=date), timeout=10
    )


def source_totals(rows) -> dict[int, tuple[int, int]]:
    return {row.source: (row.count, row.amount_fen) for row in rows}


def violations(family: PaymentFamily, holder, **request) -> papi.ListViolationsResponse:
    return family.payment.ListViolations(
        papi.ListViolationsRequest(holder_id_number=holder.id_number, **request), timeout=10
    )


# CreditAccount -----------------------------------------------------


def test_a_monthly_contribution_opens_the_account_and_a_second_one_adds_to_it(family):
    """The monthly credit (每月到账) creates the personal account in the owner's region."""
    newcomer = family.register("赵新人")
    first = family.payment.CreditAccount(
        papi.CreditAccountRequest(
            request_id=request_id(),
            id_number=newcomer.id_number,
            account_kind=PERSONAL,
            amount_fen=12_345,
            kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION,
            period="2026-03",
            admdvs="320100",
        )
    )
    assert first.entry_id
    assert (first.account.id_number, first.account.kind, first.account.admdvs) == (
        newcomer.id_number,
        PERSONAL,
        "320100",
    )
    assert (first.account.balance_fen, first.account.held_fen, first.account.available_fen) == (12_345, 0, 12_345)

    second = family.credit(newcomer, 5_000)
    assert (second.balance_fen, second.available_fen) == (17_345, 17_345)
    assert money(family, newcomer) == (17_345, 0, 17_345)
    lines = statement(family, newcomer)
    assert [(line.purpose, line.amount_fen, line.balance_after_fen) for line in lines] == [
        (ppb.MOVEMENT_PURPOSE_MONTHLY_CONTRIBUTION, 5_000, 17_345),
        (ppb.MOVEMENT_PURPOSE_MONTHLY_CONTRIBUTION, 12_345, 12_345),
    ]
    assert lines[-1].entry_id == first.entry_id
    assert lines[-1].memo == "contribution 2026-03"
    assert_ledger_balanced(family)


def test_a_negative_adjustment_may_take_the_balance_down_to_the_available_amount_and_no_further(family):
    """An adjustment can never take money that a hold has reserved."""
    held = family.authorize(30_000)
    assert money(family, family.mother) == (100_000, 30_000, 70_000)

    def adjust(amount_fen: int) -> papi.CreditAccountRequest:
        return papi.CreditAccountRequest(
            request_id=request_id(),
            id_number=family.mother.id_number,
            account_kind=PERSONAL,
            amount_fen=amount_fen,
            kind=papi.CREDIT_KIND_ADJUSTMENT,
            memo="correction by the insurance core",
        )

    adjusted = family.payment.CreditAccount(adjust(-70_000)).account
    assert (adjusted.balance_fen, adjusted.held_fen, adjusted.available_fen) == (30_000, 30_000, 0)
    refusal = refused(family.payment.CreditAccount, adjust(-1))
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "INSUFFICIENT_FUNDS")
    assert money(family, family.mother) == (30_000, 30_000, 0)
    newest = statement(family, family.mother)[0]
    assert (newest.purpose, newest.amount_fen, newest.balance_after_fen, newest.memo) == (
        ppb.MOVEMENT_PURPOSE_ADJUSTMENT,
        -70_000,
        30_000,
        "correction by the insurance core",
    )

    captured = family.capture(held.settlement_id)
    assert captured.mutual_aid_pay_fen == 30_000
    assert money(family, family.mother) == (0, 0, 0)
    assert_ledger_balanced(family)


@pytest.mark.parametrize(
    ("amount_fen", "kind"),
    [
        (0, papi.CREDIT_KIND_MONTHLY_CONTRIBUTION),
        (-100, papi.CREDIT_KIND_MONTHLY_CONTRIBUTION),
        (0, papi.CREDIT_KIND_ADJUSTMENT),
    ],
)
def test_a_zero_or_negative_contribution_is_refused_as_an_invalid_amount(family, amount_fen, kind):
    """Money is a positive integer of fen; only an adjustment may be negative."""
    before = entry_count(family)
    refusal = refused(
        family.payment.CreditAccount,
        papi.CreditAccountRequest(
            request_id=request_id(),
            id_number=family.mother.id_number,
            account_kind=PERSONAL,
            amount_fen=amount_fen,
            kind=kind,
            admdvs="320100",
        ),
    )
    assert (refusal.code, refusal.reason, refusal.fields) == (INVALID_ARGUMENT, "INVALID_AMOUNT", ("amount_fen",))
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert entry_count(family) == before
    assert_ledger_balanced(family)


def opening_credit(who, admdvs: str = "", key: str = "") -> papi.CreditAccountRequest:
    """A monthly contribution that would open `who`'s personal account."""
    return papi.CreditAccountRequest(
        request_id=key or request_id(), id_number=who.id_number, account_kind=PERSONAL, amount_fen=10_000,
        kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION, period="2026-03", admdvs=admdvs,
    )  # fmt: skip


def assert_no_account(family: PaymentFamily, who) -> None:
    missing = refused(family.payment.GetAccount, papi.GetAccountRequest(id_number=who.id_number, account_kind=PERSONAL))
    assert (missing.code, missing.reason) == (NOT_FOUND, "ACCOUNT_NOT_FOUND")


def test_a_credit_without_admdvs_opens_the_account_in_the_region_the_registry_has(family):
    """A new personal account is kept under the region where the registry has its owner insured."""
    newcomer = family.register("孙无区")
    opened = family.payment.CreditAccount(opening_credit(newcomer)).account
    assert (opened.admdvs, opened.balance_fen) == ("320100", 10_000)
    assert_ledger_balanced(family)


def test_a_credit_for_a_person_the_registry_does_not_know_is_refused_and_opens_nothing(family):
    stranger = person(make_id_number("320102"), "吴未登记", admdvs="320100")
    before = entry_count(family)
    refusal = refused(family.payment.CreditAccount, opening_credit(stranger, "320100"))
    assert (refusal.code, refusal.reason, refusal.fields) == (NOT_FOUND, "PERSON_NOT_FOUND", ("id_number",))
    assert "UpsertInsuredPerson" in refusal.message
    assert stranger.id_number not in refusal.message
    assert_no_account(family, stranger)
    assert entry_count(family) == before


def test_a_credit_opens_no_personal_account_for_a_person_the_registry_has_without_one(family):
    """Only an employee-insured person has a personal account (个人账户): not a resident-insured one,
    nor an employee the registry has without one."""
    without_one = person(make_id_number("320102"), "钱无账户", admdvs="320100", has_personal_account=False)
    family.binding.UpsertInsuredPerson(
        bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=without_one)
    )
    before = entry_count(family)
    for who in (family.child, without_one):
        refusal = refused(family.payment.CreditAccount, opening_credit(who, "320100"))
        assert (refusal.code, refusal.reason, refusal.fields) == (
            grpc.StatusCode.FAILED_PRECONDITION, "NO_PERSONAL_ACCOUNT", ("id_number",),
        )  # fmt: skip
        assert "employee-insured" in refusal.message
        assert_no_account(family, who)
    assert entry_count(family) == before


def test_a_credit_naming_another_region_than_the_registry_s_is_refused_and_opens_nothing(family):
    newcomer = family.register("孙新人")
    before = entry_count(family)
    refusal = refused(family.payment.CreditAccount, opening_credit(newcomer, "320200"))
    assert (refusal.code, refusal.reason, refusal.fields) == (INVALID_ARGUMENT, "FIELD_INVALID", ("admdvs",))
    assert "insured in 320100, not 320200" in refusal.message
    assert refusal.metadata["registry_admdvs"] == "320100"
    assert_no_account(family, newcomer)
    assert entry_count(family) == before


def test_a_monthly_credit_to_an_existing_account_does_not_ask_the_registry(family, payment_service):
    """Only opening an account asks the binding service: monthly credits go on while it is down."""
    payment_service.binding.server.stop()
    credited = family.credit(family.mother, 5_000)
    assert credited.balance_fen == 105_000
    assert_ledger_balanced(family)


def test_opening_an_account_while_the_binding_service_is_down_is_unavailable_and_opens_nothing(family, payment_service):
    """A retry with the same request_id runs again once the binding service is back."""
    newcomer = family.register("周新人")
    answered = family.register("郑新人")
    key = request_id()
    first = family.payment.CreditAccount(opening_credit(answered, key=key))
    payment_service.binding.server.stop()
    refusal = refused(family.payment.CreditAccount, opening_credit(newcomer, "320100"))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.UNAVAILABLE, "BINDING_SERVICE_UNAVAILABLE")
    assert_no_account(family, newcomer)
    # A retry of a credit already answered gets its answer, and credits nothing again.
    assert family.payment.CreditAccount(opening_credit(answered, key=key)) == first
    assert money(family, answered) == (10_000, 0, 10_000)
    assert_ledger_balanced(family)


def test_a_credit_with_an_unspecified_kind_or_account_kind_is_refused(family):
    """API conventions: *_UNSPECIFIED enum values are rejected with INVALID_ARGUMENT."""
    base = dict(request_id=request_id(), id_number=family.mother.id_number, amount_fen=100, admdvs="320100")
    no_kind = refused(family.payment.CreditAccount, papi.CreditAccountRequest(account_kind=PERSONAL, **base))
    assert (no_kind.code, no_kind.fields) == (INVALID_ARGUMENT, ("kind",))
    no_account_kind = refused(
        family.payment.CreditAccount,
        papi.CreditAccountRequest(kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION, **base),
    )
    assert (no_account_kind.code, no_account_kind.fields) == (INVALID_ARGUMENT, ("account_kind",))
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert_ledger_balanced(family)


def test_a_contribution_month_that_is_not_yyyy_mm_is_refused_and_credits_nothing(family):
    for period in ("xx", "2026-13", "2026-3", "202603"):
        refusal = refused(
            family.payment.CreditAccount,
            papi.CreditAccountRequest(
                request_id=request_id(), id_number=family.mother.id_number, account_kind=PERSONAL, amount_fen=100,
                kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION, period=period,
            ),
        )  # fmt: skip
        assert (refusal.code, refusal.reason, refusal.fields) == (INVALID_ARGUMENT, "FIELD_INVALID", ("period",))
    assert money(family, family.mother) == (100_000, 0, 100_000)


# GetAccount ---------------------------------------------------------------


def test_reading_an_account_without_naming_its_kind_reads_the_personal_account(family):
    """What people ask about is the personal account (个人账户); a read need not say so."""
    unnamed = family.payment.GetAccount(papi.GetAccountRequest(id_number=family.mother.id_number)).account
    assert unnamed == family.account(family.mother)
    lines = family.payment.ListStatement(papi.ListStatementRequest(id_number=family.mother.id_number)).lines
    named = family.payment.ListStatement(
        papi.ListStatementRequest(id_number=family.mother.id_number, account_kind=PERSONAL)
    ).lines
    assert list(lines) == list(named) and lines


def test_get_account_shows_balance_held_available_and_what_each_binding_shared_this_year(family):
    """Balance (total, held, available) and this year's shared amount per binding."""
    family.settle(150_000)
    family.authorize(20_000)

    assert money(family, family.mother) == (0, 0, 0)
    assert money(family, family.father) == (50_000, 20_000, 30_000)
    mother = family.account(family.mother)
    assert [(s.binding_id, s.beneficiary_id_number, s.shared_fen, s.year) for s in mother.shared_this_year] == [
        (family.mother_binding.binding_id, family.child.id_number, 100_000, 2026)
    ]
    # A hold is not yet shared: only captured money counts.
    assert shared(family, family.father) == {family.father_binding.binding_id: 50_000}
    assert mother.admdvs == "320100"
    assert_ledger_balanced(family)


def test_get_account_of_someone_without_an_account_is_not_found(family):
    """The resident child has no personal account."""
    refusal = refused(
        family.payment.GetAccount, papi.GetAccountRequest(id_number=family.child.id_number, account_kind=PERSONAL)
    )
    assert (refusal.code, refusal.reason) == (NOT_FOUND, "ACCOUNT_NOT_FOUND")
    wallet = refused(
        family.payment.GetAccount, papi.GetAccountRequest(id_number=family.mother.id_number, account_kind=WALLET_KIND)
    )
    assert (wallet.code, wallet.reason) == (NOT_FOUND, "ACCOUNT_NOT_FOUND")
    bad = refused(family.payment.GetAccount, papi.GetAccountRequest(id_number="12345", account_kind=PERSONAL))
    assert (bad.code, bad.fields) == (INVALID_ARGUMENT, ("id_number",))


# ListStatement --------------------------------------------------------------


def test_the_statement_lists_every_movement_newest_first_with_counterpart_purpose_and_settlement(family):
    """A paged statement of every movement with counterpart and purpose."""
    settled = family.settle(30_000, institution_settlement_id="MEDINS-0001")
    family.refund(settled.settlement_id)

    lines = statement(family, family.mother)
    assert [(line.purpose, line.amount_fen, line.balance_after_fen) for line in lines] == [
        (ppb.MOVEMENT_PURPOSE_REFUND, 30_000, 100_000),
        (ppb.MOVEMENT_PURPOSE_SETTLEMENT, -30_000, 70_000),
        (ppb.MOVEMENT_PURPOSE_MONTHLY_CONTRIBUTION, 100_000, 100_000),
    ]
    for line in lines[:2]:
        assert line.counterpart_id_number == family.child.id_number
        assert line.settlement_id == settled.settlement_id
        assert line.binding_id == family.mother_binding.binding_id
        assert line.institution_code == INSTITUTION
        assert line.time.ToDatetime(tzinfo=UTC) == family.clock.now()
    assert (lines[2].settlement_id, lines[2].binding_id, lines[2].memo) == ("", "", "contribution 2026-03")
    assert len({line.entry_id for line in lines}) == 3
    # The father was not touched: his statement has only the contribution.
    assert [line.purpose for line in statement(family, family.father)] == [ppb.MOVEMENT_PURPOSE_MONTHLY_CONTRIBUTION]
    assert_ledger_balanced(family)


def test_the_statement_pages_with_page_token_without_gaps_or_repeats(family):
    """API conventions: page_size/page_token/next_page_token; newest first across pages."""
    for amount in (1, 2, 3, 4):
        family.credit(family.father, amount)
    everything = statement(family, family.father)
    assert [line.amount_fen for line in everything] == [4, 3, 2, 1, 100_000]

    seen, token, pages = [], "", 0
    while True:
        page = family.payment.ListStatement(
            papi.ListStatementRequest(
                id_number=family.father.id_number, account_kind=PERSONAL, page_size=2, page_token=token
            )
        )
        pages += 1
        assert len(page.lines) <= 2
        seen += [line.entry_id for line in page.lines]
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == [line.entry_id for line in everything]

    refusal = refused(
        family.payment.ListStatement,
        papi.ListStatementRequest(
            id_number=family.father.id_number, account_kind=PERSONAL, page_size=2, page_token="not-a-token"
        ),
    )
    assert (refusal.code, refusal.reason, refusal.fields) == (INVALID_ARGUMENT, "INVALID_PAGE_TOKEN", ("page_token",))
    assert_ledger_balanced(family)


def test_the_statement_can_be_filtered_by_month(family):
    """Monthly credits; months are counted in China Standard Time."""
    family.clock.advance(timedelta(days=31))  # 2026-04-02 09:00 CST
    family.credit(family.father, 7_000)
    family.settle(2_000)  # the mother pays

    april = statement(family, family.father, month="2026-04")
    march = statement(family, family.father, month="2026-03")
    assert [(line.purpose, line.amount_fen) for line in april] == [(ppb.MOVEMENT_PURPOSE_MONTHLY_CONTRIBUTION, 7_000)]
    assert [(line.purpose, line.amount_fen) for line in march] == [(ppb.MOVEMENT_PURPOSE_MONTHLY_CONTRIBUTION, 100_000)]
    assert statement(family, family.father, month="2026-05") == []
    assert [line.purpose for line in statement(family, family.mother, month="2026-04")] == [
        ppb.MOVEMENT_PURPOSE_SETTLEMENT
    ]
    refusal = refused(
        family.payment.ListStatement,
        papi.ListStatementRequest(id_number=family.father.id_number, account_kind=PERSONAL, month="2026-13"),
    )
    assert (refusal.code, refusal.fields) == (INVALID_ARGUMENT, ("month",))
    assert_ledger_balanced(family)


# Ordered deduction ----------------------------------------------------------


def test_the_mother_pays_first_then_the_father_then_the_child_in_cash(family):
    """Grantors in binding order, each up to the available balance, the rest cash."""
    settlement = family.settle(250_000)

    assert settlement.state == ppb.SETTLEMENT_STATE_CAPTURED
    assert settlement.settlement_id
    assert legs_of(settlement) == [
        (seen(family.mother), AID, family.mother_binding.binding_id, 100_000, NATIONAL_POLICY),
        (seen(family.father), AID, family.father_binding.binding_id, 100_000, NATIONAL_POLICY),
    ]
    assert [leg.captured_fen for leg in settlement.legs] == [100_000, 100_000]
    assert [leg.payer_balance_after_fen for leg in family.operator_view(settlement).legs] == [0, 0]
    assert [leg.payer_admdvs for leg in settlement.legs] == ["320100", "320100"]
    assert totals(settlement) == (0, 200_000, 0, 50_000)
    assert settlement.captured_fen == 200_000
    assert settlement.policy_version == NATIONAL_POLICY
    assert settlement.bill.self_pay_fen == 250_000
    assert money(family, family.mother) == (0, 0, 0)
    assert money(family, family.father) == (0, 0, 0)
    assert_ledger_balanced(family)


def test_a_small_bill_is_paid_by_the_first_grantor_alone(family):
    """Later grantors pay only what the earlier ones could not."""
    settlement = family.settle(12_345)
    assert legs_of(settlement) == [
        (seen(family.mother), AID, family.mother_binding.binding_id, 12_345, NATIONAL_POLICY)
    ]
    assert totals(settlement) == (0, 12_345, 0, 0)
    assert settlement.legs[0].payer_balance_after_fen == 0  # a relative's balance is not the hospital's business
    assert family.operator_view(settlement).legs[0].payer_balance_after_fen == 87_655
    assert money(family, family.mother) == (87_655, 0, 87_655)
    assert money(family, family.father) == (100_000, 0, 100_000)
    assert_ledger_balanced(family)


def test_the_patients_own_account_pays_before_any_relative_when_chosen(family):
    """The patient's own personal account first, if the patient chose to use it."""
    spouse = bind_spouse(family)
    settlement = family.settle(130_000, patient=family.father, use_own_account=True)

    assert legs_of(settlement) == [
        (family.father.id_number, OWN, "", 100_000, settlement.policy_version),
        (seen(family.mother), AID, spouse.binding_id, 30_000, NATIONAL_POLICY),
    ]
    assert totals(settlement) == (100_000, 30_000, 0, 0)
    assert money(family, family.father) == (0, 0, 0)
    assert money(family, family.mother) == (70_000, 0, 70_000)
    assert shared(family, family.mother) == {spouse.binding_id: 30_000}
    assert_ledger_balanced(family)


def test_a_patient_who_does_not_use_the_own_account_is_paid_for_by_relatives_only(family):
    """The patient's own account comes first only when the patient chose it."""
    spouse = bind_spouse(family)
    settlement = family.settle(130_000, patient=family.father, use_own_account=False)
    assert legs_of(settlement) == [(seen(family.mother), AID, spouse.binding_id, 100_000, NATIONAL_POLICY)]
    assert totals(settlement) == (0, 100_000, 0, 30_000)
    assert money(family, family.father) == (100_000, 0, 100_000)
    assert_ledger_balanced(family)


def test_the_patients_wallet_pays_before_the_relatives(family):
    """The beneficiary pays bills from the wallet; it counts as wallet_pay_fen."""
    family.payment.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=family.child.id_number, admdvs="320100")
    )
    family.payment.CreditAccount(
        papi.CreditAccountRequest(
            request_id=request_id(),
            id_number=family.child.id_number,
            account_kind=WALLET_KIND,
            amount_fen=20_000,
            kind=papi.CREDIT_KIND_ADJUSTMENT,
            admdvs="320100",
        )
    )
    settlement = family.settle(50_000)
    assert [(leg.payer_id_number, leg.source, leg.binding_id, leg.amount_fen) for leg in settlement.legs] == [
        (family.child.id_number, WALLET, "", 20_000),
        (seen(family.mother), AID, family.mother_binding.binding_id, 30_000),
    ]
    assert totals(settlement) == (0, 30_000, 20_000, 0)
    assert money(family, family.child, WALLET_KIND) == (0, 0, 0)
    assert_ledger_balanced(family)


def mother_moves_to_childs_wallet(family: PaymentFamily, amount_fen: int) -> ppb.Transfer:
    """The mother's transfer into her child's wallet on the same node, confirmed by her face."""
    return family.payment.TransferToWallet(
        papi.TransferToWalletRequest(
            request_id=request_id(), grantor_id_number=family.mother.id_number,
            beneficiary_id_number=family.child.id_number, amount_fen=amount_fen,
            verification=ppb.Verification(
                method=ppb.VERIFICATION_METHOD_FACE, token=stand_in_token(family.mother.id_number, "FACE")
            ),
        )
    ).transfer  # fmt: skip


def test_a_wallet_transfer_reads_as_a_transfer_out_for_the_grantor_and_a_transfer_in_for_the_wallet(family):
    """The statement gives every movement its purpose as the account holder sees it: the money
    the mother moves into her child's wallet on the same node leaves her account as a transfer
    out and arrives in the wallet as a transfer in."""
    family.payment.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=family.child.id_number, admdvs="320100")
    )
    moved = mother_moves_to_childs_wallet(family, 20_000)
    assert moved.state == ppb.TRANSFER_STATE_COMPLETED
    out_line = statement(family, family.mother)[0]
    in_line = statement(family, family.child, WALLET_KIND)[0]
    assert (out_line.amount_fen, out_line.purpose, out_line.transfer_id, out_line.counterpart_id_number) == (
        -20_000,
        ppb.MOVEMENT_PURPOSE_WALLET_TRANSFER_OUT,
        moved.transfer_id,
        family.child.id_number,
    )
    assert (in_line.amount_fen, in_line.purpose, in_line.transfer_id, in_line.counterpart_id_number) == (
        20_000,
        ppb.MOVEMENT_PURPOSE_WALLET_TRANSFER_IN,
        moved.transfer_id,
        family.mother.id_number,
    )
    assert_ledger_balanced(family)


def test_a_credit_into_a_wallet_not_activated_is_refused_and_opens_no_wallet(family):
    """The recipient's wallet must be activated first: CreditAccount neither opens a wallet nor
    credits one that ActivateWallet did not open; once activated, an adjustment reaches it."""
    credit = papi.CreditAccountRequest(
        request_id=request_id(), id_number=family.child.id_number, account_kind=WALLET_KIND, amount_fen=20_000,
        kind=papi.CREDIT_KIND_ADJUSTMENT, admdvs="320100",
    )  # fmt: skip
    refusal = refused(family.payment.CreditAccount, credit)
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "WALLET_NOT_ACTIVATED")
    looked_up = papi.GetAccountRequest(id_number=family.child.id_number, account_kind=WALLET_KIND)
    assert refused(family.payment.GetAccount, looked_up).reason == "ACCOUNT_NOT_FOUND"
    assert_ledger_balanced(family)

    family.payment.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=family.child.id_number, admdvs="320100")
    )
    credit.request_id = request_id()
    assert family.payment.CreditAccount(credit).account.balance_fen == 20_000
    assert money(family, family.child, WALLET_KIND) == (20_000, 0, 20_000)
    assert_ledger_balanced(family)


def test_set_payer_order_puts_the_father_before_the_mother(family):
    """The patient's priority order replaces the binding order."""
    set_payer_order(family, [family.father_binding, family.mother_binding])
    settlement = family.settle(150_000)
    assert legs_of(settlement) == [
        (seen(family.father), AID, family.father_binding.binding_id, 100_000, NATIONAL_POLICY),
        (seen(family.mother), AID, family.mother_binding.binding_id, 50_000, NATIONAL_POLICY),
    ]
    assert totals(settlement) == (0, 150_000, 0, 0)
    assert money(family, family.father) == (0, 0, 0)
    assert money(family, family.mother) == (50_000, 0, 50_000)
    assert_ledger_balanced(family)


def test_proportional_mode_splits_the_bill_evenly_with_the_odd_fen_to_the_first_payer(family):
    """PROPORTIONAL mode splits the cost over several grantors' accounts."""
    set_payer_order(family, [family.mother_binding, family.father_binding], bpb.PAYER_MODE_PROPORTIONAL)
    settlement = family.settle(30_001)
    assert legs_of(settlement) == [
        (seen(family.mother), AID, family.mother_binding.binding_id, 15_001, NATIONAL_POLICY),
        (seen(family.father), AID, family.father_binding.binding_id, 15_000, NATIONAL_POLICY),
    ]
    assert totals(settlement) == (0, 30_001, 0, 0)
    assert money(family, family.mother) == (84_999, 0, 84_999)
    assert money(family, family.father) == (85_000, 0, 85_000)
    assert_ledger_balanced(family)


def test_proportional_mode_gives_what_one_grantor_cannot_pay_to_the_other(family):
    """In PROPORTIONAL mode each share is still capped by that grantor's limits."""
    set_payer_order(family, [family.mother_binding, family.father_binding], bpb.PAYER_MODE_PROPORTIONAL)
    cap_binding(family, family.mother_binding, 10_000)
    settlement = family.settle(50_000)
    assert [(leg.payer_id_number, leg.amount_fen) for leg in settlement.legs] == [
        (seen(family.mother), 10_000),
        (seen(family.father), 40_000),
    ]
    assert totals(settlement) == (0, 50_000, 0, 0)
    assert_ledger_balanced(family)


def test_a_smaller_capture_in_proportional_mode_shares_the_final_bill_evenly_between_the_grantors(family):
    """A capture of less than was held is split as a bill of the final amount would be: in
    PROPORTIONAL mode in even shares, not cut from the last grantor alone."""
    set_payer_order(family, [family.mother_binding, family.father_binding], bpb.PAYER_MODE_PROPORTIONAL)
    held = family.authorize(30_000)
    assert [leg.amount_fen for leg in held.legs] == [15_000, 15_000]
    captured = family.capture(held.settlement_id, 10_001)
    assert [leg.captured_fen for leg in captured.legs] == [5_001, 5_000]
    assert totals(captured) == (0, 10_001, 0, 0)
    assert money(family, family.mother) == (94_999, 0, 94_999)
    assert money(family, family.father) == (95_000, 0, 95_000)
    assert_ledger_balanced(family)


def test_a_grantors_yearly_cap_limits_what_the_binding_shares_over_the_year(family):
    """The grantor's share cap left this year (UpdateSharingLimit)."""
    cap_binding(family, family.mother_binding, 30_000)

    first = family.settle(50_000)
    assert [(leg.payer_id_number, leg.amount_fen) for leg in first.legs] == [
        (seen(family.mother), 30_000),
        (seen(family.father), 20_000),
    ]
    second = family.settle(10_000)
    assert legs_of(second) == [(seen(family.father), AID, family.father_binding.binding_id, 10_000, NATIONAL_POLICY)]
    assert money(family, family.mother) == (70_000, 0, 70_000)
    assert shared(family, family.mother) == {family.mother_binding.binding_id: 30_000}
    assert shared(family, family.father) == {family.father_binding.binding_id: 30_000}
    assert_ledger_balanced(family)


def test_an_open_hold_counts_against_the_yearly_cap(family):
    """A held amount is part of this year's sharing until released."""
    cap_binding(family, family.mother_binding, 30_000)
    held = family.authorize(20_000)
    assert [(leg.payer_id_number, leg.amount_fen) for leg in quote(family, 50_000).legs] == [
        (seen(family.mother), 10_000),
        (seen(family.father), 40_000),
    ]
    family.release(held.settlement_id)
    assert [(leg.payer_id_number, leg.amount_fen) for leg in quote(family, 50_000).legs] == [
        (seen(family.mother), 30_000),
        (seen(family.father), 20_000),
    ]
    assert_ledger_balanced(family)


def test_the_regional_annual_quota_limits_each_grantor_and_every_leg_cites_the_policy(family):
    """Annual_share_ratio_percent (e.g. Beijing 60%) of the grantor's balance."""
    policy = put_policy(family, annual_share_ratio_percent=60)
    assert policy.version.startswith("320100@")

    settlement = family.settle(150_000)
    assert legs_of(settlement) == [
        (seen(family.mother), AID, family.mother_binding.binding_id, 60_000, policy.version),
        (seen(family.father), AID, family.father_binding.binding_id, 60_000, policy.version),
    ]
    assert totals(settlement) == (0, 120_000, 0, 30_000)
    assert settlement.policy_version == policy.version
    # The quota is spent: a second bill is all cash.
    again = family.settle(5_000)
    assert (list(again.legs), totals(again)) == ([], (0, 0, 0, 5_000))
    assert money(family, family.mother) == (40_000, 0, 40_000)
    assert_ledger_balanced(family)


def test_the_per_use_limit_caps_what_all_relatives_together_pay_for_one_bill(family):
    """E.g. 500 yuan per outpatient visit (单次门诊费用不得超过500元, seed 003): each grantor pays
    up to the per-use limit left, so the first pays it all and the second nothing."""
    policy = put_policy(family, per_use_limit_fen=50_000)
    settlement = family.settle(120_000)
    assert legs_of(settlement) == [
        (seen(family.mother), AID, family.mother_binding.binding_id, 50_000, policy.version),
    ]
    assert totals(settlement) == (0, 50_000, 0, 70_000)
    family.settle(30_000)  # the mother has 20,000 fen left
    # With the first grantor's balance below the limit, the second pays the rest of the limit.
    third = family.settle(120_000)
    assert [(leg.payer_id_number, leg.amount_fen) for leg in third.legs] == [
        (seen(family.mother), 20_000),
        (seen(family.father), 30_000),
    ]
    assert totals(third) == (0, 50_000, 0, 70_000)
    assert_ledger_balanced(family)


def test_in_even_shares_the_per_use_limit_is_split_between_the_grantors(family):
    """PROPORTIONAL mode splits what one use may take, not the whole bill."""
    put_policy(family, per_use_limit_fen=50_000)
    set_payer_order(family, [family.mother_binding, family.father_binding], bpb.PAYER_MODE_PROPORTIONAL)
    settlement = family.settle(120_000)
    assert [(leg.payer_id_number, leg.amount_fen) for leg in settlement.legs] == [
        (seen(family.mother), 25_000),
        (seen(family.father), 25_000),
    ]
    assert totals(settlement) == (0, 50_000, 0, 70_000)
    assert_ledger_balanced(family)


def test_the_chronic_disease_limit_replaces_the_per_use_limit_for_a_flagged_or_chronic_outpatient_bill(family):
    """The per-use limit is raised for chronic and special diseases (门诊慢特病)."""
    policy = put_policy(family, per_use_limit_fen=50_000, chronic_disease_per_use_limit_fen=80_000)
    chronic = family.settle(120_000, use=common.USE_CATEGORY_CHRONIC_DISEASE_OUTPATIENT, chronic_disease=True)
    assert legs_of(chronic) == [
        (seen(family.mother), AID, family.mother_binding.binding_id, 80_000, policy.version),
    ]
    assert totals(chronic) == (0, 80_000, 0, 40_000)
    assert chronic.bill.chronic_disease

    # A chronic-disease outpatient bill (门诊慢特病) is one without its flag too: the relatives
    # give 80,000 fen of it (the mother her last 20,000), not the ordinary 50,000.
    unflagged = quote(family, 100_000, use=common.USE_CATEGORY_CHRONIC_DISEASE_OUTPATIENT)
    assert [(leg.payer_id_number, leg.amount_fen) for leg in unflagged.legs] == [
        (seen(family.mother), 20_000),
        (seen(family.father), 60_000),
    ]
    ordinary = quote(family, 100_000, use=common.USE_CATEGORY_OUTPATIENT)
    assert [(leg.payer_id_number, leg.amount_fen) for leg in ordinary.legs] == [
        (seen(family.mother), 20_000),
        (seen(family.father), 30_000),
    ]
    assert_ledger_balanced(family)


def test_a_grantor_keeps_the_regions_minimum_balance(family):
    """A minimum grantor balance (Lhasa: 3,000 yuan) is never shared."""
    policy = put_policy(family, min_grantor_balance_fen=30_000)
    settlement = family.settle(200_000)
    assert legs_of(settlement) == [
        (seen(family.mother), AID, family.mother_binding.binding_id, 70_000, policy.version),
        (seen(family.father), AID, family.father_binding.binding_id, 70_000, policy.version),
    ]
    assert totals(settlement) == (0, 140_000, 0, 60_000)
    assert money(family, family.mother) == (30_000, 0, 30_000)
    assert_ledger_balanced(family)


def test_where_the_region_earmarks_a_set_amount_the_grantor_cannot_spend_it_on_his_own_bills(family):
    """The mother set 300 yuan a year for her child in a region whose policy
    earmarks set amounts; her own bill may use her account only down to what is still reserved,
    and the reserve shrinks as the child draws on it."""
    put_policy(family, earmark_shared_amount=True)
    cap_binding(family, family.mother_binding, 30_000)

    own_bill = family.settle(90_000, patient=family.mother, use_own_account=True)
    assert totals(own_bill) == (70_000, 0, 0, 20_000)
    assert money(family, family.mother) == (30_000, 0, 30_000)

    childs_bill = family.settle(10_000)
    assert [(leg.payer_id_number, leg.amount_fen) for leg in childs_bill.legs] == [(seen(family.mother), 10_000)]

    # 20,000 fen left in the account, all of it still reserved for the child.
    assert totals(family.settle(5_000, patient=family.mother, use_own_account=True)) == (0, 0, 0, 5_000)
    assert money(family, family.mother) == (20_000, 0, 20_000)
    assert_ledger_balanced(family)


def test_without_earmarking_or_with_a_share_everything_binding_the_grantor_spends_his_whole_balance(family):
    """Earmarking is a regional option, off by default; a binding that shares
    everything sets no amount, so even where the region earmarks it reserves nothing."""
    cap_binding(family, family.mother_binding, 30_000)
    assert totals(family.settle(60_000, patient=family.mother, use_own_account=True)) == (60_000, 0, 0, 0)

    put_policy(family, earmark_shared_amount=True)
    family.binding.UpdateSharingLimit(
        bapi.UpdateSharingLimitRequest(
            request_id=request_id(), binding_id=family.mother_binding.binding_id, share_all=True
        ),
        timeout=10,
    )
    assert totals(family.settle(40_000, patient=family.mother, use_own_account=True)) == (40_000, 0, 0, 0)
    assert money(family, family.mother) == (0, 0, 0)
    assert_ledger_balanced(family)


def test_a_settlement_uses_the_policy_version_in_force_at_its_time(family):
    """Policies are versioned with an effective date; a settlement uses and records
    the version in force at its time."""
    tomorrow = family.clock.now() + timedelta(days=1)
    later = put_policy(family, per_use_limit_fen=50_000, effective_from=tomorrow)
    today_bill = family.settle(60_000)
    assert legs_of(today_bill) == [
        (seen(family.mother), AID, family.mother_binding.binding_id, 60_000, NATIONAL_POLICY)
    ]
    family.clock.advance(timedelta(days=2))
    later_bill = family.settle(60_000)
    assert legs_of(later_bill) == [
        (seen(family.mother), AID, family.mother_binding.binding_id, 40_000, later.version),
        (seen(family.father), AID, family.father_binding.binding_id, 10_000, later.version),
    ]
    assert totals(later_bill)[3] == 10_000  # the new version's per-use limit leaves it to cash
    assert later_bill.policy_version == later.version
    # The earlier settlement still cites the version it was made under.
    got = family.payment.GetSettlement(papi.GetSettlementRequest(settlement_id=today_bill.settlement_id)).settlement
    assert [leg.policy_version for leg in got.legs] == [NATIONAL_POLICY]
    assert_ledger_balanced(family)


def test_an_inpatient_deposit_held_over_new_year_does_not_let_a_grantor_exceed_the_yearly_cap(family):
    """The share cap left this year; inpatient stays hold a deposit for days."""
    cap_binding(family, family.mother_binding, 30_000)
    family.clock.set(datetime(2026, 12, 31, 14, 0, tzinfo=UTC))  # 22:00 CST on New Year's Eve
    held = family.authorize(
        30_000, expire_time=family.clock.now() + timedelta(days=5), use=common.USE_CATEGORY_INPATIENT
    )
    family.clock.advance(timedelta(days=2))  # discharged on 2 January 2027
    family.capture(held.settlement_id)
    assert shared(family, family.mother) == {family.mother_binding.binding_id: 30_000}
    # The cap is spent for 2027: the next bill goes to the father.
    next_bill = quote(family, 50_000)
    assert [(leg.payer_id_number, leg.amount_fen) for leg in next_bill.legs] == [(seen(family.father), 50_000)]


def payers(settlement: ppb.Settlement) -> list[tuple[str, int]]:
    return [(leg.payer_id_number, leg.amount_fen) for leg in settlement.legs]


def test_a_deposit_held_over_new_year_counts_against_the_new_years_cap_until_it_is_captured(family):
    """Each grantor pays up to the share cap left this year: a deposit still held on 1 January
    will be booked to the year it is captured in, so a bill settled while it is open leaves that
    much of the new year's cap to it."""
    cap_binding(family, family.mother_binding, 30_000)
    family.clock.set(datetime(2026, 12, 31, 14, 0, tzinfo=UTC))  # 22:00 CST on New Year's Eve
    held = family.authorize(
        30_000, expire_time=family.clock.now() + timedelta(days=5), use=common.USE_CATEGORY_INPATIENT
    )
    assert payers(held) == [(seen(family.mother), 30_000)]
    family.clock.advance(timedelta(hours=12))  # 10:00 CST on 1 January 2027
    outpatient = family.settle(30_000)
    assert payers(outpatient) == [(seen(family.father), 30_000)]
    family.clock.advance(timedelta(days=1))
    family.capture(held.settlement_id)
    assert shared(family, family.mother) == {family.mother_binding.binding_id: 30_000}
    assert_ledger_balanced(family)


def test_a_deposit_held_over_new_year_counts_against_the_new_years_regional_quota(family):
    """Each grantor pays up to the regional annual quota left (60 % of the 100,000 fen she held)."""
    put_policy(family, annual_share_ratio_percent=60)
    family.clock.set(datetime(2026, 12, 31, 14, 0, tzinfo=UTC))
    held = family.authorize(
        60_000, expire_time=family.clock.now() + timedelta(days=5), use=common.USE_CATEGORY_INPATIENT
    )
    assert payers(held) == [(seen(family.mother), 60_000)]
    family.clock.advance(timedelta(hours=12))
    assert payers(family.settle(60_000)) == [(seen(family.father), 60_000)]
    family.clock.advance(timedelta(days=1))
    family.capture(held.settlement_id)
    assert shared(family, family.mother) == {family.mother_binding.binding_id: 60_000}
    assert_ledger_balanced(family)


@pytest.mark.parametrize("close", ["capture", "release"])
def test_a_deposit_closed_before_midnight_leaves_the_new_years_cap_whole(family, close):
    """A deposit captured on New Year's Eve is the old year's; released, it is no one's: either
    way the new year's cap is not counted for it."""
    cap_binding(family, family.mother_binding, 30_000)
    family.clock.set(datetime(2026, 12, 31, 14, 0, tzinfo=UTC))
    held = family.authorize(
        30_000, expire_time=family.clock.now() + timedelta(days=5), use=common.USE_CATEGORY_INPATIENT
    )
    family.clock.advance(timedelta(hours=1))  # 23:00 CST
    getattr(family, close)(held.settlement_id)
    family.clock.advance(timedelta(hours=11))  # 10:00 CST on 1 January 2027
    assert payers(family.settle(30_000)) == [(seen(family.mother), 30_000)]
    assert shared(family, family.mother) == {family.mother_binding.binding_id: 30_000}
    assert_ledger_balanced(family)


def test_a_deposit_held_over_new_year_and_released_gives_the_new_years_cap_back(family):
    cap_binding(family, family.mother_binding, 30_000)
    family.clock.set(datetime(2026, 12, 31, 14, 0, tzinfo=UTC))
    held = family.authorize(
        30_000, expire_time=family.clock.now() + timedelta(days=5), use=common.USE_CATEGORY_INPATIENT
    )
    family.clock.advance(timedelta(hours=12))
    assert payers(quote(family, 30_000)) == [(seen(family.father), 30_000)]  # the deposit reserves it
    family.release(held.settlement_id)
    assert payers(family.settle(30_000)) == [(seen(family.mother), 30_000)]
    assert_ledger_balanced(family)


# Quote, authorize, capture, release -----------------------------------------


def test_a_quote_returns_the_split_and_moves_no_money(family):
    """Pre-settlement (预结算) returns the split without moving money."""
    before = family.ledger()
    quoted = quote(family, 150_000)

    assert quoted.settlement_id == ""
    assert quoted.state == ppb.SETTLEMENT_STATE_UNSPECIFIED
    assert legs_of(quoted) == [
        (seen(family.mother), AID, family.mother_binding.binding_id, 100_000, NATIONAL_POLICY),
        (seen(family.father), AID, family.father_binding.binding_id, 50_000, NATIONAL_POLICY),
    ]
    assert totals(quoted) == (0, 150_000, 0, 0)
    assert [leg.payer_balance_after_fen for leg in quoted.legs] == [0, 0]  # relatives' balances stay hidden
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert money(family, family.father) == (100_000, 0, 100_000)
    assert shared(family, family.mother) == {}
    after = family.ledger()
    assert (after.entry_count, after.account_count) == (before.entry_count, before.account_count)
    # Quoting twice gives the same answer.
    assert legs_of(quote(family, 150_000)) == legs_of(quoted)
    assert_ledger_balanced(family)


def test_a_quote_for_a_time_after_a_holds_expiry_is_answered_and_leaves_the_hold_alone(family):
    """A quote's at_time picks the policy in force; a hold that will have lapsed by then is still
    held now. The quote used to judge holds lapsed at at_time, found one "past its expiry" that
    the sweeper could not release yet, and answered ABORTED (retry) however often it was sent."""
    now = family.clock.now()
    held = family.authorize(30_000, expire_time=now + timedelta(hours=2))
    request = papi.QuoteSettlementRequest(bill=family.bill(10_000))
    request.at_time.FromDatetime(now + timedelta(days=1))
    quoted = family.payment.QuoteSettlement(request, timeout=10).settlement
    assert sum(leg.amount_fen for leg in quoted.legs) + quoted.cash_pay_fen == 10_000
    assert money(family, family.mother)[1] + money(family, family.father)[1] == 30_000
    again = family.payment.GetSettlement(papi.GetSettlementRequest(settlement_id=held.settlement_id)).settlement
    assert again.state == ppb.SETTLEMENT_STATE_AUTHORIZED


def test_an_authorization_holds_every_leg_at_once_and_the_hold_counts_against_a_later_one(family):
    """A hold reduces the available balance at once."""
    first = family.authorize(150_000)
    assert first.state == ppb.SETTLEMENT_STATE_AUTHORIZED
    assert legs_of(first) == [
        (seen(family.mother), AID, family.mother_binding.binding_id, 100_000, NATIONAL_POLICY),
        (seen(family.father), AID, family.father_binding.binding_id, 50_000, NATIONAL_POLICY),
    ]
    assert totals(first) == (0, 150_000, 0, 0)
    assert first.expire_time.ToDatetime(tzinfo=UTC) == family.clock.now() + timedelta(minutes=15)
    assert money(family, family.mother) == (100_000, 100_000, 0)
    assert money(family, family.father) == (100_000, 50_000, 50_000)

    second = family.authorize(80_000)
    assert legs_of(second) == [(seen(family.father), AID, family.father_binding.binding_id, 50_000, NATIONAL_POLICY)]
    assert totals(second) == (0, 50_000, 0, 30_000)
    assert money(family, family.father) == (100_000, 100_000, 0)

    released = family.release(first.settlement_id)
    assert released.state == ppb.SETTLEMENT_STATE_RELEASED
    family.release(second.settlement_id)
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert money(family, family.father) == (100_000, 0, 100_000)
    assert shared(family, family.mother) == {family.mother_binding.binding_id: 0}
    assert_ledger_balanced(family)


def test_capturing_less_than_authorized_shrinks_the_cash_part_first(family):
    """Capture settles possibly less than held; the cash part goes first."""
    held = family.authorize(250_000)
    assert totals(held) == (0, 200_000, 0, 50_000)

    captured = family.capture(held.settlement_id, 220_000)
    assert captured.state == ppb.SETTLEMENT_STATE_CAPTURED
    assert [(leg.payer_id_number, leg.amount_fen, leg.captured_fen) for leg in captured.legs] == [
        (seen(family.mother), 100_000, 100_000),
        (seen(family.father), 100_000, 100_000),
    ]
    assert totals(captured) == (0, 200_000, 0, 20_000)
    assert captured.captured_fen == 200_000
    assert captured.capture_time.ToDatetime(tzinfo=UTC) == family.clock.now()
    assert money(family, family.mother) == (0, 0, 0)
    assert money(family, family.father) == (0, 0, 0)
    assert_ledger_balanced(family)


def test_capturing_less_than_authorized_then_releases_the_rest_from_the_last_payer_back(family):
    """After the cash part, the last payer's leg shrinks; the rest of the holds is released."""
    held = family.authorize(150_000)
    captured = family.capture(held.settlement_id, 120_000)
    assert [(leg.payer_id_number, leg.amount_fen, leg.captured_fen) for leg in captured.legs] == [
        (seen(family.mother), 100_000, 100_000),
        (seen(family.father), 50_000, 20_000),
    ]
    assert totals(captured) == (0, 120_000, 0, 0)
    assert [leg.payer_balance_after_fen for leg in family.operator_view(captured).legs] == [0, 80_000]
    assert money(family, family.mother) == (0, 0, 0)
    assert money(family, family.father) == (80_000, 0, 80_000)
    assert shared(family, family.father) == {family.father_binding.binding_id: 20_000}
    got = family.payment.GetSettlement(papi.GetSettlementRequest(settlement_id=held.settlement_id)).settlement
    assert without_balc(got) == without_balc(captured)
    assert_ledger_balanced(family)


def test_capturing_more_than_authorized_is_refused_and_the_holds_stay(family):
    """Capture never more than held → AMOUNT_EXCEEDS_HOLD."""
    held = family.authorize(150_000)
    refusal = refused(family.payment.CaptureSettlement, capture_request(held.settlement_id, 150_001))
    assert (refusal.code, refusal.reason, refusal.fields) == (
        FAILED_PRECONDITION,
        "AMOUNT_EXCEEDS_HOLD",
        ("amount_fen",),
    )
    assert money(family, family.mother) == (100_000, 100_000, 0)
    assert money(family, family.father) == (100_000, 50_000, 50_000)
    assert family.payment.GetSettlement(
        papi.GetSettlementRequest(settlement_id=held.settlement_id)
    ).settlement.state == (ppb.SETTLEMENT_STATE_AUTHORIZED)
    full = family.capture(held.settlement_id)
    assert (full.state, full.captured_fen) == (ppb.SETTLEMENT_STATE_CAPTURED, 150_000)
    assert_ledger_balanced(family)


def test_capturing_twice_is_refused_as_already_captured_and_charges_once(family):
    """A settlement is captured once."""
    held = family.authorize(30_000)
    family.capture(held.settlement_id)
    refusal = refused(family.payment.CaptureSettlement, capture_request(held.settlement_id))
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "ALREADY_CAPTURED")
    release = refused(family.payment.ReleaseSettlement, release_request(held.settlement_id))
    assert (release.code, release.reason) == (FAILED_PRECONDITION, "ALREADY_CAPTURED")
    assert money(family, family.mother) == (70_000, 0, 70_000)
    assert_ledger_balanced(family)


def test_capturing_or_releasing_a_released_settlement_is_refused_as_already_released(family):
    """Release gives the holds back for good."""
    held = family.authorize(30_000)
    family.release(held.settlement_id)
    capture = refused(family.payment.CaptureSettlement, capture_request(held.settlement_id))
    assert (capture.code, capture.reason) == (FAILED_PRECONDITION, "ALREADY_RELEASED")
    again = refused(family.payment.ReleaseSettlement, release_request(held.settlement_id))
    assert (again.code, again.reason) == (FAILED_PRECONDITION, "ALREADY_RELEASED")
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert statement(family, family.mother)[0].purpose == ppb.MOVEMENT_PURPOSE_MONTHLY_CONTRIBUTION
    assert_ledger_balanced(family)


def test_capturing_after_the_hold_expired_is_refused_and_the_hold_is_released(family):
    """A hold expires after a configurable time unless captured."""
    held = family.authorize(150_000)
    family.clock.advance(timedelta(minutes=16))

    refusal = refused(family.payment.CaptureSettlement, capture_request(held.settlement_id))
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "HOLD_EXPIRED")
    assert family.payment.GetSettlement(
        papi.GetSettlementRequest(settlement_id=held.settlement_id)
    ).settlement.state == (ppb.SETTLEMENT_STATE_EXPIRED)
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert money(family, family.father) == (100_000, 0, 100_000)
    again = refused(family.payment.CaptureSettlement, capture_request(held.settlement_id))
    assert again.reason == "HOLD_EXPIRED"
    release = refused(family.payment.ReleaseSettlement, release_request(held.settlement_id))
    assert release.reason == "ALREADY_RELEASED"
    assert_ledger_balanced(family)


@pytest.mark.parametrize("read_first", [False, True])
def test_releasing_a_hold_past_its_expiry_is_refused_as_already_released_whether_or_not_it_was_read(family, read_first):
    """A hold lapses at its expiry, not when the sweeper or a read next comes by: a release sent
    after it finds the settlement EXPIRED. It used to release it as RELEASED when nothing had read
    the settlement since the expiry, and refuse ALREADY_RELEASED when something had."""
    held = family.authorize(30_000)
    family.clock.advance(timedelta(minutes=16))
    if read_first:
        family.payment.GetSettlement(papi.GetSettlementRequest(settlement_id=held.settlement_id))
    release = refused(family.payment.ReleaseSettlement, release_request(held.settlement_id))
    assert (release.code, release.reason) == (FAILED_PRECONDITION, "ALREADY_RELEASED")
    got = family.payment.GetSettlement(papi.GetSettlementRequest(settlement_id=held.settlement_id)).settlement
    assert got.state == ppb.SETTLEMENT_STATE_EXPIRED
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert shared(family, family.mother) == {family.mother_binding.binding_id: 0}
    assert_ledger_balanced(family)


@pytest.mark.parametrize("read_first", [False, True])
def test_reversing_an_authorization_whose_hold_lapsed_leaves_it_expired_whether_or_not_it_was_read(family, read_first):
    """The hold gave the money back at its expiry; a reversal after it has nothing more to cancel
    and finds the settlement EXPIRED. It used to turn it REVERSED unless something had read it."""
    key = request_id()
    held = family.payment.AuthorizeSettlement(authorize_request(family, 30_000, key=key)).settlement
    family.clock.advance(timedelta(minutes=16))
    if read_first:
        family.payment.GetSettlement(papi.GetSettlementRequest(settlement_id=held.settlement_id))
    reversal = reverse(family, key)
    assert reversal.original_found
    assert reversal.settlement.state == ppb.SETTLEMENT_STATE_EXPIRED
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert shared(family, family.mother) == {family.mother_binding.binding_id: 0}
    assert_ledger_balanced(family)


def test_a_hold_past_its_expiry_reads_as_given_back_before_the_sweeper_comes_by(family):
    """Release or expiry gives the money back: once the expiry has passed, the accounts read as
    not held and the settlement as expired, whenever the sweeper runs next."""
    held = family.authorize(150_000)
    assert money(family, family.mother) == (100_000, 100_000, 0)
    family.clock.advance(timedelta(minutes=16))

    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert money(family, family.father) == (100_000, 0, 100_000)
    assert shared(family, family.mother) == {family.mother_binding.binding_id: 0}
    settlement = family.payment.GetSettlement(papi.GetSettlementRequest(settlement_id=held.settlement_id)).settlement
    assert settlement.state == ppb.SETTLEMENT_STATE_EXPIRED
    assert [line.purpose for line in statement(family, family.mother)] == [ppb.MOVEMENT_PURPOSE_MONTHLY_CONTRIBUTION]
    assert_ledger_balanced(family)


def test_a_bill_after_a_hold_lapsed_draws_on_the_money_the_hold_kept(family):
    """A lapsed hold keeps nothing from the next bill: the relatives pay it in full, the patient
    pays no cash, whether or not the sweeper has released the hold yet."""
    family.authorize(150_000)
    family.clock.advance(timedelta(minutes=16))

    settled = family.settle(200_000)
    assert totals(settled) == (0, 200_000, 0, 0)
    assert [(leg.payer_id_number, leg.amount_fen) for leg in settled.legs] == [
        (seen(family.mother), 100_000),
        (seen(family.father), 100_000),
    ]
    assert money(family, family.mother) == (0, 0, 0)
    assert_ledger_balanced(family)


def test_a_wallet_transfer_after_a_hold_lapsed_may_move_the_money_the_hold_kept(family):
    family.payment.ActivateWallet(
        papi.ActivateWalletRequest(request_id=request_id(), id_number=family.child.id_number, admdvs="320100")
    )
    family.authorize(100_000)  # all of the mother's balance
    family.clock.advance(timedelta(minutes=16))

    moved = mother_moves_to_childs_wallet(family, 20_000)
    assert moved.state == ppb.TRANSFER_STATE_COMPLETED
    assert money(family, family.mother) == (80_000, 0, 80_000)
    assert_ledger_balanced(family)


def test_an_inpatient_deposit_is_held_for_days_and_captured_at_discharge(family):
    """Inpatient stays hold a deposit for days and settle at discharge."""
    admitted = family.clock.now()
    held = family.authorize(150_000, expire_time=admitted + timedelta(days=10), use=common.USE_CATEGORY_INPATIENT)
    assert held.expire_time.ToDatetime(tzinfo=UTC) == admitted + timedelta(days=10)

    family.clock.advance(timedelta(days=6))
    assert money(family, family.mother) == (100_000, 100_000, 0)
    assert money(family, family.father) == (100_000, 50_000, 50_000)
    assert_ledger_balanced(family)

    discharged = family.capture(held.settlement_id, 130_000)
    assert discharged.state == ppb.SETTLEMENT_STATE_CAPTURED
    assert discharged.capture_time.ToDatetime(tzinfo=UTC) == admitted + timedelta(days=6)
    assert [(leg.payer_id_number, leg.captured_fen) for leg in discharged.legs] == [
        (seen(family.mother), 100_000),
        (seen(family.father), 30_000),
    ]
    assert discharged.bill.use_category == common.USE_CATEGORY_INPATIENT
    assert money(family, family.father) == (70_000, 0, 70_000)
    assert_ledger_balanced(family)


@pytest.mark.parametrize("offset", [timedelta(seconds=-1), timedelta(days=61)])
def test_an_expiry_in_the_past_or_beyond_sixty_days_is_refused(family, offset):
    """Expire_time must lie ahead, within the service's maximum hold."""
    request = authorize_request(family, 10_000)
    request.expire_time.FromDatetime(family.clock.now() + offset)
    refusal = refused(family.payment.AuthorizeSettlement, request)
    assert (refusal.code, refusal.fields) == (INVALID_ARGUMENT, ("expire_time",))
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert_ledger_balanced(family)


# Refund (撤销) and GetSettlement ---------------------------------------------


def test_a_refund_returns_every_leg_to_the_account_it_came_from(family):
    """Undo (撤销) refunds a settled bill leg by leg."""
    settled = family.settle(150_000)
    refunded = family.refund(settled.settlement_id)

    assert refunded.state == ppb.SETTLEMENT_STATE_REFUNDED
    assert [(leg.payer_id_number, leg.captured_fen, leg.refunded_fen) for leg in refunded.legs] == [
        (seen(family.mother), 100_000, 100_000),
        (seen(family.father), 50_000, 50_000),
    ]
    assert refunded.refunded_fen == 150_000
    assert [leg.payer_balance_after_fen for leg in family.operator_view(refunded).legs] == [100_000, 100_000]
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert money(family, family.father) == (100_000, 0, 100_000)
    assert shared(family, family.mother) == {family.mother_binding.binding_id: 0}
    assert shared(family, family.father) == {family.father_binding.binding_id: 0}
    newest = statement(family, family.father)[0]
    assert (newest.purpose, newest.amount_fen, newest.settlement_id) == (
        ppb.MOVEMENT_PURPOSE_REFUND,
        50_000,
        settled.settlement_id,
    )
    got = family.payment.GetSettlement(papi.GetSettlementRequest(settlement_id=settled.settlement_id)).settlement
    assert without_balc(got) == without_balc(refunded)
    assert_ledger_balanced(family)


def test_refunding_twice_is_refused_as_already_refunded(family):
    """A settlement is undone once."""
    settled = family.settle(20_000)
    family.refund(settled.settlement_id)
    refusal = refused(family.payment.RefundSettlement, refund_request(settled.settlement_id))
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "ALREADY_REFUNDED")
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert_ledger_balanced(family)


def test_refunding_an_uncaptured_settlement_is_refused_as_not_captured(family):
    """Only settled money can be undone; holds are released instead."""
    held = family.authorize(20_000)
    refusal = refused(family.payment.RefundSettlement, refund_request(held.settlement_id))
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "NOT_CAPTURED")
    assert money(family, family.mother) == (100_000, 20_000, 80_000)
    family.release(held.settlement_id)
    released = refused(family.payment.RefundSettlement, refund_request(held.settlement_id))
    assert (released.code, released.reason) == (FAILED_PRECONDITION, "NOT_CAPTURED")
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert_ledger_balanced(family)


def test_get_settlement_returns_what_settle_answered(family):
    """The result lists every leg so a hospital can print it again."""
    settled = family.settle(150_000, institution_settlement_id="MEDINS-42")
    got = family.payment.GetSettlement(papi.GetSettlementRequest(settlement_id=settled.settlement_id)).settlement
    assert got == settled
    assert got.bill.institution_settlement_id == "MEDINS-42"
    assert got.bill.institution_code == INSTITUTION
    assert got.bill.patient_id_number == family.child.id_number
    assert got.create_time.ToDatetime(tzinfo=UTC) == family.clock.now()
    assert_ledger_balanced(family)


def test_get_settlement_after_a_partial_capture_reports_the_remaining_balance_the_capture_reported(family):
    """Each leg records its payer's remaining balance (balc); an operator reads it for every
    payer, the hospital only for the patient's own account, never a relative's."""
    held = family.authorize(150_000)
    assert [leg.payer_balance_after_fen for leg in family.operator_view(held).legs] == [0, 50_000]
    captured = family.capture(held.settlement_id, 120_000)
    assert [leg.payer_balance_after_fen for leg in family.operator_view(captured).legs] == [0, 80_000]
    got = family.payment.GetSettlement(papi.GetSettlementRequest(settlement_id=held.settlement_id)).settlement
    assert [leg.payer_balance_after_fen for leg in got.legs] == [0, 0]
    assert [leg.payer_id_number for leg in got.legs] == [seen(family.mother), seen(family.father)]


@pytest.mark.parametrize("rpc", ["GetSettlement", "CaptureSettlement", "ReleaseSettlement", "RefundSettlement"])
def test_an_unknown_settlement_id_is_not_found(family, rpc):
    """Every lifecycle call names an existing settlement."""
    unknown = "00000000-0000-0000-0000-000000000000"
    requests = {
        "GetSettlement": papi.GetSettlementRequest(settlement_id=unknown),
        "CaptureSettlement": capture_request(unknown),
        "ReleaseSettlement": release_request(unknown),
        "RefundSettlement": refund_request(unknown),
    }
    refusal = refused(getattr(family.payment, rpc), requests[rpc])
    assert (refusal.code, refusal.reason) == (NOT_FOUND, "SETTLEMENT_NOT_FOUND")
    assert_ledger_balanced(family)


# refuse_cash_part and use categories -----------------------------------


@pytest.mark.parametrize("rpc", ["Settle", "AuthorizeSettlement", "QuoteSettlement"])
def test_refusing_a_cash_part_with_too_little_money_is_insufficient_funds_and_nothing_moves(family, rpc):
    """API: INSUFFICIENT_FUNDS only where the caller demanded no cash part."""
    before = entry_count(family)
    bill = family.bill(250_000, refuse_cash_part=True)
    request = {
        "Settle": papi.SettleRequest(request_id=request_id(), bill=bill),
        "AuthorizeSettlement": papi.AuthorizeSettlementRequest(request_id=request_id(), bill=bill),
        "QuoteSettlement": papi.QuoteSettlementRequest(bill=bill),
    }[rpc]
    with pytest.raises(grpc.RpcError) as raised:
        getattr(family.payment, rpc)(request, timeout=10)
    refusal = refusal_of(raised.value)
    assert (refusal.code, refusal.reason, refusal.domain) == (
        FAILED_PRECONDITION,
        "INSUFFICIENT_FUNDS",
        "payment.gongji",
    )
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert money(family, family.father) == (100_000, 0, 100_000)
    assert entry_count(family) == before
    # Exactly what the accounts can cover is accepted without cash.
    exact = family.settle(200_000, refuse_cash_part=True)
    assert totals(exact) == (0, 200_000, 0, 0)
    assert_ledger_balanced(family)


def test_commercial_health_insurance_is_not_an_allowed_use_by_default_and_nothing_moves(family):
    """Commercial insurance is a regional option, off by default."""
    before = entry_count(family)
    for call, request in [
        (family.payment.Settle, settle_request(family, 10_000, use=common.USE_CATEGORY_COMMERCIAL_HEALTH_INSURANCE)),
        (
            family.payment.AuthorizeSettlement,
            authorize_request(family, 10_000, use=common.USE_CATEGORY_COMMERCIAL_HEALTH_INSURANCE),
        ),
        (
            family.payment.QuoteSettlement,
            papi.QuoteSettlementRequest(bill=family.bill(10_000, use=common.USE_CATEGORY_COMMERCIAL_HEALTH_INSURANCE)),
        ),
    ]:
        refusal = refused(call, request)
        assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "USE_NOT_ALLOWED")
        assert "bill.use_category" in refusal.fields
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert entry_count(family) == before
    assert_ledger_balanced(family)


def test_a_region_that_allows_commercial_health_insurance_pays_its_premium(family):
    """Where the region allows, commercial health insurance premiums."""
    policy = put_policy(family, allowed_uses=[*ALL_NATIONAL_USES, common.USE_CATEGORY_COMMERCIAL_HEALTH_INSURANCE])
    settlement = family.settle(10_000, use=common.USE_CATEGORY_COMMERCIAL_HEALTH_INSURANCE)
    assert legs_of(settlement) == [(seen(family.mother), AID, family.mother_binding.binding_id, 10_000, policy.version)]
    assert_ledger_balanced(family)


# Impersonation and suspension ------------------------------------------------


def test_a_bill_presenting_someone_elses_card_is_impersonation_recorded_against_the_holder(family):
    """The credential must belong to the patient; else refuse and record a violation."""
    before = entry_count(family)
    key = request_id()
    request = settle_request(family, 10_000, key=key, holder=family.father)
    refusal = refused(family.payment.Settle, request)
    assert (refusal.code, refusal.reason) == (PERMISSION_DENIED, "IMPERSONATION")

    listed = violations(family, family.father)
    assert [(v.kind, v.holder_id_number, v.patient_id_number, v.institution_code) for v in listed.violations] == [
        (ppb.VIOLATION_KIND_IMPERSONATION, family.father.id_number, family.child.id_number, INSTITUTION)
    ]
    assert listed.violations[0].time.ToDatetime(tzinfo=UTC) == family.clock.now()
    assert not listed.HasField("suspension")
    assert list(violations(family, family.child).violations) == []

    # A retry of the same request replays the refusal and records nothing more.
    assert refused(family.payment.Settle, request).reason == "IMPERSONATION"
    assert len(violations(family, family.father).violations) == 1
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert money(family, family.father) == (100_000, 0, 100_000)
    assert entry_count(family) == before
    assert_ledger_balanced(family)


def test_impersonation_is_refused_on_authorize_and_quote_too(family):
    """No path moves money on someone else's card."""
    authorize = refused(family.payment.AuthorizeSettlement, authorize_request(family, 10_000, holder=family.mother))
    assert (authorize.code, authorize.reason) == (PERMISSION_DENIED, "IMPERSONATION")
    # A quote is a read: it refuses without recording a violation.
    quoted = refused(
        family.payment.QuoteSettlement, papi.QuoteSettlementRequest(bill=family.bill(10_000, holder=family.mother))
    )
    assert (quoted.code, quoted.reason) == (PERMISSION_DENIED, "IMPERSONATION")
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert len(violations(family, family.mother).violations) == 1
    assert_ledger_balanced(family)


def test_at_the_regions_threshold_the_holder_is_suspended_until_an_operator_lifts_it(family):
    """Regional policy suspends the holder's networked settlement (暂停联网结算);
    every settlement presenting that card is refused until an operator lifts it."""
    put_policy(family, impersonation_suspension_threshold=2)
    refused(family.payment.Settle, settle_request(family, 10_000, holder=family.father))
    assert not violations(family, family.father).HasField("suspension")
    refused(family.payment.Settle, settle_request(family, 10_000, holder=family.father))

    listed = violations(family, family.father)
    assert len(listed.violations) == 2
    assert listed.suspension.active
    assert listed.suspension.holder_id_number == family.father.id_number
    assert listed.suspension.suspend_time.ToDatetime(tzinfo=UTC) == family.clock.now()

    # Even the holder's own bills are refused now, on every path.
    own = dict(patient=family.father, use_own_account=True)
    for call, request in [
        (family.payment.Settle, settle_request(family, 10_000, **own)),
        (family.payment.AuthorizeSettlement, authorize_request(family, 10_000, **own)),
        (family.payment.QuoteSettlement, papi.QuoteSettlementRequest(bill=family.bill(10_000, **own))),
    ]:
        refusal = refused(call, request)
        assert (refusal.code, refusal.reason) == (PERMISSION_DENIED, "SETTLEMENT_SUSPENDED")
    assert money(family, family.father) == (100_000, 0, 100_000)

    # The child's own card is not suspended, and the father's account still pays for her.
    child_bill = family.settle(150_000)
    assert totals(child_bill) == (0, 150_000, 0, 0)

    lifted = family.payment.LiftSuspension(
        papi.LiftSuspensionRequest(
            request_id=request_id(), holder_id_number=family.father.id_number, reason="appeal", operator_id="op-7"
        )
    ).suspension
    assert (lifted.active, lifted.operator_id) == (False, "op-7")
    assert lifted.lift_time.ToDatetime(tzinfo=UTC) == family.clock.now()
    own_bill = family.settle(10_000, **own)
    assert legs_of(own_bill) == [(family.father.id_number, OWN, "", 10_000, own_bill.policy_version)]
    assert money(family, family.father) == (40_000, 0, 40_000)
    assert_ledger_balanced(family)


def test_after_an_operator_lifts_a_suspension_the_count_toward_the_threshold_starts_again(family):
    """Violations before the lift were judged by the operator who lifted it: the card is
    suspended again only when the region's threshold is reached by new ones."""
    put_policy(family, impersonation_suspension_threshold=2)
    for _ in range(2):
        refused(family.payment.Settle, settle_request(family, 10_000, holder=family.father))
    assert violations(family, family.father).suspension.active
    family.clock.advance(timedelta(minutes=1))
    family.payment.LiftSuspension(
        papi.LiftSuspensionRequest(
            request_id=request_id(), holder_id_number=family.father.id_number, reason="appeal", operator_id="op-7"
        )
    )
    family.clock.advance(timedelta(minutes=1))
    refused(family.payment.Settle, settle_request(family, 10_000, holder=family.father))
    listed = violations(family, family.father)
    assert len(listed.violations) == 3
    assert not listed.suspension.active, "one violation since the lift is below the threshold of two"
    own = dict(patient=family.father, use_own_account=True)
    assert totals(family.settle(10_000, **own)) == (10_000, 0, 0, 0)

    refused(family.payment.Settle, settle_request(family, 10_000, holder=family.father))
    assert violations(family, family.father).suspension.active
    assert refused(family.payment.Settle, settle_request(family, 10_000, **own)).reason == "SETTLEMENT_SUSPENDED"
    assert_ledger_balanced(family)


def test_an_operator_can_suspend_a_card_and_lift_the_suspension(family):
    """Suspension of networked settlement as an operator's action."""
    suspension = family.payment.SuspendSettlement(
        papi.SuspendSettlementRequest(
            request_id=request_id(),
            holder_id_number=family.child.id_number,
            reason="fraud investigation",
            operator_id="op-1",
        )
    ).suspension
    assert (suspension.holder_id_number, suspension.active, suspension.reason, suspension.operator_id) == (
        family.child.id_number,
        True,
        "fraud investigation",
        "op-1",
    )
    refusal = refused(family.payment.Settle, settle_request(family, 10_000))
    assert (refusal.code, refusal.reason) == (PERMISSION_DENIED, "SETTLEMENT_SUSPENDED")
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert violations(family, family.child).suspension.active

    family.payment.LiftSuspension(
        papi.LiftSuspensionRequest(
            request_id=request_id(), holder_id_number=family.child.id_number, reason="cleared", operator_id="op-2"
        )
    )
    assert not violations(family, family.child).suspension.active
    assert totals(family.settle(10_000)) == (0, 10_000, 0, 0)
    assert_ledger_balanced(family)


def test_a_suspension_names_its_operator_and_lifting_needs_an_active_suspension(family):
    """An operator lifts a suspension; there must be something to lift. A suspension that names
    no operator is recorded under the operator of the caller's certificate."""
    unnamed = family.payment.SuspendSettlement(
        papi.SuspendSettlementRequest(request_id=request_id(), holder_id_number=family.mother.id_number, reason="x")
    ).suspension
    assert (unnamed.operator_id, unnamed.active) == ("ops", True)
    nothing = refused(
        family.payment.LiftSuspension,
        papi.LiftSuspensionRequest(
            request_id=request_id(), holder_id_number=family.child.id_number, reason="x", operator_id="op-1"
        ),
    )
    assert nothing.code in (INVALID_ARGUMENT, FAILED_PRECONDITION)
    assert nothing.fields == ("holder_id_number",)
    assert totals(family.settle(10_000)) == (0, 10_000, 0, 0)
    assert_ledger_balanced(family)


def test_list_violations_pages_in_time_order(family):
    """The holder's violations, paged."""
    put_policy(family, impersonation_suspension_threshold=0)  # never suspend
    for _ in range(3):
        refused(family.payment.Settle, settle_request(family, 1_000, holder=family.mother))
        family.clock.advance(timedelta(seconds=1))
    first = violations(family, family.mother, page_size=2)
    assert len(first.violations) == 2 and first.next_page_token
    second = violations(family, family.mother, page_size=2, page_token=first.next_page_token)
    assert len(second.violations) == 1 and not second.next_page_token
    times = [v.time.ToDatetime() for v in [*first.violations, *second.violations]]
    assert times == sorted(times)
    assert len({v.violation_id for v in [*first.violations, *second.violations]}) == 3
    assert not first.HasField("suspension")
    assert_ledger_balanced(family)


# Reversal (冲正) --------------------------------------------------------


def test_reversing_an_authorization_releases_its_holds(family):
    """Reversal (冲正) cancels whatever effect the original request had."""
    key = request_id()
    request = authorize_request(family, 150_000, key=key)
    held = family.payment.AuthorizeSettlement(request).settlement

    reversal = reverse(family, key)
    assert reversal.original_found
    assert reversal.original_method == SERVICE + "AuthorizeSettlement"
    assert reversal.settlement.settlement_id == held.settlement_id
    assert reversal.settlement.state == ppb.SETTLEMENT_STATE_REVERSED
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert money(family, family.father) == (100_000, 0, 100_000)
    capture = refused(family.payment.CaptureSettlement, capture_request(held.settlement_id))
    assert (capture.code, capture.reason) == (FAILED_PRECONDITION, "ALREADY_RELEASED")
    retry = refused(family.payment.AuthorizeSettlement, request)
    assert (retry.code, retry.reason) == (FAILED_PRECONDITION, "REQUEST_REVERSED")
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert_ledger_balanced(family)


def test_reversing_a_settle_refunds_it_and_a_retry_of_the_original_is_refused(family):
    """Reversal of a settlement gives every leg back; the original cannot come again."""
    key = request_id()
    request = settle_request(family, 150_000, key=key)
    settled = family.payment.Settle(request).settlement

    reversal = reverse(family, key)
    assert (reversal.original_found, reversal.original_method) == (True, SERVICE + "Settle")
    assert reversal.settlement.state == ppb.SETTLEMENT_STATE_REVERSED
    assert [(leg.payer_id_number, leg.refunded_fen) for leg in reversal.settlement.legs] == [
        (seen(family.mother), 100_000),
        (seen(family.father), 50_000),
    ]
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert money(family, family.father) == (100_000, 0, 100_000)
    assert shared(family, family.mother) == {family.mother_binding.binding_id: 0}
    got = family.payment.GetSettlement(papi.GetSettlementRequest(settlement_id=settled.settlement_id)).settlement
    assert got.state == ppb.SETTLEMENT_STATE_REVERSED
    refund = refused(family.payment.RefundSettlement, refund_request(settled.settlement_id))
    assert refund.code == FAILED_PRECONDITION
    retry = refused(family.payment.Settle, request)
    assert (retry.code, retry.reason) == (FAILED_PRECONDITION, "REQUEST_REVERSED")
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert_ledger_balanced(family)


def test_the_money_a_reversal_gives_back_is_labelled_as_a_reversal_on_the_statement(family):
    """冲正 and 撤销 are different operations; the statement names the purpose."""
    key = request_id()
    family.payment.Settle(settle_request(family, 30_000, key=key))
    reverse(family, key)
    newest = statement(family, family.mother)[0]
    assert (newest.amount_fen, newest.purpose) == (30_000, ppb.MOVEMENT_PURPOSE_REVERSAL)


def test_reversing_a_request_that_never_arrived_bars_it_when_it_comes_later(family):
    """Reversal works whether or not the original ever arrived."""
    key = request_id()
    reversal = reverse(family, key)
    assert (reversal.original_found, reversal.original_method) == (False, "")
    assert not reversal.HasField("settlement")
    before = entry_count(family)

    late = refused(family.payment.Settle, settle_request(family, 150_000, key=key))
    assert (late.code, late.reason) == (FAILED_PRECONDITION, "REQUEST_REVERSED")
    late_authorize = refused(family.payment.AuthorizeSettlement, authorize_request(family, 150_000, key=key))
    assert late_authorize.reason == "REQUEST_REVERSED"
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert money(family, family.father) == (100_000, 0, 100_000)
    assert entry_count(family) == before
    assert_ledger_balanced(family)


def test_repeating_a_reversal_changes_nothing(family):
    """Repeating the reversal — same or new request_id — changes nothing."""
    key = request_id()
    family.payment.Settle(settle_request(family, 150_000, key=key))
    reversal_key = request_id()
    first = reverse(family, key, key=reversal_key)
    after_first = (money(family, family.mother), money(family, family.father), entry_count(family))

    assert reverse(family, key, key=reversal_key) == first  # a retry of the reversal replays its answer
    repeat = reverse(family, key)  # a new reversal of the same original
    assert repeat.original_found
    assert (money(family, family.mother), money(family, family.father), entry_count(family)) == after_first
    assert after_first[0] == (100_000, 0, 100_000)
    assert_ledger_balanced(family)


def test_a_repeated_reversal_under_a_new_request_id_names_the_settlement_the_original_made(family):
    """A HIS that lost the answer to a reversal (冲正) sends another with a new message id: it learns
    the same settlement, still reversed, and nothing moves. The repeat used to answer without the
    settlement, as if the original had made none."""
    key = request_id()
    settled = family.payment.Settle(settle_request(family, 30_000, key=key)).settlement
    first = reverse(family, key)
    before = entry_count(family)
    repeat = reverse(family, key)
    assert (repeat.original_found, repeat.original_method) == (True, SERVICE + "Settle")
    assert (repeat.settlement.settlement_id, repeat.settlement.state) == (
        settled.settlement_id,
        ppb.SETTLEMENT_STATE_REVERSED,
    )
    assert without_balc(repeat.settlement) == without_balc(first.settlement)
    assert entry_count(family) == before
    assert money(family, family.mother) == (100_000, 0, 100_000)


def test_repeating_the_reversal_of_a_request_that_never_arrived_still_says_it_was_not_found(family):
    """Repeating a reversal changes nothing, including its answer."""
    key = request_id()
    first = reverse(family, key)
    repeat = reverse(family, key)
    assert (repeat.original_found, repeat.original_method) == (first.original_found, first.original_method)
    assert (repeat.original_found, repeat.original_method) == (False, "")


def test_reversing_an_undo_charges_the_settlement_again(family):
    """Settlements and undos can both be reversed."""
    settled = family.settle(150_000)
    undo_key = request_id()
    family.payment.RefundSettlement(refund_request(settled.settlement_id, key=undo_key))
    assert money(family, family.mother) == (100_000, 0, 100_000)

    reversal = reverse(family, undo_key)
    assert (reversal.original_found, reversal.original_method) == (True, SERVICE + "RefundSettlement")
    assert reversal.settlement.state == ppb.SETTLEMENT_STATE_CAPTURED
    assert [leg.refunded_fen for leg in reversal.settlement.legs] == [0, 0]
    assert money(family, family.mother) == (0, 0, 0)
    assert money(family, family.father) == (50_000, 0, 50_000)
    assert shared(family, family.mother) == {family.mother_binding.binding_id: 100_000}
    newest = statement(family, family.father)[0]
    assert (newest.purpose, newest.amount_fen, newest.settlement_id) == (
        ppb.MOVEMENT_PURPOSE_REVERSAL,
        -50_000,
        settled.settlement_id,
    )
    assert_ledger_balanced(family)


def undo_then_settle_again(family: PaymentFamily, self_pay_fen: int) -> tuple[ppb.Settlement, str, ppb.Settlement]:
    """A bill the mother paid, undone by the returned request id, then a new bill she paid too."""
    first = family.settle(self_pay_fen)
    undo_key = request_id()
    family.payment.RefundSettlement(refund_request(first.settlement_id, key=undo_key))
    second = family.settle(self_pay_fen)
    assert [leg.payer_id_number for leg in second.legs] == [seen(family.mother)]
    return first, undo_key, second


def assert_reversal_refused_and_nothing_changed(
    family: PaymentFamily, undone: ppb.Settlement, undo_key: str, reason: str, balance: int
) -> papi.ReverseRequestResponse:
    before = entry_count(family)
    refusal = refused(family.payment.ReverseRequest, papi.ReverseRequestRequest(
        request_id=request_id(), original_request_id=undo_key, reason="timeout"
    ))  # fmt: skip
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, reason)
    assert "settle the bill again" in refusal.message
    got = family.payment.GetSettlement(papi.GetSettlementRequest(settlement_id=undone.settlement_id)).settlement
    assert got.state == ppb.SETTLEMENT_STATE_REFUNDED
    assert money(family, family.mother) == (balance, 0, balance)
    assert entry_count(family) == before
    assert_ledger_balanced(family)
    return refusal


def test_reversing_an_undo_is_refused_when_the_grantors_yearly_cap_was_shared_since_and_changes_nothing(family):
    """Each grantor pays up to the share cap left this year, a reversed undo (冲正 of 撤销) too:
    charging the bill again would take the mother past her cap, so it is refused and the undo
    stands; once the cap is free again the undo can still be reversed."""
    cap_binding(family, family.mother_binding, 30_000)
    undone, undo_key, second = undo_then_settle_again(family, 30_000)
    refusal = assert_reversal_refused_and_nothing_changed(family, undone, undo_key, "INSUFFICIENT_FUNDS", 70_000)
    assert refusal.metadata["limit_fen"] == "0"
    assert shared(family, family.mother) == {family.mother_binding.binding_id: 30_000}

    family.refund(second.settlement_id)
    again = reverse(family, undo_key)
    assert again.settlement.state == ppb.SETTLEMENT_STATE_CAPTURED
    assert shared(family, family.mother) == {family.mother_binding.binding_id: 30_000}
    assert_ledger_balanced(family)


def test_reversing_an_undo_is_refused_when_the_regional_quota_was_shared_since(family):
    """Each grantor pays up to the regional annual quota left (60 % of the 100,000 fen she held)."""
    put_policy(family, annual_share_ratio_percent=60)
    undone, undo_key, _ = undo_then_settle_again(family, 60_000)
    assert_reversal_refused_and_nothing_changed(family, undone, undo_key, "INSUFFICIENT_FUNDS", 40_000)
    assert shared(family, family.mother) == {family.mother_binding.binding_id: 60_000}


def test_reversing_an_undo_does_not_charge_a_grantor_whose_binding_ended_since(family):
    settled = family.settle(30_000)
    undo_key = request_id()
    family.payment.RefundSettlement(refund_request(settled.settlement_id, key=undo_key))
    family.binding.EndBinding(
        bapi.EndBindingRequest(
            request_id=request_id(), binding_id=family.mother_binding.binding_id, actor=bpb.ACTOR_GRANTOR,
            actor_id=family.mother.id_number,
        ),
        timeout=10,
    )  # fmt: skip
    assert_reversal_refused_and_nothing_changed(family, settled, undo_key, "BINDING_NOT_ACTIVE", 100_000)


def test_reversing_an_undo_the_patients_own_account_paid_needs_no_binding_service(family, payment_service):
    """Charging a bill again asks who may pay only when relatives paid part of it."""
    settled = family.settle(15_000, patient=family.mother, use_own_account=True)  # her own bill, her account
    assert {leg.source for leg in settled.legs} == {ppb.PAYMENT_SOURCE_OWN_ACCOUNT}
    undo_key = request_id()
    family.payment.RefundSettlement(refund_request(settled.settlement_id, key=undo_key))
    payment_service.binding.server.stop()
    reversal = reverse(family, undo_key)
    assert reversal.settlement.state == ppb.SETTLEMENT_STATE_CAPTURED
    assert money(family, family.mother) == (85_000, 0, 85_000)
    assert_ledger_balanced(family)


def test_reversing_an_undo_of_a_settlement_whose_settle_was_reversed_is_refused_and_charges_nothing(family):
    """Reversal (冲正) cancels whatever effect a request had: a Settle reversed after its undo (撤销)
    and the undo reversed after that leave the bill unpaid, as in the other order. Charging the
    bill again for the undo's reversal used to pay a bill whose settlement had been reversed."""
    settle_key, undo_key = request_id(), request_id()
    settled = family.payment.Settle(settle_request(family, 30_000, key=settle_key)).settlement
    family.payment.RefundSettlement(refund_request(settled.settlement_id, key=undo_key))
    assert reverse(family, settle_key).original_found
    before = entry_count(family)

    refusal = refused(family.payment.ReverseRequest, papi.ReverseRequestRequest(
        request_id=request_id(), original_request_id=undo_key, reason="timeout"
    ))  # fmt: skip
    assert (refusal.code, refusal.reason) == (FAILED_PRECONDITION, "REQUEST_REVERSED")
    got = family.payment.GetSettlement(papi.GetSettlementRequest(settlement_id=settled.settlement_id)).settlement
    assert got.state == ppb.SETTLEMENT_STATE_REFUNDED
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert shared(family, family.mother) == {family.mother_binding.binding_id: 0}
    assert entry_count(family) == before
    assert_ledger_balanced(family)


def test_reversing_a_capture_gives_the_captured_money_back(family):
    """A capture is a request like any other and can be reversed."""
    held = family.authorize(150_000)
    capture_key = request_id()
    family.payment.CaptureSettlement(capture_request(held.settlement_id, 120_000, key=capture_key))
    reversal = reverse(family, capture_key)
    assert (reversal.original_found, reversal.original_method) == (True, SERVICE + "CaptureSettlement")
    assert reversal.settlement.state == ppb.SETTLEMENT_STATE_REVERSED
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert money(family, family.father) == (100_000, 0, 100_000)
    assert_ledger_balanced(family)


def test_reversing_a_refused_request_bars_its_retry(family):
    """A refused original had no effect; after reversal its retry is refused as reversed."""
    key = request_id()
    request = settle_request(family, 250_000, key=key, refuse_cash_part=True)
    first = refused(family.payment.Settle, request)
    assert (first.reason, first.metadata["shortfall_fen"]) == ("INSUFFICIENT_FUNDS", "50000")
    reversal = reverse(family, key)
    assert (reversal.original_found, reversal.original_method) == (True, SERVICE + "Settle")
    assert not reversal.HasField("settlement")
    assert refused(family.payment.Settle, request).reason == "REQUEST_REVERSED"
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert_ledger_balanced(family)


def test_a_reversal_without_an_original_or_of_itself_is_invalid(family):
    """API: ReverseRequest names the request whose effect is cancelled."""
    missing = refused(family.payment.ReverseRequest, papi.ReverseRequestRequest(request_id=request_id()))
    assert (missing.code, missing.reason, missing.fields) == (
        INVALID_ARGUMENT,
        "FIELD_REQUIRED",
        ("original_request_id",),
    )
    key = request_id()
    itself = refused(family.payment.ReverseRequest, papi.ReverseRequestRequest(request_id=key, original_request_id=key))
    assert (itself.code, itself.fields) == (INVALID_ARGUMENT, ("original_request_id",))
    assert_ledger_balanced(family)


# Idempotency ------------------------------------------------------


def test_a_retried_settle_returns_the_first_answer_and_charges_once(family):
    """Every mutating request carries an idempotency key; a retry returns the first answer."""
    request = settle_request(family, 150_000)
    first = family.payment.Settle(request).settlement
    entries = entry_count(family)
    second = family.payment.Settle(request).settlement
    assert second == first
    assert money(family, family.mother) == (0, 0, 0)
    assert money(family, family.father) == (50_000, 0, 50_000)
    assert entry_count(family) == entries
    assert_ledger_balanced(family)


def test_a_retried_authorization_holds_once(family):
    """Idempotent authorization."""
    request = authorize_request(family, 150_000)
    first = family.payment.AuthorizeSettlement(request).settlement
    assert family.payment.AuthorizeSettlement(request).settlement.settlement_id == first.settlement_id
    assert money(family, family.mother) == (100_000, 100_000, 0)
    assert money(family, family.father) == (100_000, 50_000, 50_000)
    family.release(first.settlement_id)
    assert_ledger_balanced(family)


def test_a_retried_authorization_sent_after_its_expire_time_passed_gets_the_first_answer(family):
    """AIP-155: the key's answer outlives the hold; the retry is neither refused nor held again."""
    request = authorize_request(family, 10_000)
    request.expire_time.FromDatetime(family.clock.now() + timedelta(minutes=5))
    first = family.payment.AuthorizeSettlement(request).settlement
    entries = entry_count(family)
    family.clock.advance(timedelta(minutes=10))
    assert family.payment.AuthorizeSettlement(request).settlement == first
    assert entry_count(family) == entries
    assert_ledger_balanced(family)


def test_an_expiry_refused_as_too_far_ahead_stays_the_answer_to_its_key_once_time_would_let_it_in(family):
    """The expiry is judged against the clock, so its refusal is stored under the key like any other."""
    request = authorize_request(family, 10_000)
    request.expire_time.FromDatetime(family.clock.now() + timedelta(days=61))
    for _ in range(2):
        refusal = refused(family.payment.AuthorizeSettlement, request)
        assert (refusal.code, refusal.reason, refusal.fields) == (INVALID_ARGUMENT, "FIELD_INVALID", ("expire_time",))
        family.clock.advance(timedelta(days=2))
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert_ledger_balanced(family)


def test_a_retried_capture_returns_the_first_answer_instead_of_already_captured(family):
    """Idempotent capture."""
    held = family.authorize(150_000)
    request = capture_request(held.settlement_id, 120_000)
    first = family.payment.CaptureSettlement(request).settlement
    assert family.payment.CaptureSettlement(request).settlement == first
    assert money(family, family.father) == (80_000, 0, 80_000)
    assert_ledger_balanced(family)


def test_a_retried_credit_and_refund_take_effect_once(family):
    """Idempotent credits and undos."""
    credit = papi.CreditAccountRequest(
        request_id=request_id(),
        id_number=family.mother.id_number,
        account_kind=PERSONAL,
        amount_fen=5_000,
        kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION,
        period="2026-04",
    )
    first = family.payment.CreditAccount(credit)
    again = family.payment.CreditAccount(credit)
    assert (again.entry_id, again.account.balance_fen) == (first.entry_id, 105_000)
    settled = family.settle(50_000)
    refund = refund_request(settled.settlement_id)
    assert family.payment.RefundSettlement(refund) == family.payment.RefundSettlement(refund)
    assert money(family, family.mother) == (105_000, 0, 105_000)
    assert_ledger_balanced(family)


def test_the_same_key_with_a_different_bill_is_refused_as_reused(family):
    """AIP-155: the same request_id for a different request → ALREADY_EXISTS IDEMPOTENCY_KEY_REUSED."""
    key = request_id()
    family.payment.Settle(settle_request(family, 10_000, key=key))
    entries = entry_count(family)
    other_bill = refused(family.payment.Settle, settle_request(family, 20_000, key=key))
    assert (other_bill.code, other_bill.reason, other_bill.fields) == (
        ALREADY_EXISTS,
        "IDEMPOTENCY_KEY_REUSED",
        ("request_id",),
    )
    other_method = refused(family.payment.AuthorizeSettlement, authorize_request(family, 10_000, key=key))
    assert (other_method.code, other_method.reason) == (ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")
    assert money(family, family.mother) == (90_000, 0, 90_000)
    assert entry_count(family) == entries
    assert_ledger_balanced(family)


def test_a_refusal_is_replayed_to_a_retry_even_after_the_condition_changed(family):
    """AIP-155: the first answer, refusals included, is what every retry gets."""
    request = settle_request(family, 250_000, refuse_cash_part=True)
    assert refused(family.payment.Settle, request).reason == "INSUFFICIENT_FUNDS"
    family.credit(family.mother, 100_000)
    assert refused(family.payment.Settle, request).reason == "INSUFFICIENT_FUNDS"
    assert money(family, family.mother) == (200_000, 0, 200_000)
    # The same bill under a new key is judged afresh.
    fresh = family.payment.Settle(papi.SettleRequest(request_id=request_id(), bill=request.bill)).settlement
    assert totals(fresh) == (0, 250_000, 0, 0)
    assert_ledger_balanced(family)


# Bad input (never INTERNAL, never a change) ------------------------------------------------


def _bad_bill(family: PaymentFamily, case: str) -> tuple[ppb.Bill, str, str]:
    """(bill, the field a refusal must name, its reason) for one kind of malformed bill."""
    bill = family.bill(10_000)
    if case == "patient id of 17 digits":
        bill.patient_id_number = family.child.id_number[:17]
        return bill, "bill.patient_id_number", "INVALID_ID_NUMBER"
    if case == "patient id with a wrong check digit":
        last = family.child.id_number[-1]
        bill.patient_id_number = family.child.id_number[:-1] + ("0" if last != "0" else "1")
        return bill, "bill.patient_id_number", "INVALID_ID_NUMBER"
    if case == "credential holder id of letters":
        bill.credential.holder_id_number = "ABCDEFGHIJKLMNOPQR"
        return bill, "bill.credential.holder_id_number", "INVALID_ID_NUMBER"
    if case == "zero self pay":
        bill.self_pay_fen = 0
        return bill, "bill.self_pay_fen", "INVALID_AMOUNT"
    if case == "negative self pay":
        bill.self_pay_fen = -500
        return bill, "bill.self_pay_fen", "INVALID_AMOUNT"
    if case == "unspecified use category":
        bill.use_category = common.USE_CATEGORY_UNSPECIFIED
        return bill, "bill.use_category", "FIELD_REQUIRED"
    if case == "unknown use category":
        bill.use_category = 99
        return bill, "bill.use_category", "FIELD_INVALID"
    if case == "no credential":
        bill.ClearField("credential")
        return bill, "bill.credential", "FIELD_REQUIRED"
    if case == "unspecified credential type":
        bill.credential.type = ppb.CREDENTIAL_TYPE_UNSPECIFIED
        return bill, "bill.credential.type", "FIELD_REQUIRED"
    assert case == "institution admdvs of two digits"
    bill.institution_admdvs = "32"
    return bill, "bill.institution_admdvs", "INVALID_ADMDVS"


BAD_BILLS = [
    "patient id of 17 digits",
    "patient id with a wrong check digit",
    "credential holder id of letters",
    "zero self pay",
    "negative self pay",
    "unspecified use category",
    "unknown use category",
    "no credential",
    "unspecified credential type",
    "institution admdvs of two digits",
]


@pytest.mark.parametrize("case", BAD_BILLS)
def test_a_malformed_bill_is_invalid_argument_naming_the_field_and_changes_nothing(family, case):
    """API: bad input is INVALID_ARGUMENT naming the offending field on Settle, AuthorizeSettlement
    and QuoteSettlement — never INTERNAL, never a change."""
    bill, field, reason = _bad_bill(family, case)
    before = family.ledger()
    for rpc, request in [
        ("Settle", papi.SettleRequest(request_id=request_id(), bill=bill)),
        ("AuthorizeSettlement", papi.AuthorizeSettlementRequest(request_id=request_id(), bill=bill)),
        ("QuoteSettlement", papi.QuoteSettlementRequest(bill=bill)),
    ]:
        refusal = refused(getattr(family.payment, rpc), request)
        assert (rpc, refusal.code, refusal.reason, refusal.fields) == (rpc, INVALID_ARGUMENT, reason, (field,))
    after = family.ledger()
    assert (after.entry_count, after.account_count) == (before.entry_count, before.account_count)
    assert money(family, family.mother) == (100_000, 0, 100_000)
    assert money(family, family.father) == (100_000, 0, 100_000)
    assert list(violations(family, family.child).violations) == []
    assert_ledger_balanced(family)


def test_a_bad_bill_rejected_under_a_key_does_not_burn_that_key(family):
    """AIP-155: a request rejected as malformed had no effect; its key can carry the corrected request."""
    key = request_id()
    assert refused(family.payment.Settle, settle_request(family, 0, key=key)).code == INVALID_ARGUMENT
    settled = family.payment.Settle(settle_request(family, 10_000, key=key)).settlement
    assert totals(settled) == (0, 10_000, 0, 0)
    assert_ledger_balanced(family)


def test_a_settle_or_authorize_without_a_bill_is_invalid(family):
    """API: the bill is required."""
    for call, request in [
        (family.payment.Settle, papi.SettleRequest(request_id=request_id())),
        (family.payment.AuthorizeSettlement, papi.AuthorizeSettlementRequest(request_id=request_id())),
        (family.payment.QuoteSettlement, papi.QuoteSettlementRequest()),
    ]:
        refusal = refused(call, request)
        assert (refusal.code, refusal.reason, refusal.fields) == (INVALID_ARGUMENT, "FIELD_REQUIRED", ("bill",))
    assert_ledger_balanced(family)


@pytest.mark.parametrize(
    "rpc",
    [
        "Settle",
        "AuthorizeSettlement",
        "CaptureSettlement",
        "ReleaseSettlement",
        "RefundSettlement",
        "CreditAccount",
        "ReverseRequest",
        "SuspendSettlement",
        "LiftSuspension",
    ],
)
def test_a_mutating_request_without_a_request_id_is_refused_and_changes_nothing(family, rpc):
    """API: every mutating request has a request_id (the idempotency key)."""
    held = family.authorize(10_000)
    before = family.ledger()
    requests = {
        "Settle": papi.SettleRequest(bill=family.bill(10_000)),
        "AuthorizeSettlement": papi.AuthorizeSettlementRequest(bill=family.bill(10_000)),
        "CaptureSettlement": papi.CaptureSettlementRequest(settlement_id=held.settlement_id),
        "ReleaseSettlement": papi.ReleaseSettlementRequest(settlement_id=held.settlement_id),
        "RefundSettlement": papi.RefundSettlementRequest(settlement_id=held.settlement_id),
        "CreditAccount": papi.CreditAccountRequest(
            id_number=family.mother.id_number,
            account_kind=PERSONAL,
            amount_fen=100,
            kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION,
        ),
        "ReverseRequest": papi.ReverseRequestRequest(original_request_id=request_id()),
        "SuspendSettlement": papi.SuspendSettlementRequest(
            holder_id_number=family.child.id_number, reason="x", operator_id="op"
        ),
        "LiftSuspension": papi.LiftSuspensionRequest(
            holder_id_number=family.child.id_number, reason="x", operator_id="op"
        ),
    }
    refusal = refused(getattr(family.payment, rpc), requests[rpc])
    assert (refusal.code, refusal.reason, refusal.fields) == (INVALID_ARGUMENT, "FIELD_REQUIRED", ("request_id",))
    after = family.ledger()
    assert (after.entry_count, after.account_count) == (before.entry_count, before.account_count)
    assert money(family, family.mother) == (100_000, 10_000, 90_000)
    assert family.payment.GetSettlement(
        papi.GetSettlementRequest(settlement_id=held.settlement_id)
    ).settlement.state == (ppb.SETTLEMENT_STATE_AUTHORIZED)
    assert not violations(family, family.child).HasField("suspension")
    family.release(held.settlement_id)
    assert_ledger_balanced(family)


def test_a_negative_capture_amount_is_invalid(family):
    """Amounts are never negative."""
    held = family.authorize(10_000)
    refusal = refused(family.payment.CaptureSettlement, capture_request(held.settlement_id, -1))
    assert (refusal.code, refusal.reason, refusal.fields) == (INVALID_ARGUMENT, "INVALID_AMOUNT", ("amount_fen",))
    assert money(family, family.mother) == (100_000, 10_000, 90_000)
    family.release(held.settlement_id)
    assert_ledger_balanced(family)


# ReconcileInstitution (对账) ---------------------------------------------------


def test_reconciliation_counts_and_sums_the_days_settlements_and_refunds_per_source(family):
    """Daily reconciliation with an institution, per payment source, refunds counted."""
    own = family.settle(10_000, patient=family.father, use_own_account=True)  # father's own account
    first = family.settle(30_000)  # mother, mutual aid
    second = family.settle(40_000)  # mother, mutual aid
    family.settle(20_000, use_own_account=True)  # (the child has no account) mother again
    family.refund(first.settlement_id)
    family.authorize(5_000)  # a hold is not a settlement
    elsewhere = family.bill(7_000)
    elsewhere.institution_code = "H32010099"
    family.payment.Settle(papi.SettleRequest(request_id=request_id(), bill=elsewhere))
    assert totals(own) == (10_000, 0, 0, 0)
    assert totals(second) == (0, 40_000, 0, 0)

    day = reconcile(family, today(family))
    assert (day.institution_code, day.date) == (INSTITUTION, today(family))
    assert (day.settlement_count, day.refund_count) == (4, 1)
    assert source_totals(day.settled) == {OWN: (1, 10_000), AID: (3, 90_000)}
    assert source_totals(day.refunded) == {AID: (1, 30_000)}
    assert day.net_fen == 10_000 + 90_000 - 30_000

    other = reconcile(family, today(family), institution="H32010099")
    assert (other.settlement_count, source_totals(other.settled)) == (1, {AID: (1, 7_000)})
    yesterday = reconcile(family, "2026-03-01")
    assert (yesterday.settlement_count, yesterday.refund_count, list(yesterday.settled)) == (0, 0, [])
    assert_ledger_balanced(family)


def test_reconciliation_days_are_counted_in_china_standard_time(family):
    """A day is a China Standard Time day; a refund counts on the day it happened."""
    family.clock.set(datetime(2026, 3, 2, 15, 30, tzinfo=UTC))  # 23:30 CST on 2 March
    late = family.settle(30_000)
    family.clock.set(datetime(2026, 3, 2, 16, 30, tzinfo=UTC))  # 00:30 CST on 3 March (still 2 March in UTC)
    early = family.settle(20_000)
    family.refund(late.settlement_id)

    march_2 = reconcile(family, "2026-03-02")
    assert (march_2.settlement_count, march_2.refund_count) == (1, 0)
    assert source_totals(march_2.settled) == {AID: (1, 30_000)}
    assert march_2.net_fen == 30_000
    march_3 = reconcile(family, "2026-03-03")
    assert (march_3.settlement_count, march_3.refund_count) == (1, 1)
    assert source_totals(march_3.settled) == {AID: (1, 20_000)}
    assert source_totals(march_3.refunded) == {AID: (1, 30_000)}
    assert march_3.net_fen == -10_000
    assert early.state == ppb.SETTLEMENT_STATE_CAPTURED
    assert_ledger_balanced(family)


def test_reconciliation_needs_a_valid_date_and_is_the_callers_own(family):
    """date is "YYYY-MM-DD"; an institution reconciles its own day, named or not."""
    bad_date = refused(
        family.payment.ReconcileInstitution,
        papi.ReconcileInstitutionRequest(institution_code=INSTITUTION, date="2026/03/02"),
    )
    assert (bad_date.code, bad_date.fields) == (INVALID_ARGUMENT, ("date",))
    unnamed = family.payment.ReconcileInstitution(papi.ReconcileInstitutionRequest(date="2026-03-02"))
    assert unnamed.institution_code == INSTITUTION


# CheckLedger -----------------------------------------------------------------


def test_check_ledger_counts_entries_and_accounts_of_a_busy_day(family):
    """Every movement is a balanced double-entry journal entry."""
    start = family.ledger()
    assert start.balanced
    assert start.entry_count == 2  # the two monthly contributions
    family.settle(150_000)
    held = family.authorize(20_000)
    family.capture(held.settlement_id, 10_000)
    ledger = family.ledger()
    # Two captures; the receivable is a new account.
    assert ledger.entry_count == start.entry_count + 2
    assert ledger.account_count == start.account_count + 1
    assert_ledger_balanced(family)


def test_a_new_employee_patient_pays_from_own_account_only_when_no_one_is_bound(family):
    """With no grantors, own account then cash."""
    loner = family.register("周独立")
    family.credit(loner, 5_000)
    settlement = family.settle(8_000, patient=loner, use_own_account=True)
    assert [(leg.payer_id_number, leg.source, leg.amount_fen) for leg in settlement.legs] == [
        (loner.id_number, OWN, 5_000)
    ]
    assert totals(settlement) == (5_000, 0, 0, 3_000)
    assert money(family, loner) == (0, 0, 0)
    assert_ledger_balanced(family)


def test_a_patient_unknown_to_the_registry_pays_only_from_their_own_accounts(family):
    """Someone without bindings has no grantors; the rest is cash."""
    stranger = person(make_id_number("320102"), "吴未登记", admdvs="320100")
    settlement = family.settle(8_000, patient=stranger, use_own_account=True)
    assert (list(settlement.legs), totals(settlement)) == ([], (0, 0, 0, 8_000))
    assert_ledger_balanced(family)


def test_when_the_binding_service_is_down_a_settlement_is_unavailable_and_nothing_moves(family, payment_service):
    """Who may pay comes from the binding service; without it the payment service
    refuses as UNAVAILABLE (retryable with the same request_id) rather than charging anyone."""
    payment_service.binding.server.stop()
    key = request_id()
    refusal = refused(family.payment.Settle, settle_request(family, 10_000, key=key))
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.UNAVAILABLE, "BINDING_SERVICE_UNAVAILABLE")
    quoted = refused(family.payment.QuoteSettlement, papi.QuoteSettlementRequest(bill=family.bill(10_000)))
    assert quoted.reason == "BINDING_SERVICE_UNAVAILABLE"
    assert money(family, family.mother) == (100_000, 0, 100_000)
    # Impersonation is still refused and recorded (the national default threshold applies).
    impersonation = refused(family.payment.Settle, settle_request(family, 10_000, holder=family.father))
    assert impersonation.reason == "IMPERSONATION"
    assert len(violations(family, family.father).violations) == 1
    assert_ledger_balanced(family)
