"""Family mutual-aid bindings (家庭共济绑定) and the rules that create and end them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from shared.china_time import shown
from shared.errors import DomainError, Reason
from shared.money import MAX_BALANCE_FEN
from shared.persons import InsuranceStatus, InsuranceType, InsuredPerson
from shared.policy import RegionPolicy, region_allows
from shared.relationships import AUTOMATICALLY_CHECKABLE, ProofType, Relationship, accepted_proofs, in_scope


class BindingState(StrEnum):
    PENDING_REVIEW = "PENDING_REVIEW"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    ENDED = "ENDED"
    REJECTED = "REJECTED"


# States that occupy a place under the grantor's cap and block a duplicate.
OPEN_STATES: frozenset[BindingState] = frozenset(
    {BindingState.PENDING_REVIEW, BindingState.ACTIVE, BindingState.SUSPENDED}
)


class Channel(StrEnum):
    NATIONAL_APP = "NATIONAL_APP"
    WECHAT = "WECHAT"
    ALIPAY = "ALIPAY"
    WEB = "WEB"
    COUNTER = "COUNTER"  # for the elderly and others who cannot use smart devices


class Actor(StrEnum):
    GRANTOR = "GRANTOR"
    BENEFICIARY = "BENEFICIARY"
    OPERATOR = "OPERATOR"
    SYSTEM = "SYSTEM"


class EndReason(StrEnum):
    GRANTOR_REQUEST = "GRANTOR_REQUEST"
    BENEFICIARY_REQUEST = "BENEFICIARY_REQUEST"
    OPERATOR_ACTION = "OPERATOR_ACTION"
    DEATH = "DEATH"
    DIVORCE = "DIVORCE"
    INSURANCE_ENDED = "INSURANCE_ENDED"


class EventType(StrEnum):
    CREATED = "CREATED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    ENDED = "ENDED"
    SUSPENDED = "SUSPENDED"
    RESUMED = "RESUMED"
    SHARING_LIMIT_CHANGED = "SHARING_LIMIT_CHANGED"


class LifeEvent(StrEnum):
    DEATH = "DEATH"
    DIVORCE = "DIVORCE"
    INSURANCE_ENDED = "INSURANCE_ENDED"
    CONTACT_CHANGED = "CONTACT_CHANGED"


@dataclass(frozen=True)
class Proof:
    type: ProofType
    document_ref: str


@dataclass(frozen=True)
class Identity:
    """Who a caller says a party is; checked against the registry."""

    id_number: str
    name: str


@dataclass
class Binding:
    binding_id: str
    grantor_id_number: str
    beneficiary_id_number: str
    relationship: Relationship
    state: BindingState
    channel: Channel
    consent_version: str
    consent_time: datetime
    create_time: datetime
    grantor_admdvs: str
    beneficiary_admdvs: str
    policy_version: str
    share_all: bool = True
    yearly_cap_fen: int = 0
    proofs: tuple[Proof, ...] = ()
    # Position among the beneficiary's bindings: "order of binding".
    sequence: int = 0
    end_time: datetime | None = None
    end_reason: EndReason | None = None
    ended_by: Actor | None = None
    end_comment: str = ""
    update_time: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def involves(self, id_number: str) -> bool:
        return id_number in (self.grantor_id_number, self.beneficiary_id_number)


@dataclass(frozen=True)
class BindingEvent:
    """One line of a binding's audit trail: who, which channel, when, why."""

    binding_id: str
    event_type: EventType
    actor: Actor
    actor_id: str
    channel: Channel | None
    time: datetime
    state_after: BindingState
    comment: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class BindingApplication:
    grantor: Identity
    beneficiary: Identity
    relationship: Relationship
    proofs: tuple[Proof, ...]
    consent_version: str
    channel: Channel
    yearly_cap_fen: int = 0


@dataclass(frozen=True)
class Parties:
    """What the registry and the policy book say about an application's two people."""

    grantor: InsuredPerson | None
    beneficiary: InsuredPerson | None
    grantor_policy: RegionPolicy
    beneficiary_policy: RegionPolicy
    open_bindings_of_grantor: list[Binding] = field(default_factory=list)


