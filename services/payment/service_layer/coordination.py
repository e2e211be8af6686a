"""The coordinator's durable record of cross-node work.

A settlement with legs on other nodes' accounts gets a saga row: PREPARING is
written before any remote hold is asked for; PREPARED or COMMITTING is written
in the same transaction as the local settlement; ABORTING and REFUNDING with the
local release or refund. A recovery loop drives every row to COMMITTED, ABORTED
or REFUNDED by repeating idempotent node-to-node calls, so a crash at any step
finishes or undoes the work after restart. Participants that hold prepared legs
past their expiry ask the coordinator; an unknown transaction is presumed aborted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.payment.adapters.node_repository import NodeTransaction
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.errors import DomainError, Reason
from shared.settlements import Settlement, SettlementState

PREPARING, PREPARED = "PREPARING", "PREPARED"
COMMITTING, COMMITTED = "COMMITTING", "COMMITTED"
ABORTING, ABORTED = "ABORTING", "ABORTED"
REFUNDING, REFUNDED = "REFUNDING", "REFUNDED"
UNFINISHED = [COMMITTING, ABORTING, REFUNDING]
FINAL_OF = {COMMITTING: COMMITTED, ABORTING: ABORTED, REFUNDING: REFUNDED}


@dataclass(frozen=True)
class RemoteCapacity:
    """What a grantor whose account another node holds can pay, as that node said."""

    binding_id: str
    grantor_id_number: str
    limit_fen: int
    available_fen: int
    admdvs: str


@dataclass(frozen=True)
class Prepared:
    """Holds already placed on other nodes for one settlement."""

    transaction_id: str
    capacities: dict[str, RemoteCapacity]  # by binding id; limit = the prepared amount
    local_provinces: frozenset[str]
    participants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # province → legs held there
    coordinator_province: str = ""
    # What this node's payers could give when the holds were asked for, which they count on.
    local_fen: int = 0
    # The other node captured its legs at once (one round): the settlement must take exactly
    # what each captured, and the saga is committed with it.
    captured: bool = False


@dataclass(frozen=True)
class Decision:
    """A saga's decided phase: what its coordinator tells each participant not yet acknowledged."""

    transaction_id: str
    kind: str
    state: str
    participants: dict[str, list[dict[str, Any]]]
    coordinator_province: str
    acknowledged: tuple[str, ...] = ()


def decision_of(txn: NodeTransaction) -> Decision:
    return Decision(
        txn.transaction_id, txn.kind, txn.state, txn.participants, txn.coordinator_province, tuple(txn.acknowledged)
    )


def settlement_decision(prepared: Prepared, settlement: Settlement) -> Decision:
    """The saga's phase once `settlement` is written: COMMITTING with what each remote leg captured,
    or PREPARED (the holds stay until the settlement is captured or released); COMMITTED when the
    other node captured at once, as nothing is left to tell it."""
    participants = _with_captures(prepared.participants, settlement)
    state = COMMITTING if settlement.state is SettlementState.CAPTURED else PREPARED
    if prepared.captured:
        state = COMMITTED
    return Decision(prepared.transaction_id, "SETTLEMENT", state, participants, prepared.coordinator_province)


def begin(
    uow: PaymentUnitOfWork,
    transaction_id: str,
    kind: str,
    participants: dict[str, list[dict[str, Any]]],
    coordinator_province: str,
    beneficiary: str,
    institution_code: str,
    expire_time: datetime,
    now: datetime,
) -> None:
    """Writes the intent before any remote effect, so recovery knows what to undo."""
    uow.node_transactions.add(
        NodeTransaction(
            transaction_id, kind, PREPARING, participants, coordinator_province, beneficiary, institution_code,
            expire_time, now, now,
        )
    )  # fmt: skip


def record(uow: PaymentUnitOfWork, settlement: Settlement, prepared: Prepared, now: datetime) -> None:
    """Binds the saga to the settlement just written: PREPARED, or COMMITTING when captured.

    Only a saga still PREPARING is bound: one that recovery abandoned meanwhile (its request
    outlived the lease) is being aborted on the other nodes, so the settlement must not stand."""
    decision = settlement_decision(prepared, settlement)
    if not uow.node_transactions.leave_preparing(decision.transaction_id, decision.state, decision.participants, now):
        raise DomainError(
            Reason.CONCURRENT_CHANGE,
            "the holds on other nodes lapsed before the settlement was written; retry with the same request_id",
        )


