"""Checks a payment node makes before it applies what another node asks of it.

Node certificates prove which node is calling, not that what it says is true. So a
participant holds only through grants it resolved with the binding service itself, and a
wallet is credited only after the sending node confirms it debited the grantor that very
amount for that wallet, under a binding the binding service knows and holds active, within the
per-transfer limit of the grantor's region; and the credit itself counts against the transfers a
day the grantor's region allows, as far as the receiving node sees them (participant.credit_wallet).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.exc import IntegrityError

from services.common.clock import Clock
from services.common.runner import UseCaseRunner
from services.payment.routing import Node, RoutingTable
from services.payment.service_layer import participant
from services.payment.service_layer.binding_directory import (
    BindingDirectory,
    PayerQuery,
    PayerReads,
    on_current_payers,
    require_current,
)
from services.payment.service_layer.coordination import LegOutcome, Outcome
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.errors import DomainError, Reason
from shared.payers import PayerGrant
from shared.policy import UseCategory


class OutcomeSource(Protocol):
    async def outcome(self, peer: Node, transaction_id: str, province: str) -> Outcome: ...


async def own_grants(
    directory: BindingDirectory | PayerReads, beneficiary: str, use: UseCategory, institution_admdvs: str,
    chronic: bool, at: datetime,
) -> list[PayerGrant]:  # fmt: skip
    """The beneficiary's grants for this bill as the binding service says now."""
    payers = await directory.payers(PayerQuery(beneficiary, use, institution_admdvs, chronic, at))
    if isinstance(payers, DomainError):
        raise payers
    return list(payers.grants)


async def confirmed_grants(directory: BindingDirectory, beneficiary: str, grants: list[PayerGrant]) -> set[str]:
    """The binding ids among `grants` that the binding service says are active bindings of
    their grantor to `beneficiary`: a peer asking what a grantor can give learns nothing of
    anyone it names under an invented or foreign binding."""
    unique = {grant.binding_id: grant for grant in grants}
    found = await asyncio.gather(*(directory.binding(binding_id) for binding_id in unique))
    return {
        binding_id
        for (binding_id, grant), pair in zip(unique.items(), found, strict=True)
        if pair is not None and pair.active and pair.grantor_id_number == grant.grantor_id_number
        and pair.beneficiary_id_number == beneficiary
    }  # fmt: skip


async def prepare_on_own_grants(
    runner: UseCaseRunner[PaymentUnitOfWork], directory: BindingDirectory, clock: Clock, transaction_id: str,
    coordinator_province: str, beneficiary: str, institution_code: str, use: UseCategory, institution_admdvs: str,
    chronic: bool, legs: list[participant.LegRequest], expire: datetime, up_to: bool = False,
    capture_at_most: int | None = None,
) -> list[participant.HeldLeg]:  # fmt: skip
    """Holds the legs a coordinator asks for (with `up_to`, as much of each as its grantor can
    give), only through grants this node resolved itself, and only on payers still current at
    the commit (a payer change announced meanwhile: again). A retried prepare holds what it
    held, whatever the binding service says by then."""

    async def attempt(reads: PayerReads) -> list[participant.HeldLeg]:
        try:
            grants = await own_grants(reads, beneficiary, use, institution_admdvs, chronic, clock.now())
        except DomainError:
            # Asked only now, so a first prepare costs no read of its own: a retry needs no grants.
            if await runner.query(lambda uow: uow.participants.coordinator_of(transaction_id)) is None:
                raise
            grants = []

        def prepare(uow: PaymentUnitOfWork, seen_before: bool) -> list[participant.HeldLeg]:
            held = participant.prepare(
                uow, transaction_id, coordinator_province, beneficiary, institution_code, legs, grants, expire,
                clock.now(), up_to, seen_before, capture_at_most,
            )  # fmt: skip
            require_current(reads)
            return held

        # A first prepare reads nothing to learn whether it came before; anything that refuses
        # it (a retry's record, its own hold counted against it, a refusal) is asked again so.
        try:
            return await runner.transact(lambda uow: prepare(uow, seen_before=False))
        except (IntegrityError, DomainError):
            return await runner.transact(lambda uow: prepare(uow, seen_before=True))

    return await on_current_payers(directory, attempt)


async def abort(
    runner: UseCaseRunner[PaymentUnitOfWork], clock: Clock, transaction_id: str, coordinator_province: str
) -> bool:
    """Releases what a transaction holds here (participant.abort). A coordinator that gave up
    waiting for a prepare aborts while that prepare may still run here: the abort then finds no
    record and marks the transaction aborted, and if the prepare's record is committed first, the
    mark conflicts with it. The abort is run again then, and releases what the prepare held."""

    def run(uow: PaymentUnitOfWork) -> bool:
        return participant.abort(uow, transaction_id, coordinator_province, clock.now())

    try:
        return await runner.transact(run)
    except IntegrityError:
        return await runner.transact(run)


@dataclass(frozen=True)
class TransferClaim:
    """A wallet credit another node asks for."""

    transfer_id: str
    beneficiary_id_number: str
    grantor_id_number: str
    binding_id: str
    amount_fen: int
    source_province: str
    wallet_province: str


def _rejected(claim: TransferClaim, why: str) -> DomainError:
    return DomainError(
        Reason.PEER_CLAIM_REJECTED,
        f"transfer {claim.transfer_id} is not credited: {why}",
        metadata={"transfer_id": claim.transfer_id},
    )


async def confirm_transfer(
    claim: TransferClaim, routing: RoutingTable, nodes: OutcomeSource, directory: BindingDirectory
) -> int | None:
    """Refuses the claim (PEER_CLAIM_REJECTED) unless it holds; else the transfers a day the
    grantor's region allows (None: no limit), for the credit to count against."""
    sender = routing.owner_of_province(claim.source_province)
    found = await nodes.outcome(sender, claim.transfer_id, claim.wallet_province)
    expected = LegOutcome(1, claim.grantor_id_number, claim.binding_id, claim.amount_fen)
    if (
        found.state != "COMMITTED"
        or found.legs != (expected,)
        or found.beneficiary_id_number != (claim.beneficiary_id_number)
    ):
        raise _rejected(claim, f"node {sender.name} does not confirm that debit")
    pair = await directory.binding(claim.binding_id)
    if pair is None or (pair.grantor_id_number, pair.beneficiary_id_number) != (
        claim.grantor_id_number,
        claim.beneficiary_id_number,
    ):
        raise _rejected(claim, "the binding service knows no such binding between the two")
    if not pair.active:
        # Only an active binding carries a transfer: not one ended, suspended or still under review.
        raise _rejected(claim, "the binding between the two is not active")
    limits = await directory.wallet_limits(pair.grantor_admdvs)
    limit = limits.max_fen
    if limit is not None and claim.amount_fen > limit:
        raise _rejected(claim, f"it is above the {limit} fen a transfer may carry in the grantor's region")
    return limits.transfers_per_day