def check_application_form(application: BindingApplication) -> None:
    """Checks that need no state: refused as INVALID_ARGUMENT."""
    if application.grantor.id_number == application.beneficiary.id_number:
        raise DomainError(Reason.SELF_BINDING, "a person cannot bind themself", field="beneficiary.id_number")
    if not application.consent_version.strip():
        raise DomainError(
            Reason.CONSENT_MISSING,
            "the grantor must acknowledge the current notice (承诺书); send its consent_version",
            field="consent_version",
        )
    if application.yearly_cap_fen < 0:
        raise DomainError(Reason.INVALID_AMOUNT, "yearly_cap_fen must not be negative", field="yearly_cap_fen")
    if application.yearly_cap_fen > MAX_BALANCE_FEN:
        raise DomainError(
            Reason.INVALID_AMOUNT, f"yearly_cap_fen is at most {MAX_BALANCE_FEN} fen", field="yearly_cap_fen"
        )


def check_sharing_limit(share_all: bool, yearly_cap_fen: int) -> None:
    """Share everything, or at most a positive yearly cap; never both, so no cap is dropped unseen."""
    if share_all and yearly_cap_fen:
        raise DomainError(
            Reason.FIELD_INVALID,
            "share_all and yearly_cap_fen exclude each other: send one of them",
            field="yearly_cap_fen",
        )
    if not share_all and not 0 < yearly_cap_fen <= MAX_BALANCE_FEN:
        raise DomainError(
            Reason.INVALID_AMOUNT,
            f"give a yearly_cap_fen of 1 to {MAX_BALANCE_FEN} fen, or share_all",
            field="yearly_cap_fen",
        )


def decide_new_binding(application: BindingApplication, parties: Parties, now: datetime) -> BindingState:
    """Applies every rule of who may bind whom (the parties, relationship and proof, the cap,
    the regions) and returns the state the binding starts in.

    The caller must hold the grantor's lock while counting open bindings, so that
    two concurrent applications cannot both take the last place under the cap.
    """
    check_application_form(application)
    check_identities(application, parties)
    if not parties.grantor_policy.accepts_notice(application.consent_version):
        current = ", ".join(sorted(parties.grantor_policy.current_notice_versions))
        raise DomainError(
            Reason.CONSENT_MISSING,
            f"notice {application.consent_version!r} is not the one grantors of region "
            f"{parties.grantor_policy.admdvs} acknowledge now ({current}); show the current notice again",
            field="consent_version",
        )
    grantor, beneficiary = check_parties(application.relationship, parties, now)
    policy = parties.grantor_policy
    pair = (grantor.id_number, beneficiary.id_number)
    if any((b.grantor_id_number, b.beneficiary_id_number) == pair for b in parties.open_bindings_of_grantor):
        raise DomainError(Reason.ALREADY_BOUND, "this grantor and beneficiary are already bound")
    return _initial_state(application, parties, policy)


def check_identities(application: BindingApplication, parties: Parties) -> None:
    """The names given must match the registry's before anything else is judged: whoever knows an
    ID number but not its owner's name learns nothing of that person's insurance (status, region,
    contact changes, notice region) from the refusal (最小必要). A person missing from the registry
    is refused by check_parties."""
    for role, claimed, person in (
        ("grantor", application.grantor, parties.grantor),
        ("beneficiary", application.beneficiary, parties.beneficiary),
    ):
        if person is not None and claimed.name.strip() != person.name:
            raise DomainError(
                Reason.IDENTITY_MISMATCH,
                f"the {role}'s name does not match the insured-person registry (信息不一致)",
                field=f"{role}.name",
            )