def decide(uow: PaymentUnitOfWork, settlement: Settlement, state: str, now: datetime) -> None:
    """Moves a cross-node settlement's saga to COMMITTING, ABORTING or REFUNDING."""
    if not any(leg.is_remote for leg in settlement.legs):
        return
    txn = uow.node_transactions.get(settlement.settlement_id, for_update=True)
    if txn is None:
        return
    txn.participants = _with_captures(txn.participants, settlement)
    txn.state = state
    txn.acknowledged = []
    uow.node_transactions.save(txn, now)


def _with_captures(
    participants: dict[str, list[dict[str, Any]]], settlement: Settlement
) -> dict[str, list[dict[str, Any]]]:
    """The saga's legs, each with what the settlement's remote leg under the same binding captured."""
    captured = {leg.binding_id: leg.captured_fen for leg in settlement.legs if leg.is_remote}
    return {
        province: [{**leg, "captured_fen": captured.get(leg["binding_id"], 0)} for leg in legs]
        for province, legs in participants.items()
    }


def acknowledge(uow: PaymentUnitOfWork, decision: Decision, acknowledged: list[str], now: datetime) -> str:
    """Notes that the participants in `acknowledged` applied the decided phase; the saga is final
    once all have. Returns the state after. Written without reading the saga back: the phase is
    the one decided, and a saga that left it meanwhile (another finisher completed it, or it moved
    on to a refund) is left as it is and its state is read and returned."""
    done = set(acknowledged) >= set(decision.participants)
    state = FINAL_OF[decision.state] if done else decision.state
    if uow.node_transactions.acknowledge(decision.transaction_id, decision.state, state, acknowledged, now):
        return state
    txn = uow.node_transactions.get(decision.transaction_id)
    return txn.state if txn else ABORTED


def abandon(uow: PaymentUnitOfWork, transaction_id: str, now: datetime) -> bool:
    """A saga still PREPARING (its request failed or the node crashed) is aborted."""
    txn = uow.node_transactions.get(transaction_id, for_update=True)
    if txn is None or txn.state != PREPARING:
        return False
    txn.state = ABORTING
    txn.acknowledged = []
    uow.node_transactions.save(txn, now)
    return True


@dataclass(frozen=True)
class LegOutcome:
    leg_no: int
    payer_id_number: str
    binding_id: str
    # What the leg captured; for a wallet transfer, the amount debited from the grantor.
    amount_fen: int


@dataclass(frozen=True)
class Outcome:
    state: str
    legs: tuple[LegOutcome, ...] = ()
    beneficiary_id_number: str = ""

    @property
    def captures(self) -> dict[int, int]:
        return {leg.leg_no: leg.amount_fen for leg in self.legs}


def outcome(uow: PaymentUnitOfWork, transaction_id: str, province: str) -> Outcome:
    """What a participant in `province` should do with its prepared legs, or, for a wallet
    transfer, what the sender debited for the wallet there. The beneficiary is named only to a
    province the transaction has legs in: a node asking for any other of its provinces learns
    nobody's ID number."""
    txn = uow.node_transactions.get(transaction_id)
    if txn is None or txn.state in (ABORTING, ABORTED):
        return Outcome(ABORTED)
    if txn.state not in (COMMITTING, COMMITTED, REFUNDING, REFUNDED):
        return Outcome("PENDING")
    captured = "amount_fen" if txn.kind == "TRANSFER" else "captured_fen"
    legs = tuple(
        LegOutcome(int(leg["leg_no"]), str(leg.get("payer_id_number", "")), str(leg.get("binding_id", "")),
                   int(leg.get(captured, 0)))
        for leg in txn.participants.get(province, [])
    )  # fmt: skip
    return Outcome(COMMITTED, legs, txn.beneficiary_id_number if province in txn.participants else "")
