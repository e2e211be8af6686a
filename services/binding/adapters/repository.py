"""Repositories of the binding service: rows in, domain dataclasses out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, bindparam, func, insert, or_, select, tuple_, update

from services.binding.adapters import orm
from shared.bindings import Actor, Binding, BindingEvent, BindingState, Channel, EndReason, EventType, Proof
from shared.payers import PayerMode, PayerOrder
from shared.persons import InsuranceStatus, InsuranceType, InsuredPerson
from shared.policy import RegionPolicy, policy_from_dict, policy_to_dict
from shared.relationships import ProofType, Relationship

OPEN = [state.value for state in (BindingState.PENDING_REVIEW, BindingState.ACTIVE, BindingState.SUSPENDED)]


def _person(row: Any, prefix: str = "") -> InsuredPerson:
    get = row._mapping
    return InsuredPerson(
        id_number=get[prefix + "id_number"],
        name=get[prefix + "name"],
        insurance_type=InsuranceType(get[prefix + "insurance_type"]),
        status=InsuranceStatus(get[prefix + "status"]),
        admdvs=get[prefix + "admdvs"],
        phone=get[prefix + "phone"],
        address=get[prefix + "address"],
        has_personal_account=get[prefix + "has_personal_account"],
        contact_change_time=get[prefix + "contact_change_time"],
        update_time=get[prefix + "update_time"],
    )


def _person_values(person: InsuredPerson) -> dict[str, Any]:
    return {
        "id_number": person.id_number,
        "name": person.name,
        "insurance_type": person.insurance_type.value,
        "status": person.status.value,
        "admdvs": person.admdvs,
        "phone": person.phone,
        "address": person.address,
        "has_personal_account": person.has_personal_account,
        "contact_change_time": person.contact_change_time,
        "update_time": person.update_time,
    }


def _binding(row: Any) -> Binding:
    get = row._mapping
    return Binding(
        binding_id=get["binding_id"],
        grantor_id_number=get["grantor_id_number"],
        beneficiary_id_number=get["beneficiary_id_number"],
        relationship=Relationship(get["relationship"]),
        state=BindingState(get["state"]),
        channel=Channel(get["channel"]),
        consent_version=get["consent_version"],
        consent_time=get["consent_time"],
        create_time=get["create_time"],
        grantor_admdvs=get["grantor_admdvs"],
        beneficiary_admdvs=get["beneficiary_admdvs"],
        policy_version=get["policy_version"],
        share_all=get["share_all"],
        yearly_cap_fen=get["yearly_cap_fen"],
        proofs=tuple(Proof(ProofType(p["type"]), p["document_ref"]) for p in get["proofs"]),
        end_time=get["end_time"],
        end_reason=EndReason(get["end_reason"]) if get["end_reason"] else None,
        ended_by=Actor(get["ended_by"]) if get["ended_by"] else None,
        end_comment=get["end_comment"],
        update_time=get["update_time"],
        sequence=get["beneficiary_sequence"],
    )


def _binding_values(binding: Binding) -> dict[str, Any]:
    return {
        "binding_id": binding.binding_id,
        "grantor_id_number": binding.grantor_id_number,
        "beneficiary_id_number": binding.beneficiary_id_number,
        "relationship": binding.relationship.value,
        "state": binding.state.value,
        "share_all": binding.share_all,
        "yearly_cap_fen": binding.yearly_cap_fen,
        "channel": binding.channel.value,
        "consent_version": binding.consent_version,
        "consent_time": binding.consent_time,
        "create_time": binding.create_time,
        "update_time": binding.update_time or binding.create_time,
        "end_time": binding.end_time,
        "end_reason": binding.end_reason.value if binding.end_reason else None,
        "ended_by": binding.ended_by.value if binding.ended_by else None,
        "end_comment": binding.end_comment,
        "grantor_admdvs": binding.grantor_admdvs,
        "beneficiary_admdvs": binding.beneficiary_admdvs,
        "policy_version": binding.policy_version,
        "proofs": [{"type": p.type.value, "document_ref": p.document_ref} for p in binding.proofs],
        "beneficiary_sequence": binding.sequence,
    }


class PersonRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def get(self, id_number: str, for_update: bool = False) -> InsuredPerson | None:
        query = select(orm.insured_persons).where(orm.insured_persons.c.id_number == id_number)
        if for_update:
            query = query.with_for_update()
        row = self._connection.execute(query).first()
        return None if row is None else _person(row)

    def lock_in_order(self, id_numbers: Iterable[str]) -> dict[str, InsuredPerson]:
        """Locks several persons' rows, always in the same order so two callers never deadlock."""
        found: dict[str, InsuredPerson] = {}
        for id_number in sorted(set(id_numbers)):
            person = self.get(id_number, for_update=True)
            if person is not None:
                found[id_number] = person
        return found

    def add(self, person: InsuredPerson) -> None:
        self._connection.execute(insert(orm.insured_persons).values(**_person_values(person)))

    def save(self, person: InsuredPerson) -> None:
        values = _person_values(person)
        self._connection.execute(
            update(orm.insured_persons).where(orm.insured_persons.c.id_number == person.id_number).values(**values)
        )


class BindingRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def get(self, binding_id: str, for_update: bool = False) -> Binding | None:
        query = select(orm.bindings).where(orm.bindings.c.binding_id == binding_id)
        if for_update:
            query = query.with_for_update()
        row = self._connection.execute(query).first()
        return None if row is None else _binding(row)

    def add(self, binding: Binding) -> None:
        self._connection.execute(insert(orm.bindings).values(**_binding_values(binding)))

    def save(self, binding: Binding) -> None:
        self._connection.execute(
            update(orm.bindings)
            .where(orm.bindings.c.binding_id == binding.binding_id)
            .values(**_binding_values(binding))
        )

    def next_sequence_of(self, beneficiary_id_number: str) -> int:
        """The next position in the beneficiary's binding order; call with the beneficiary's row locked."""
        table = orm.bindings
        highest = self._connection.execute(
            select(func.max(table.c.beneficiary_sequence)).where(table.c.beneficiary_id_number == beneficiary_id_number)
        ).scalar()
        return (highest or 0) + 1

    def open_of_grantor(self, grantor_id_number: str) -> list[Binding]:
        rows = self._connection.execute(
            select(orm.bindings).where(
                orm.bindings.c.grantor_id_number == grantor_id_number, orm.bindings.c.state.in_(OPEN)
            )
        )
        return [_binding(row) for row in rows]

    def open_involving(self, id_number: str) -> list[Binding]:
        rows = self._connection.execute(
            select(orm.bindings)
            .where(
                or_(orm.bindings.c.grantor_id_number == id_number, orm.bindings.c.beneficiary_id_number == id_number),
                orm.bindings.c.state.in_(OPEN),
            )
            .order_by(orm.bindings.c.create_time, orm.bindings.c.binding_id)
            .with_for_update()
        )
        return [_binding(row) for row in rows]

    def page(
        self,
        grantor_id_number: str,
        beneficiary_id_number: str,
        states: Sequence[BindingState],
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Binding]:
        table = orm.bindings
        query = select(table)
        if grantor_id_number:
            query = query.where(table.c.grantor_id_number == grantor_id_number)
        if beneficiary_id_number:
            query = query.where(table.c.beneficiary_id_number == beneficiary_id_number)
        if states:
            query = query.where(table.c.state.in_([s.value for s in states]))
        if after is not None:
            query = query.where(tuple_(table.c.create_time, table.c.binding_id) > tuple_(*after))
        query = query.order_by(table.c.create_time, table.c.binding_id).limit(limit)
        return [_binding(row) for row in self._connection.execute(query)]


