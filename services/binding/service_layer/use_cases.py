"""Use cases of the binding service. Each runs inside the unit of work it is
given; the caller commits. Inputs are already-validated domain values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial

from services.binding.service_layer.policy_book import PolicySnapshot
from services.binding.service_layer.unit_of_work import BindingUnitOfWork
from shared.bindings import (
    Actor,
    Binding,
    BindingApplication,
    BindingEvent,
    BindingState,
    Channel,
    EndReason,
    EventType,
    LifeEvent,
    Parties,
    check_can_end,
    check_parties,
    check_room_to_activate,
    check_sharing_limit,
    decide_new_binding,
    end,
    life_event_ends,
    status_after_event,
)
from shared.errors import DomainError, Reason
from shared.payers import (
    CLOCK_ALLOWANCE,
    PayerMode,
    PayerOrder,
    PayerResolution,
    earmarked_shares,
    resolution_valid_until,
    resolve_payers,
    transfer_refusal,
)
from shared.persons import InsuranceStatus, InsuranceType, InsuredPerson, contact_changed
from shared.policy import RegionPolicy, UseCategory


@dataclass
class Changes:
    """Bindings a registry change or life event touched."""

    ended: list[Binding] = field(default_factory=list)
    suspended: list[Binding] = field(default_factory=list)
    resumed: list[Binding] = field(default_factory=list)


@dataclass(frozen=True)
class Who:
    """Who asked for a change, through which channel, under which idempotency key."""

    actor: Actor
    actor_id: str
    channel: Channel | None
    request_id: str


SYSTEM = Who(Actor.SYSTEM, "system", None, "")


def _record(uow: BindingUnitOfWork, binding: Binding, kind: EventType, who: Who, now: datetime, comment: str) -> None:
    uow.events.add(
        BindingEvent(
            binding_id=binding.binding_id,
            event_type=kind,
            actor=who.actor,
            actor_id=who.actor_id,
            channel=who.channel,
            time=now,
            state_after=binding.state,
            comment=comment,
            request_id=who.request_id,
        )
    )


def _end(uow: BindingUnitOfWork, binding: Binding, reason: EndReason, who: Who, comment: str, now: datetime) -> Binding:
    end(binding, reason, who.actor, comment, now)
    uow.bindings.save(binding)
    _record(uow, binding, EventType.ENDED, who, now, comment or reason.value)
    return binding


def get_person(uow: BindingUnitOfWork, id_number: str) -> InsuredPerson:
    person = uow.persons.get(id_number)
    if person is None:
        raise DomainError(Reason.PERSON_NOT_FOUND, "no insured person has this id_number", field="id_number")
    return person


def upsert_person(
    uow: BindingUnitOfWork, incoming: InsuredPerson, now: datetime, request_id: str
) -> tuple[InsuredPerson, bool, Changes]:
    """Registry sync. A change of status, region or scheme carries through to bindings. A new
    phone or address is a contact change the person must confirm (UpdateContactInfo) within the
    region's grace days, as one reported by ReportLifeEvent is; a field the registry leaves empty
    is no change."""
    who = replace(SYSTEM, request_id=request_id)
    existing = uow.persons.get(incoming.id_number, for_update=True)
    incoming = replace(incoming, update_time=now)
    if existing is None:
        uow.persons.add(incoming)
        return incoming, True, Changes()
    pending = existing.contact_change_time
    if contact_changed(existing, incoming) and pending is None:
        pending = now
    # A sync that leaves a phone or address out does not erase the one on record.
    incoming = replace(
        incoming,
        phone=incoming.phone or existing.phone,
        address=incoming.address or existing.address,
        contact_change_time=pending,
    )
    uow.persons.save(incoming)
    changes = Changes()
    for binding in uow.bindings.open_involving(incoming.id_number):
        reason = _registry_end_reason(binding, existing, incoming)
        if reason is not None:
            changes.ended.append(_end(uow, binding, reason, who, "registry sync", now))
        elif incoming.status is InsuranceStatus.SUSPENDED and binding.state is BindingState.ACTIVE:
            binding.state, binding.update_time = BindingState.SUSPENDED, now
            uow.bindings.save(binding)
            _record(uow, binding, EventType.SUSPENDED, who, now, "insurance suspended")
            changes.suspended.append(binding)
        elif incoming.is_normal and binding.state is BindingState.SUSPENDED:
            other_id = (
                binding.beneficiary_id_number
                if binding.grantor_id_number == incoming.id_number
                else binding.grantor_id_number
            )
            other = uow.persons.get(other_id)
            if other is not None and other.is_normal:
                binding.state, binding.update_time = BindingState.ACTIVE, now
                uow.bindings.save(binding)
                _record(uow, binding, EventType.RESUMED, who, now, "insurance back to normal")
                changes.resumed.append(binding)
    return incoming, False, changes


def _registry_end_reason(binding: Binding, before: InsuredPerson, after: InsuredPerson) -> EndReason | None:
    if after.status is InsuranceStatus.DECEASED:
        return EndReason.DEATH
    if after.status is InsuranceStatus.TERMINATED or after.admdvs != before.admdvs:
        return EndReason.INSURANCE_ENDED  # ended, or moved to another pooling region
    is_grantor = binding.grantor_id_number == after.id_number
    if is_grantor and (after.insurance_type is not InsuranceType.EMPLOYEE or not after.has_personal_account):
        return EndReason.INSURANCE_ENDED
    return None


def update_contact_info(
    uow: BindingUnitOfWork, id_number: str, phone: str, address: str, now: datetime
) -> InsuredPerson:
    person = uow.persons.get(id_number, for_update=True)
    if person is None:
        raise DomainError(Reason.PERSON_NOT_FOUND, "no insured person has this id_number", field="id_number")
    confirmed = replace(
        person,
        phone=phone or person.phone,
        address=address or person.address,
        contact_change_time=None,
        update_time=now,
    )
    uow.persons.save(confirmed)
    return confirmed


def _not_ahead(moment: datetime, now: datetime, field: str) -> datetime:
    """A time a caller says something happened: refused when after this service's clock by more
    than CLOCK_ALLOWANCE; a little ahead (a caller's clock running fast sends "now" as a
    moment later) is taken as now."""
    if moment > now + CLOCK_ALLOWANCE:
        raise DomainError(
            Reason.FIELD_INVALID,
            f"{field} is after this service's clock (by more than {CLOCK_ALLOWANCE.seconds} s)",
            field=field,
        )
    return min(moment, now)


def report_life_event(
    uow: BindingUnitOfWork,
    id_number: str,
    event: LifeEvent,
    other_id_number: str,
    event_time: datetime,
    now: datetime,
    request_id: str,
) -> tuple[InsuredPerson, Changes]:
    # A contact change dated ahead would push its days to confirm into the future too.
    event_time = _not_ahead(event_time, now, "event_time")
    person = uow.persons.get(id_number, for_update=True)
    if person is None:
        raise DomainError(Reason.PERSON_NOT_FOUND, "no insured person has this id_number", field="id_number")
    if event is LifeEvent.DIVORCE and not other_id_number:
        raise DomainError(Reason.FIELD_REQUIRED, "a divorce names the former spouse", field="other_id_number")
    if event is LifeEvent.DIVORCE and other_id_number == id_number:
        raise DomainError(
            Reason.FIELD_INVALID, "a divorce names the former spouse, not the person himself", field="other_id_number"
        )
    new_status = status_after_event(event, person.status)
    if new_status is not None:
        person = replace(person, status=new_status, update_time=now)
    if event is LifeEvent.CONTACT_CHANGED:
        person = replace(person, contact_change_time=event_time, update_time=now)
    uow.persons.save(person)
    who = replace(SYSTEM, request_id=request_id)
    changes = Changes()
    for binding in uow.bindings.open_involving(id_number):
        reason = life_event_ends(binding, event, id_number, other_id_number)
        if reason is not None:
            changes.ended.append(_end(uow, binding, reason, who, f"life event {event.value}", now))
    return person, changes


def create_binding(
    uow: BindingUnitOfWork,
    application: BindingApplication,
    policies: PolicySnapshot,
    consent_time: datetime,
    now: datetime,
    request_id: str,
) -> Binding:
    # The notice is acknowledged before binding: a later acknowledgement is no consent to it.
    consent_time = _not_ahead(consent_time, now, "consent_time")
    grantor_id, beneficiary_id = application.grantor.id_number, application.beneficiary.id_number
    # Locking the grantor serialises applications against the cap.
    people = uow.persons.lock_in_order([grantor_id, beneficiary_id])
    grantor, beneficiary = people.get(grantor_id), people.get(beneficiary_id)
    grantor_policy = policies.for_region(grantor.admdvs, now) if grantor else policies.for_region("000000", now)
    beneficiary_policy = policies.for_region(beneficiary.admdvs, now) if beneficiary else grantor_policy
    parties = Parties(
        grantor=grantor,
        beneficiary=beneficiary,
        grantor_policy=grantor_policy,
        beneficiary_policy=beneficiary_policy,
        open_bindings_of_grantor=uow.bindings.open_of_grantor(grantor_id) if grantor else [],
    )
    state = decide_new_binding(application, parties, now)
    assert grantor is not None and beneficiary is not None  # decide_new_binding refused otherwise
    binding = Binding(
        binding_id=str(uuid.uuid4()),
        grantor_id_number=grantor_id,
        beneficiary_id_number=beneficiary_id,
        relationship=application.relationship,
        state=state,
        channel=application.channel,
        consent_version=application.consent_version,
        consent_time=consent_time,
        create_time=now,
        update_time=now,
        grantor_admdvs=grantor.admdvs,
        beneficiary_admdvs=beneficiary.admdvs,
        policy_version=grantor_policy.version,
        share_all=application.yearly_cap_fen == 0,
        yearly_cap_fen=application.yearly_cap_fen,
        proofs=application.proofs,
        sequence=uow.bindings.next_sequence_of(beneficiary_id),
    )
    uow.bindings.add(binding)
    who = Who(Actor.GRANTOR, grantor_id, application.channel, request_id)
    _record(uow, binding, EventType.CREATED, who, now, f"consent {application.consent_version}")
    return binding


def get_binding(uow: BindingUnitOfWork, binding_id: str, for_update: bool = False) -> Binding:
    binding = uow.bindings.get(binding_id, for_update=for_update)
    if binding is None:
        raise DomainError(Reason.BINDING_NOT_FOUND, f"no binding {binding_id}", field="binding_id")
    return binding


def review_binding(
    uow: BindingUnitOfWork,
    binding_id: str,
    approve: bool,
    operator_id: str,
    comment: str,
    policies: PolicySnapshot,
    now: datetime,
    request_id: str,
) -> Binding:
    if not operator_id.strip():
        raise DomainError(Reason.FIELD_REQUIRED, "operator_id is required for a review", field="operator_id")
    binding = get_binding(uow, binding_id, for_update=True)
    if binding.state is not BindingState.PENDING_REVIEW:
        raise DomainError(
            Reason.BINDING_NOT_PENDING_REVIEW,
            f"binding {binding_id} is {binding.state.value.lower()}, not pending review",
            metadata={"state": binding.state.value},
        )
    if approve:
        # It waited: the registry and the regions' policies may have changed since it was made.
        people = uow.persons.lock_in_order([binding.grantor_id_number, binding.beneficiary_id_number])
        grantor, beneficiary = people.get(binding.grantor_id_number), people.get(binding.beneficiary_id_number)
        grantor_policy = policies.for_region(grantor.admdvs if grantor else binding.grantor_admdvs, now)
        beneficiary_admdvs = beneficiary.admdvs if beneficiary else binding.beneficiary_admdvs
        parties = Parties(grantor, beneficiary, grantor_policy, policies.for_region(beneficiary_admdvs, now))
        check_parties(binding.relationship, parties, now)
        check_room_to_activate(binding, uow.bindings.open_of_grantor(binding.grantor_id_number), grantor_policy)
    binding.state = BindingState.ACTIVE if approve else BindingState.REJECTED
    binding.update_time = now
    if not approve:
        binding.end_time, binding.ended_by, binding.end_comment = now, Actor.OPERATOR, comment
    uow.bindings.save(binding)
    who = Who(Actor.OPERATOR, operator_id, None, request_id)
    _record(uow, binding, EventType.APPROVED if approve else EventType.REJECTED, who, now, comment)
    return binding


def end_binding(
    uow: BindingUnitOfWork,
    binding_id: str,
    who: Who,
    comment: str,
    policies: PolicySnapshot,
    now: datetime,
) -> Binding:
    binding = get_binding(uow, binding_id, for_update=True)
    policy = policies.for_region(binding.grantor_admdvs, now)
    bound_since = None
    if (
        who.actor is Actor.GRANTOR
        and policy.min_days_before_unbind
        and binding.state is not BindingState.PENDING_REVIEW
    ):
        bound_since = _approval_time(uow, binding_id)
    reason = check_can_end(binding, who.actor, who.actor_id, policy, now, bound_since)
    return _end(uow, binding, reason, who, comment, now)


def _approval_time(uow: BindingUnitOfWork, binding_id: str) -> datetime | None:
    """When an operator approved the binding (it waited for review), from its audit trail; None
    for one active from its making."""
    after = 0
    while page := uow.events.page(binding_id, after, 100):
        for event_id, event in page:
            if event.event_type is EventType.APPROVED:
                return event.time
            after = event_id
    return None


def list_bindings(
    uow: BindingUnitOfWork,
    grantor_id_number: str,
    beneficiary_id_number: str,
    states: list[BindingState],
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Binding]:
    return uow.bindings.page(grantor_id_number, beneficiary_id_number, states, after, limit)


def update_sharing_limit(
    uow: BindingUnitOfWork, binding_id: str, share_all: bool, yearly_cap_fen: int, now: datetime, who: Who
) -> Binding:
    """The grantor's choice of how much to share, made through a channel, or an operator's on his
    behalf; the audit trail names whichever of them it was (a grantor by his ID number)."""
    check_sharing_limit(share_all, yearly_cap_fen)
    binding = get_binding(uow, binding_id, for_update=True)
    if not binding.is_open:
        raise DomainError(
            Reason.BINDING_NOT_ACTIVE,
            f"binding {binding_id} is {binding.state.value.lower()}",
            metadata={"state": binding.state.value},
        )
    binding.share_all = share_all
    binding.yearly_cap_fen = 0 if share_all else yearly_cap_fen
    binding.update_time = now
    uow.bindings.save(binding)
    if who.actor is Actor.GRANTOR:
        who = replace(who, actor_id=binding.grantor_id_number)
    limit = "share all" if share_all else f"yearly cap {yearly_cap_fen} fen"
    _record(uow, binding, EventType.SHARING_LIMIT_CHANGED, who, now, limit)
    return binding


def set_payer_order(
    uow: BindingUnitOfWork, beneficiary_id_number: str, binding_ids: list[str], mode: PayerMode, now: datetime
) -> PayerOrder:
    get_person(uow, beneficiary_id_number)
    if len(set(binding_ids)) != len(binding_ids):
        raise DomainError(Reason.FIELD_INVALID, "binding_ids lists a binding twice", field="binding_ids")
    for index, binding_id in enumerate(binding_ids):
        binding = uow.bindings.get(binding_id)
        if binding is None or binding.beneficiary_id_number != beneficiary_id_number:
            raise DomainError(
                Reason.BINDING_NOT_FOUND,
                f"binding {binding_id} is not one of this beneficiary's",
                field=f"binding_ids[{index}]",
            )
        if not binding.is_open:
            raise DomainError(
                Reason.BINDING_NOT_ACTIVE,
                f"binding {binding_id} is {binding.state.value.lower()}",
                field=f"binding_ids[{index}]",
            )
    order = PayerOrder(beneficiary_id_number, tuple(binding_ids), mode)
    uow.payer_orders.put(order, now)
    return order


def resolve(
    uow: BindingUnitOfWork,
    beneficiary_id_number: str,
    use: UseCategory,
    chronic_disease: bool,
    at: datetime,
    policies: PolicySnapshot,
) -> PayerResolution:
    found = uow.payer_queries.candidates(beneficiary_id_number)
    if found.beneficiary is None:
        raise DomainError(
            Reason.PERSON_NOT_FOUND, "no insured person has this beneficiary_id_number", field="beneficiary_id_number"
        )
    policy_of = partial(policies.for_region, at=at)
    resolution = resolve_payers(found.beneficiary, found.bindings, found.order, policy_of, use, chronic_disease, at)
    resolution = replace(
        resolution,
        valid_until=resolution_valid_until(
            found.beneficiary, found.bindings, policy_of, policies.next_change_after(at), at
        ),
    )
    own_policy = policies.for_region(found.beneficiary.admdvs, at)
    if not own_policy.earmark_shared_amount:
        return resolution  # no second read where the region does not earmark (most regions)
    earmarked = earmarked_shares(own_policy, uow.bindings.open_of_grantor(beneficiary_id_number))
    return replace(resolution, earmarked=earmarked)


# What stops a transfer over an active binding (the loop below reads active ones only).
_TRANSFER_REFUSALS = {
    Reason.BENEFICIARY_NOT_IN_NORMAL_STATUS: "the beneficiary's insurance is not in normal status",
    Reason.GRANTOR_NOT_IN_NORMAL_STATUS: "the grantor's insurance is not in normal status",
    Reason.CONTACT_CHANGE_OVERDUE: "a changed phone or address was not confirmed within the region's grace days; "
    "the person confirms it (UpdateContactInfo) first",
}


def check_wallet_transfer(
    uow: BindingUnitOfWork, grantor_id_number: str, beneficiary_id_number: str, at: datetime, policies: PolicySnapshot
) -> tuple[Binding, InsuredPerson, InsuredPerson]:
    """The binding over which the grantor may move money to the beneficiary's wallet now, with
    both persons; refused for what would pass the grantor over for a bill, but for its use."""
    found = uow.payer_queries.candidates(beneficiary_id_number)
    if found.beneficiary is None:
        raise DomainError(
            Reason.PERSON_NOT_FOUND, "no insured person has this beneficiary_id_number", field="beneficiary_id_number"
        )
    for binding, grantor in found.bindings:
        if binding.grantor_id_number != grantor_id_number or binding.state is not BindingState.ACTIVE:
            continue
        refusal = transfer_refusal(
            binding, grantor, found.beneficiary, policies.for_region(grantor.admdvs, at),
            policies.for_region(found.beneficiary.admdvs, at), at,
        )  # fmt: skip
        if refusal is not None:
            raise DomainError(refusal, _TRANSFER_REFUSALS[refusal], metadata={"binding_id": binding.binding_id})
        return binding, grantor, found.beneficiary
    raise DomainError(
        Reason.BINDING_NOT_ACTIVE,
        "the grantor has no active binding with this beneficiary",
        field="beneficiary_id_number",
    )


def put_policy(uow: BindingUnitOfWork, policy: RegionPolicy, now: datetime) -> tuple[RegionPolicy, bool]:
    """Adds a policy version; True when it is new. A version, once stored, never changes:
    settlements cite it."""
    policy.validated_as_new()
    existing = uow.policies.get(policy.admdvs, policy.effective_from)
    if existing is not None:
        if existing == policy:
            return existing, False
        raise DomainError(
            Reason.POLICY_VERSION_EXISTS,
            f"policy {policy.version} exists with other values; add a version with a later effective_from",
            metadata={"version": policy.version},
        )
    uow.policies.add(policy, now)
    return policy, True


def list_policies(uow: BindingUnitOfWork, admdvs_prefix: str) -> list[RegionPolicy]:
    policies = [p for p in uow.policies.all() if p.admdvs.startswith(admdvs_prefix)]
    return sorted(policies, key=lambda p: (p.admdvs, p.effective_from))