def check_parties(relationship: Relationship, parties: Parties, now: datetime) -> tuple[InsuredPerson, InsuredPerson]:
    """The rules of who may bind whom that hold as long as a binding waits: both insured and in
    normal status (the grantor employee-insured with a personal account), contact changes
    confirmed, the relationship within the grantor's region's scope, the regions allowed. Made
    when binding and again when an operator approves one that waited for review, under the
    policy and registry of that moment."""
    grantor, beneficiary = parties.grantor, parties.beneficiary
    if grantor is None:
        raise DomainError(
            Reason.GRANTOR_NOT_EMPLOYEE,
            "the grantor is not in the insured-person registry as employee-insured",
            field="grantor.id_number",
        )
    if grantor.insurance_type is not InsuranceType.EMPLOYEE or not grantor.has_personal_account:
        raise DomainError(
            Reason.GRANTOR_NOT_EMPLOYEE,
            "only an employee-insured person with a personal account can grant mutual aid",
            field="grantor.id_number",
        )
    if not grantor.is_normal:
        raise DomainError(
            Reason.GRANTOR_NOT_IN_NORMAL_STATUS,
            f"the grantor's insurance is {grantor.status.value.lower()}",
            metadata={"status": grantor.status.value},
        )
    if beneficiary is None:
        raise DomainError(
            Reason.BENEFICIARY_NOT_INSURED,
            "the beneficiary is not in basic medical insurance",
            field="beneficiary.id_number",
        )
    if not beneficiary.is_normal:
        raise DomainError(
            Reason.BENEFICIARY_NOT_IN_NORMAL_STATUS,
            f"the beneficiary's insurance is {beneficiary.status.value.lower()}",
            metadata={"status": beneficiary.status.value},
        )
    policy = parties.grantor_policy
    for role, person in (("grantor", grantor), ("beneficiary", beneficiary)):
        if person.contact_change_overdue(now, policy.contact_change_grace_days):
            raise DomainError(
                Reason.CONTACT_CHANGE_OVERDUE,
                f"the {role}'s changed contact information was not confirmed within "
                f"{policy.contact_change_grace_days} days; confirm it first",
                metadata={"person": role},
            )
    if not in_scope(relationship, policy.relationship_scope):
        raise DomainError(
            Reason.RELATIONSHIP_NOT_ALLOWED,
            f"{relationship.value} is outside the {policy.relationship_scope.value} "
            f"relatives of region {policy.admdvs}",
            field="relationship",
            metadata={"scope": policy.relationship_scope.value, "policy_version": policy.version},
        )
    if not region_allows(policy, parties.beneficiary_policy, grantor.admdvs, beneficiary.admdvs):
        other = parties.beneficiary_policy
        raise DomainError(
            Reason.OUTSIDE_REGION,
            f"region {grantor.admdvs} allows {policy.geographic_scope.value} bindings and the beneficiary's "
            f"region {beneficiary.admdvs} {other.geographic_scope.value} ones; the stricter holds",
            metadata={"geographic_scope": policy.geographic_scope.value, "policy_version": policy.version},
        )
    return grantor, beneficiary


def check_room_to_activate(binding: Binding, open_bindings_of_grantor: list[Binding], policy: RegionPolicy) -> None:
    """An approval adds one relative the grantor shares with: refused where the grantor's other
    active bindings already fill the cap of the region's policy in force now (a cap lowered while
    this binding waited for review). Bindings still pending do not count: the first approved
    takes the place. The caller must hold the grantor's lock, as for a new binding."""
    active = [
        b for b in open_bindings_of_grantor if b.state is BindingState.ACTIVE and b.binding_id != binding.binding_id
    ]
    _check_cap(len(active), policy)


def _check_cap(shared_with: int, policy: RegionPolicy) -> None:
    if shared_with >= policy.max_beneficiaries:
        raise DomainError(
            Reason.CAP_REACHED,
            # The count, not the cap: a cap lowered since may lie below what the grantor has.
            f"the grantor already shares with {shared_with} relatives; region {policy.admdvs} allows "
            f"{policy.max_beneficiaries}",
            metadata={"max_beneficiaries": str(policy.max_beneficiaries), "policy_version": policy.version},
        )