class EventLog:
    """The audit trail of binding changes."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, event: BindingEvent) -> None:
        self._connection.execute(
            insert(orm.binding_events).values(
                binding_id=event.binding_id,
                event_type=event.event_type.value,
                actor=event.actor.value,
                actor_id=event.actor_id,
                channel=event.channel.value if event.channel else None,
                time=event.time,
                state_after=event.state_after.value,
                comment=event.comment,
                request_id=event.request_id,
            )
        )

    def page(self, binding_id: str, after_event_id: int, limit: int) -> list[tuple[int, BindingEvent]]:
        table = orm.binding_events
        rows = self._connection.execute(
            select(table)
            .where(table.c.binding_id == binding_id, table.c.event_id > after_event_id)
            .order_by(table.c.event_id)
            .limit(limit)
        )
        return [
            (
                row.event_id,
                BindingEvent(
                    binding_id=row.binding_id,
                    event_type=EventType(row.event_type),
                    actor=Actor(row.actor),
                    actor_id=row.actor_id,
                    channel=Channel(row.channel) if row.channel else None,
                    time=row.time,
                    state_after=BindingState(row.state_after),
                    comment=row.comment,
                    request_id=row.request_id,
                ),
            )
            for row in rows
        ]


class PayerOrderRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def get(self, beneficiary_id_number: str) -> PayerOrder | None:
        row = self._connection.execute(
            select(orm.payer_orders).where(orm.payer_orders.c.beneficiary_id_number == beneficiary_id_number)
        ).first()
        if row is None:
            return None
        return PayerOrder(row.beneficiary_id_number, tuple(row.binding_ids), PayerMode(row.mode))

    def put(self, order: PayerOrder, now: datetime) -> None:
        table = orm.payer_orders
        values = {"mode": order.mode.value, "binding_ids": list(order.binding_ids), "update_time": now}
        changed = self._connection.execute(
            update(table).where(table.c.beneficiary_id_number == order.beneficiary_id_number).values(**values)
        ).rowcount
        if not changed:
            self._connection.execute(insert(table).values(beneficiary_id_number=order.beneficiary_id_number, **values))


@dataclass(frozen=True)
class PayerCandidates:
    """Everything ResolvePayers needs, read in one round trip."""

    beneficiary: InsuredPerson | None
    bindings: list[tuple[Binding, InsuredPerson]]
    order: PayerOrder | None


def _candidates_query() -> Select[Any]:
    beneficiary = orm.insured_persons.alias("beneficiary")
    grantor = orm.insured_persons.alias("grantor")
    b, po = orm.bindings, orm.payer_orders
    return (
        select(
            *[c.label(f"ben_{c.name}") for c in beneficiary.c],
            *[c.label(f"gr_{c.name}") for c in grantor.c],
            *b.c,
            po.c.mode.label("order_mode"),
            po.c.binding_ids.label("order_binding_ids"),
        )
        .select_from(beneficiary)
        .outerjoin(
            b,
            and_(b.c.beneficiary_id_number == beneficiary.c.id_number, b.c.state.in_(OPEN)),
        )
        .outerjoin(grantor, grantor.c.id_number == b.c.grantor_id_number)
        .outerjoin(po, po.c.beneficiary_id_number == beneficiary.c.id_number)
        .where(beneficiary.c.id_number == bindparam("beneficiary_id_number"))
    )


# Built once: ResolvePayers runs on every settlement, and building this join costs more than running it.
CANDIDATES = _candidates_query()


class PayerQueries:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def candidates(self, beneficiary_id_number: str) -> PayerCandidates:
        rows: list[Row[Any]] = list(
            self._connection.execute(CANDIDATES, {"beneficiary_id_number": beneficiary_id_number})
        )
        if not rows:
            return PayerCandidates(None, [], None)
        first = rows[0]
        order = None
        if first.order_mode is not None:
            order = PayerOrder(beneficiary_id_number, tuple(first.order_binding_ids), PayerMode(first.order_mode))
        pairs = [(_binding(row), _person(row, "gr_")) for row in rows if row.binding_id is not None]
        return PayerCandidates(_person(first, "ben_"), pairs, order)


class PolicyRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def all(self) -> list[RegionPolicy]:
        rows = self._connection.execute(select(orm.region_policies.c.document))
        return [policy_from_dict(row.document) for row in rows]

    def get(self, admdvs: str, effective_from: datetime) -> RegionPolicy | None:
        table = orm.region_policies
        row = self._connection.execute(
            select(table.c.document).where(table.c.admdvs == admdvs, table.c.effective_from == effective_from)
        ).first()
        return None if row is None else policy_from_dict(row.document)

    def add(self, policy: RegionPolicy, now: datetime) -> None:
        self._connection.execute(
            insert(orm.region_policies).values(
                admdvs=policy.admdvs,
                effective_from=policy.effective_from,
                document=policy_to_dict(policy),
                create_time=now,
            )
        )
