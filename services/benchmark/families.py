"""The benchmark's families and their bills: ID numbers, registering a family over gRPC (people,
bindings, payer order, credits) in one region or across two provinces, and a Settle request."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from gongji.binding.v1 import binding_pb2 as bpb
from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.common.v1 import common_pb2 as common
from gongji.payment.v1 import payment_pb2 as ppb
from gongji.payment.v1 import payment_service_pb2 as papi
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.benchmark.deployment import ADMDVS, WEST_ADMDVS, institutions
from services.benchmark.desk import CALL_TIMEOUT, Desk
from services.benchmark.errors import BenchmarkError
from shared.identity import compose_id_number

# 100,000 yuan per grantor: no bill is ever short of money, and no more than one
# PaymentService call may move (`gongji serve payment --max-amount-fen`, default 10,000,000).
CREDIT_FEN = 10_000_000
# Where the ID numbers say the families were first registered (Nanjing, and Lanzhou for fathers).
NANJING_AREA, LANZHOU_AREA = "320102", "620102"


def person_id(base: date, index: int) -> str:
    return compose_id_number(NANJING_AREA, base + timedelta(days=index // 1000), index % 1000)


@dataclass(frozen=True)
class Family:
    child: str
    grantors: tuple[str, str]
    admdvs: str = ADMDVS  # the child's region: its bills are settled at this region's hospitals


def _new_request_id() -> str:
    return str(uuid.uuid4())


async def register_family(number: int, desk: Desk) -> Family:
    """Two employee grantors, one resident child, both bindings ACTIVE, PROPORTIONAL
    payer order, and both personal accounts credited."""
    mother = person_id(date(1975, 1, 1), 2 * number)
    father = person_id(date(1975, 1, 1), 2 * number + 1)
    child = person_id(date(2012, 1, 1), number)
    await _bind_family(desk, f"family {number}", f"birth-{number}", (mother, ADMDVS), (father, ADMDVS), child)
    for grantor in (mother, father):
        await _credit(desk.treasury, grantor, ADMDVS)
    return Family(child, (mother, father))


async def put_cross_province_policies(registry: binding_grpc.BindingServiceStub) -> None:
    """Jiangsu and Gansu let a grantor in either province pay for a beneficiary in the other
    (put by the national operator)."""
    for province in ("320000", "620000"):
        policy = bpb.RegionPolicy(
            admdvs=province, relationship_scope=bpb.RELATIONSHIP_SCOPE_EXTENDED, max_beneficiaries=6,
            geographic_scope=bpb.GEOGRAPHIC_SCOPE_CROSS_PROVINCE, cross_province_provinces=["32", "62"],
            allowed_uses=[common.USE_CATEGORY_OUTPATIENT], auto_approve_relationships=[common.RELATIONSHIP_CHILD],
            contact_change_grace_days=15,
        )  # fmt: skip
        policy.effective_from.FromSeconds(0)
        await registry.PutRegionPolicy(
            bapi.PutRegionPolicyRequest(request_id=_new_request_id(), policy=policy), timeout=CALL_TIMEOUT
        )


async def register_cross_family(number: int, east: Desk, west: Desk) -> Family:
    """A resident child and an employee mother in Nanjing, an employee father in Lanzhou;
    both bindings ACTIVE, PROPORTIONAL payer order; the mother credited on east, the
    father on west, so every bill has one leg on each node. Needs the cross-province policies."""
    mother = compose_id_number(NANJING_AREA, date(1980, 1, 1) + timedelta(days=number // 1000), number % 1000)
    father = compose_id_number(LANZHOU_AREA, date(1980, 1, 1) + timedelta(days=number // 1000), number % 1000)
    child = compose_id_number(NANJING_AREA, date(2015, 1, 1) + timedelta(days=number // 1000), number % 1000)
    await _bind_family(
        east, f"cross family {number}", f"cross-birth-{number}", (mother, ADMDVS), (father, WEST_ADMDVS), child
    )
    await _credit(east.treasury, mother, ADMDVS)
    await _credit(west.treasury, father, WEST_ADMDVS)
    return Family(child, (mother, father))


async def _bind_family(
    desk: Desk,
    label: str,
    proof_ref: str,
    mother: tuple[str, str],
    father: tuple[str, str],
    child: str,
) -> None:
    """Registers mother and father (id number, admdvs) and the child, insured in the mother's
    region (as the operator); binds both parents to the child, ACTIVE, in a PROPORTIONAL payer
    order (as the national app)."""
    people = ((*mother, "李妈妈", False), (*father, "王爸爸", False), (child, mother[1], "王小宝", True))
    for id_number, admdvs, name, resident in people:
        person = bpb.InsuredPerson(
            id_number=id_number, name=name,
            insurance_type=common.INSURANCE_TYPE_RESIDENT if resident else common.INSURANCE_TYPE_EMPLOYEE,
            status=common.INSURANCE_STATUS_NORMAL, admdvs=admdvs, phone="13800000000",
            has_personal_account=not resident,
        )  # fmt: skip
        await desk.registry.UpsertInsuredPerson(
            bapi.UpsertInsuredPersonRequest(request_id=_new_request_id(), insured_person=person), timeout=CALL_TIMEOUT
        )
    binding_ids = []
    for grantor, name in ((mother[0], "李妈妈"), (father[0], "王爸爸")):
        created = await desk.app.CreateBinding(
            bapi.CreateBindingRequest(
                request_id=_new_request_id(),
                grantor=bapi.PersonIdentity(id_number=grantor, name=name),
                beneficiary=bapi.PersonIdentity(id_number=child, name="王小宝"),
                relationship=common.RELATIONSHIP_CHILD,
                proofs=[bpb.Proof(type=bpb.PROOF_TYPE_BIRTH_CERTIFICATE, document_ref=proof_ref)],
                consent_version="notice-2025-01",
                channel=common.CHANNEL_NATIONAL_APP,  # the caller's own channel, as the policy demands
            ),
            timeout=CALL_TIMEOUT,
        )
        if created.binding.state != bpb.BINDING_STATE_ACTIVE:
            raise BenchmarkError(f"{label}: binding is {bpb.BindingState.Name(created.binding.state)}")
        binding_ids.append(created.binding.binding_id)
    await desk.app.SetPayerOrder(
        bapi.SetPayerOrderRequest(
            request_id=_new_request_id(),
            beneficiary_id_number=child,
            binding_ids=binding_ids,
            mode=bpb.PAYER_MODE_PROPORTIONAL,
        ),
        timeout=CALL_TIMEOUT,
    )


async def _credit(treasury: payment_grpc.PaymentServiceStub, grantor: str, admdvs: str) -> None:
    await treasury.CreditAccount(
        papi.CreditAccountRequest(
            request_id=_new_request_id(), id_number=grantor, account_kind=ppb.ACCOUNT_KIND_PERSONAL_ACCOUNT,
            amount_fen=CREDIT_FEN, kind=papi.CREDIT_KIND_MONTHLY_CONTRIBUTION, period="2026-01", admdvs=admdvs,
        ),
        timeout=CALL_TIMEOUT,
    )  # fmt: skip


def settle_request(family: Family, rng: random.Random) -> papi.SettleRequest:
    """A two-payer outpatient bill of the family's child at a random hospital of the child's region
    (Nanjing for the families the benchmark registers)."""
    return papi.SettleRequest(
        request_id=_new_request_id(),
        bill=ppb.Bill(
            institution_code=rng.choice(institutions(family.admdvs)),
            institution_admdvs=family.admdvs,
            patient_id_number=family.child,
            credential=ppb.Credential(type=ppb.CREDENTIAL_TYPE_CARD, holder_id_number=family.child),
            use_category=common.USE_CATEGORY_OUTPATIENT,
            self_pay_fen=rng.randint(200, 3000),
        ),
    )
