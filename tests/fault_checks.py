"""Setting up a cross-province family on a process cluster, and the history
checker run after every fault test (a Jepsen-style bank check)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.common.v1 import common_pb2 as common
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from shared.ledger import CHINA_STANDARD_TIME
from tests.helpers import binding_request, make_id_number, person, request_id
from tests.process_cluster import ProcessCluster

NANJING, LANZHOU, HOSPITAL = "320100", "620100", "H320100-009"
PERSONAL = ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT


@dataclass
class Funded:
    child: bpb.InsuredPerson
    mother: bpb.InsuredPerson
    father: bpb.InsuredPerson
    credited_fen: int


def fund_family(
    cluster: ProcessCluster, mother_fen: int = 20_000, father_fen: int = 200_000, father_first: bool = False
) -> Funded:
    """A child in Nanjing (east) whose mother there and father in Lanzhou (west) pay for it, the
    mother first unless `father_first`."""
    binding = cluster.binding()
    for province in ("320000", "620000"):
        policy = bpb.RegionPolicy(
            admdvs=province, relationship_scope=bpb.RELATIONSHIP_SCOPE_EXTENDED, max_beneficiaries=6,
            geographic_scope=bpb.GEOGRAPHIC_SCOPE_CROSS_PROVINCE, cross_province_provinces=["32", "62"],
            allowed_uses=[common.USE_CATEGORY_OUTPATIENT], auto_approve_relationships=[common.RELATIONSHIP_CHILD],
            contact_change_grace_days=15,
        )  # fmt: skip
        policy.effective_from.FromSeconds(0)
        binding.PutRegionPolicy(bapi.PutRegionPolicyRequest(request_id=request_id(), policy=policy), timeout=10)

    def register(name: str, admdvs: str, resident: bool = False) -> bpb.InsuredPerson:
        message = person(
            make_id_number("320102" if admdvs == NANJING else "620102"), name, admdvs=admdvs,
            insurance_type=common.INSURANCE_TYPE_RESIDENT if resident else common.INSURANCE_TYPE_EMPLOYEE,
            has_personal_account=not resident,
        )  # fmt: skip
        binding.UpsertInsuredPerson(bapi.UpsertInsuredPersonRequest(request_id=request_id(), insured_person=message))
        return message

    child, mother, father = register("王小宝", NANJING, True), register("李妈妈", NANJING), register("王爸爸", LANZHOU)
    made = [binding.CreateBinding(binding_request(grantor, child), timeout=10).binding for grantor in (mother, father)]
    if father_first:
        order = bapi.SetPayerOrderRequest(
            request_id=request_id(), beneficiary_id_number=child.id_number,
            binding_ids=[made[1].binding_id, made[0].binding_id], mode=bpb.PAYER_MODE_SEQUENTIAL,
        )  # fmt: skip
        binding.SetPayerOrder(order, timeout=10)
    for node, who, admdvs, amount in (("east", mother, NANJING, mother_fen), ("west", father, LANZHOU, father_fen)):
        cluster.payment(node).CreditAccount(
            papi.CreditAccountRequest(
                request_id=request_id(), id_number=who.id_number, account_kind=PERSONAL, amount_fen=amount,
                kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION, admdvs=admdvs,
            ),
            timeout=10,
        )  # fmt: skip
    return Funded(child, mother, father, mother_fen + father_fen)


def bill(family: Funded, amount: int) -> ppb.Bill:
    return ppb.Bill(
        institution_code=HOSPITAL, institution_admdvs=NANJING, patient_id_number=family.child.id_number,
        credential=ppb.Credential(type=ppb.CREDENTIAL_TYPE_CARD, holder_id_number=family.child.id_number),
        use_category=common.USE_CATEGORY_OUTPATIENT, self_pay_fen=amount,
    )  # fmt: skip


@dataclass
class Books:
    mother: ppb.Account
    father: ppb.Account
    institution_net_fen: int
    clearing_east: list[tuple[str, str, int]]
    clearing_west: list[tuple[str, str, int]]
    problems: list[str]


def read_books(cluster: ProcessCluster, family: Funded) -> Books:
    east, west = cluster.payment("east"), cluster.payment("west")
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))

    def account(stub, who):
        return stub.GetAccount(
            papi.GetAccountRequest(id_number=who.id_number, account_kind=PERSONAL), timeout=10
        ).account

    def clearing(stub) -> list[tuple[str, str, int]]:
        report = stub.GetClearingReport(papi.GetClearingReportRequest(date=today), timeout=10)
        return [(b.debtor_province, b.creditor_province, b.amount_fen) for b in report.balances]

    day = east.ReconcileInstitution(papi.ReconcileInstitutionRequest(institution_code=HOSPITAL, date=today), timeout=10)
    problems = [
        f"{name}: {problem}"
        for name, stub in (("east", east), ("west", west))
        for problem in stub.CheckLedger(papi.CheckLedgerRequest(), timeout=10).problems
    ]
    return Books(
        account(east, family.mother),
        account(west, family.father),
        day.net_fen,
        clearing(east),
        clearing(west),
        problems,
    )


def converged(cluster: ProcessCluster, family: Funded, seconds: float = 30) -> Books:
    """Waits until nothing is held or in flight, then checks the history:
    both ledgers balanced, money conserved across nodes, clearing sides equal."""
    deadline = time.monotonic() + seconds
    books = read_books(cluster, family)
    while time.monotonic() < deadline:
        books = read_books(cluster, family)
        if books.mother.held_fen == 0 and books.father.held_fen == 0 and books.clearing_east == books.clearing_west:
            break
        time.sleep(0.3)
    assert books.problems == [], books.problems
    assert (books.mother.held_fen, books.father.held_fen) == (0, 0), "holds were left behind"
    assert books.clearing_east == books.clearing_west, "the two nodes disagree on what one province owes the other"
    paid = books.mother.balance_fen + books.father.balance_fen + books.institution_net_fen
    assert paid == family.credited_fen, f"money not conserved: {paid} != {family.credited_fen}"
    assert min(books.mother.balance_fen, books.father.balance_fen) >= 0
    return books


def now_in_china() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).astimezone(CHINA_STANDARD_TIME).isoformat()