def _initial_state(application: BindingApplication, parties: Parties, policy: RegionPolicy) -> BindingState:
    """ACTIVE, or PENDING_REVIEW when a proof cannot be checked automatically or the region
    reviews the relationship; refused past the grantor's region's cap or without a proof."""
    _check_cap(len(parties.open_bindings_of_grantor), policy)
    presented = {proof.type for proof in application.proofs if proof.document_ref.strip()}
    usable = accepted_proofs(application.relationship, presented)
    if not usable:
        raise DomainError(
            Reason.PROOF_MISSING,
            f"a {application.relationship.value} binding needs a proof document of the relationship",
            field="proofs",
        )
    automatic = bool(usable & AUTOMATICALLY_CHECKABLE)
    if automatic and application.relationship in policy.auto_approve_relationships:
        return BindingState.ACTIVE
    return BindingState.PENDING_REVIEW


def check_can_end(
    binding: Binding,
    actor: Actor,
    actor_id: str,
    policy: RegionPolicy,
    now: datetime,
    bound_since: datetime | None = None,
) -> EndReason:
    """Who may end a binding, and when. `bound_since`: when it began to bind (its approval, for one
    that waited for review); its creation when not given."""
    if not binding.is_open:
        raise DomainError(
            Reason.BINDING_NOT_ACTIVE,
            f"binding {binding.binding_id} is already {binding.state.value.lower()}",
            metadata={"state": binding.state.value},
        )
    if actor is Actor.GRANTOR:
        if actor_id != binding.grantor_id_number:
            raise DomainError(Reason.NOT_PARTY_TO_BINDING, "only the binding's grantor may unbind as grantor")
        earliest = (bound_since or binding.create_time) + timedelta(days=policy.min_days_before_unbind)
        # An application still awaiting review binds no one yet: its grantor may withdraw it.
        if now < earliest and binding.state is not BindingState.PENDING_REVIEW:
            raise DomainError(
                Reason.UNBIND_TOO_EARLY,
                f"region {policy.admdvs} allows unbinding {policy.min_days_before_unbind} days after binding",
                metadata={"earliest": shown(earliest)},
            )
        return EndReason.GRANTOR_REQUEST
    if actor is Actor.BENEFICIARY:
        if actor_id != binding.beneficiary_id_number:
            raise DomainError(Reason.NOT_PARTY_TO_BINDING, "only the binding's beneficiary may leave as beneficiary")
        return EndReason.BENEFICIARY_REQUEST
    if actor is Actor.OPERATOR:
        if not actor_id.strip():
            raise DomainError(Reason.FIELD_REQUIRED, "an operator must give an operator id", field="actor_id")
        return EndReason.OPERATOR_ACTION
    raise DomainError(Reason.FIELD_INVALID, "actor must be GRANTOR, BENEFICIARY or OPERATOR", field="actor")


def life_event_ends(binding: Binding, event: LifeEvent, person: str, other: str) -> EndReason | None:
    """The end reason a life event gives an open binding, or None if it is untouched."""
    if not binding.is_open or not binding.involves(person):
        return None
    if event is LifeEvent.DEATH:
        return EndReason.DEATH
    if event is LifeEvent.INSURANCE_ENDED:
        return EndReason.INSURANCE_ENDED
    if event is LifeEvent.DIVORCE and binding.relationship is Relationship.SPOUSE and binding.involves(other):
        return EndReason.DIVORCE
    return None


def status_after_event(event: LifeEvent, status: InsuranceStatus) -> InsuranceStatus | None:
    """The insurance status a life event leaves; a death is final, whatever is reported after it."""
    if status is InsuranceStatus.DECEASED:
        return None
    return {LifeEvent.DEATH: InsuranceStatus.DECEASED, LifeEvent.INSURANCE_ENDED: InsuranceStatus.TERMINATED}.get(event)


def end(binding: Binding, reason: EndReason, actor: Actor, comment: str, now: datetime) -> None:
    binding.state = BindingState.ENDED
    binding.end_reason = reason
    binding.ended_by = actor
    binding.end_comment = comment
    binding.end_time = now
    binding.update_time = now
