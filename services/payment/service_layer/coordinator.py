"""Drives cross-node settlements and transfers to an all-or-nothing end.

For a bill with grantors on other nodes: find the most the bill could take from
each of them, write the saga intent (PREPARING), ask every other node in
parallel to hold up to that (each holds what its grantor can give), then
plan the split with what is held and write the local settlement together with
the decision (PREPARED or COMMITTING). Phase two repeats idempotent commit/abort/refund calls
until every participant acknowledged; a recovery loop does the same after a
crash. A request that fails between the intent and the decision leaves its saga
PREPARING, which recovery turns into ABORTING (presumed abort).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from services.common.background import BackgroundTasks
from services.common.clock import Clock
from services.common.deadlines import without_call_deadline
from services.common.interceptors import RpcFailure
from services.common.runner import UseCaseRunner
from services.payment.adapters.node_repository import NodeTransaction, PageEnd
from services.payment.routing import Node, RoutingTable
from services.payment.service_layer import coordination, ids, participant, settlements, wallets
from services.payment.service_layer.coordination import Outcome, Prepared, RemoteCapacity
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.deduction import fits_one_round
from shared.errors import DomainError, ErrorKind, Reason
from shared.payers import PayerGrant
from shared.regions import province_of
from shared.settlements import Bill, Settlement

log = logging.getLogger(__name__)

# How many records of each queue one recovery pass reads.
RECOVERY_PAGE = 100


def _get_settlement(settlement_id: str) -> Any:
    from gongji.payment.v1 import payment_service_pb2 as api

    return api.GetSettlementRequest(settlement_id=settlement_id)


class NodeClient(Protocol):
    async def capacity(
        self, peer: Node, beneficiary: str, grants: list[PayerGrant], at: datetime, ceiling_fen: int
    ) -> list[RemoteCapacity]: ...
    async def prepare(self, peer: Node, transaction_id: str, coordinator_province: str, bill: Bill,
                      legs: list[dict[str, Any]], grants: list[PayerGrant], expire_time: datetime,
                      up_to: bool = False, capture_at_most: int | None = None,
                      ) -> tuple[list[RemoteCapacity], bool]: ...  # fmt: skip
    async def commit(self, peer: Node, transaction_id: str, captures: dict[int, int]) -> None: ...
    async def abort(self, peer: Node, transaction_id: str, coordinator_province: str) -> None: ...
    async def refund(self, peer: Node, transaction_id: str) -> None: ...
    async def outcome(self, peer: Node, transaction_id: str, province: str) -> Outcome: ...
    async def credit_wallet(self, peer: Node, transfer_id: str, beneficiary: str, grantor: str, binding_id: str,
                            amount_fen: int, source_province: str) -> None: ...  # fmt: skip
    async def decline_wallet_credit(self, peer: Node, transfer_id: str, beneficiary: str, amount_fen: int,
                                    source_province: str) -> bool: ...  # fmt: skip
    async def forward(self, peer: Node, method: str, request: Any, acting_for: str) -> Any: ...


class AnsweredBefore(Exception):
    """The request was answered before: nothing is to be held for it again."""


def never_answered(_: PaymentUnitOfWork) -> bool:
    return False


# Test hook: a fault test names a step, and the node kills itself there.
FailPoint = Callable[[str], None]


def no_failpoint(_: str) -> None:
    return None


class Coordinator:
    def __init__(
        self,
        runner: UseCaseRunner[PaymentUnitOfWork],
        routing: RoutingTable,
        client: NodeClient,
        clock: Clock,
        lease: timedelta = timedelta(seconds=30),
        participant_grace: timedelta = timedelta(minutes=10),
        failpoint: FailPoint = no_failpoint,
        one_round: bool = True,
    ) -> None:
        self._run = runner
        self._one_round = one_round
        self._routing = routing
        self._client = client
        self._clock = clock
        self._lease = lease
        self._grace = participant_grace
        self._failpoint = failpoint
        self._background = BackgroundTasks()
        # Where each recovery queue's last page ended. A pass reads on from there, so records it
        # cannot finish (a node that refuses or does not answer) are each tried once a round and
        # never fill every pass ahead of the rest; a short page was the end, and the next pass
        # starts at the front again. Ordered by what never changes (not a stamp of this node's
        # clock, which may be stepped back): every record is reached within a bounded number of passes.
        self._resume: dict[str, PageEnd | None] = {}

    @property
    def routing(self) -> RoutingTable:
        return self._routing

    async def forward(self, peer: Node, method: str, request: Any, acting_for: str) -> Any:
        """Passes a request to the node it belongs to, in the name of `acting_for` (a SPIFFE ID)."""
        return await self._client.forward(peer, method, request, acting_for)

    async def forward_to_holder(self, method: str, request: Any, settlement_id: str, acting_for: str) -> Any | None:
        """Sends an id-based request to the node that holds the settlement; None when no node has it
        (for `acting_for`: another institution's settlement is not found for it anywhere). A node
        that does not answer may be the holder, so then the request is UNAVAILABLE, to be retried
        with the same key, not answered NOT_FOUND for good."""
        unreachable: DomainError | None = None
        for peer in self._routing.peers:
            try:
                found = await self._client.forward(peer, "GetSettlement", _get_settlement(settlement_id), acting_for)
            except DomainError as error:
                if error.kind is ErrorKind.UNAVAILABLE:
                    unreachable = error
                continue
            except RpcFailure:
                continue
            if found.settlement.settlement_id:
                return await self._client.forward(peer, method, request, acting_for)
        if unreachable is not None:
            raise unreachable
        return None

    async def reverse_elsewhere(self, request: Any, acting_for: str) -> Any | None:
        """A reversal (冲正) of a request this node never saw, sent on to every other node in the
        caller's name: the answer of the node that had the original, or None when none had it.
        Every node that did not have it now refuses the original if it ever arrives. A node that
        does not answer makes the whole reversal UNAVAILABLE, to be retried with the same key."""
        unreachable: DomainError | None = None
        for peer in self._routing.peers:
            try:
                answer = await self._client.forward(peer, "ReverseRequest", request, acting_for)
            except DomainError as error:
                if error.kind is not ErrorKind.UNAVAILABLE:
                    raise
                unreachable = error
                continue
            if answer.original_found:
                return answer
        if unreachable is not None:
            raise unreachable
        return None

    def needs_other_nodes(self, bill: Bill, payers: settlements.Payers) -> bool:
        """Whether settling this bill would hold money on another node first."""
        return bool(self._remote_grants(bill, payers))

    def _remote_grants(self, bill: Bill, payers: settlements.Payers) -> dict[str, list[PayerGrant]]:
        far: dict[str, list[PayerGrant]] = defaultdict(list)
        for grant in payers.grants:
            if grant.grantor_id_number != bill.patient_id_number and not self._routing.is_local(grant.grantor_admdvs):
                far[province_of(grant.grantor_admdvs)].append(grant)
        return dict(far)

    async def remote_capacities(self, bill: Bill, payers: settlements.Payers) -> dict[str, RemoteCapacity]:
        """What each grantor on another node can give towards this bill now, by binding id
        (asked of those nodes; nothing is held). Each is asked up to the bill's self-pay, the most
        the bill could take from one grantor, so no node tells more of its grantors' balances."""
        far = self._remote_grants(bill, payers)
        found: dict[str, RemoteCapacity] = {}
        answers = await asyncio.gather(
            *(self._client.capacity(
                self._routing.owner_of_province(p), bill.patient_id_number, g, self._clock.now(), bill.self_pay_fen
              ) for p, g in far.items())
        )  # fmt: skip
        for capacities in answers:
            found.update({c.binding_id: c for c in capacities})
        return found

    async def prepare(
        self,
        bill: Bill,
        payers: settlements.Payers,
        expire_time: datetime,
        answered: Callable[[PaymentUnitOfWork], bool] = never_answered,
        exact: bool = False,
        known: dict[str, RemoteCapacity] | None = None,
        one_round: bool = False,
    ) -> Prepared | None:
        """Holds this bill's legs on other nodes; None when every payer is local. Raises
        AnsweredBefore, holding nothing, when `answered` says the request has its answer already
        (asked in the unit of work that writes the saga's intent).

        Each grantor holds up to a ceiling, so the other nodes need not be asked first what their
        grantors can give; what the settlement does not take is released when it is captured.
        An authorisation, whose holds stay until its capture, is `exact`: the nodes are asked
        first (`known`) and hold each leg's part, no more. So is a node of a version before
        ceilings, which holds every leg in full or refuses it (INSUFFICIENT_FUNDS).

        With `one_round`, a settlement (not an authorisation) whose payers on other nodes are all
        kept by one node, where what they give changes nothing the other payers give (they come
        last in a sequential order, or are one grant alone in even shares:
        shared.deduction.fits_one_round), is captured there at once: no hold and no second call.
        The settlement must then take just what was captured (Prepared.captured); if it cannot,
        the saga is aborted and the capture refunded."""
        far = self._remote_grants(bill, payers)
        if not far:
            return None
        if exact and known is None:
            known = await self.remote_capacities(bill, payers)
        now = self._clock.now()
        local = self._routing.me.provinces
        # Without `known`, each remote grantor is asked to hold up to the most the bill could take
        # from it and holds as much of that as it can give; the settlement plans with what is held.
        remote = [g for grants in far.values() for g in grants]
        grant_of = {g.binding_id: g for g in remote}
        transaction_id = ids.new_id()
        coordinator_province = province_of(bill.institution_admdvs)
        position = {g.binding_id: number for number, g in enumerate(payers.grants)}

        def plan_and_begin(uow: PaymentUnitOfWork) -> tuple[dict[str, list[dict[str, Any]]], int, int]:
            """The legs to hold on each other node and, when there are any, the saga's intent; and
            what this node's payers could give, which those legs count on. Its reads are advice (the
            settlement checks the key and the payers again under its locks) and the intent is one
            INSERT, so no transaction wraps them."""
            if answered(uow):
                raise AnsweredBefore
            ceilings, local_fen, together = settlements.remote_ceilings(uow, bill, payers, remote, local, now, known)
            participants: dict[str, list[dict[str, Any]]] = defaultdict(list)
            # Legs numbered in the payers' order, which a node capturing at once follows.
            in_order = sorted(ceilings.items(), key=lambda item: position[item[0]])
            for number, (binding_id, amount) in enumerate(in_order, start=1):
                grant = grant_of[binding_id]
                participants[province_of(grant.grantor_admdvs)].append(
                    {"leg_no": number, "payer_id_number": grant.grantor_id_number, "binding_id": binding_id,
                     "amount_fen": amount, "captured_fen": 0}
                )  # fmt: skip
            if participants:
                coordination.begin(
                    uow, transaction_id, "SETTLEMENT", dict(participants), coordinator_province,
                    bill.patient_id_number, bill.institution_code, expire_time + self._grace, self._clock.now(),
                )  # fmt: skip
            return dict(participants), local_fen, together

        participants, local_fen, together = await self._run.transact(plan_and_begin, statement_by_statement=True)
        if not participants:
            return Prepared(transaction_id, {}, local, local_fen=local_fen)
        self._failpoint("before_remote_hold")
        nodes = self._by_node(participants)
        at_once = (
            one_round
            and self._one_round
            and not exact
            and len(nodes) == 1
            and _fits_one_round(bill, payers, set(grant_of))
        )
        try:
            results = await asyncio.gather(
                *(
                    self._client.prepare(
                        peer, transaction_id, coordinator_province, bill, legs,
                        [grant_of[leg["binding_id"]] for leg in legs], expire_time + self._grace, up_to=True,
                        capture_at_most=together if at_once else None,
                    )
                    for peer, _, legs in nodes
                ),
                return_exceptions=True,
            )  # fmt: skip
        except asyncio.CancelledError:
            # The caller gave up (its deadline, a cancel) while the other nodes were holding. The
            # request's task ends here, so the abort runs on its own: the payers' money is free
            # again at once, not after recovery's lease.
            self._detached(self._abandon(transaction_id))
            raise
        failures = [r for r in results if isinstance(r, BaseException)]
        answers = [r for r in results if not isinstance(r, BaseException)]
        held = {
            # A node of a version before ceilings does not say the payer's region: the binding service's.
            c.binding_id: c if c.admdvs else replace(c, admdvs=grant_of[c.binding_id].grantor_admdvs)
            for capacities, _ in answers for c in capacities
        }  # fmt: skip
        captured = any(captured_there for _, captured_there in answers)
        if failures or not held:
            # Nothing held anywhere is no failure: the bill is settled from this node's payers alone.
            await self._abort(transaction_id)
        if not failures:
            self._failpoint("after_remote_hold")
            if not held:
                return Prepared(transaction_id, {}, local, local_fen=local_fen)
            return Prepared(transaction_id, held, local, participants, coordinator_province, local_fen, captured)
        first = failures[0]
        if isinstance(first, DomainError) and first.kind is ErrorKind.UNAVAILABLE:
            raise first
        if isinstance(first, DomainError) and first.reason is Reason.INSUFFICIENT_FUNDS and known is None:
            log.info("saga %s: a node refused a ceiling (a version before ceilings); asking capacity first",
                     transaction_id)  # fmt: skip
            return await self.prepare(bill, payers, expire_time, answered, exact=True)
        if isinstance(first, DomainError) and first.reason is Reason.INSUFFICIENT_FUNDS:
            raise DomainError(
                Reason.CONCURRENT_CHANGE,
                "a payer's balance changed while the settlement was being prepared; retry with the same request_id",
            )
        raise first

    def _detached(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Runs `work` as a task of its own, outside the caller's deadline and cancellation."""
        return self._background.start(work, context=without_call_deadline())

    async def _abort(self, transaction_id: str) -> None:
        """Aborts a saga still PREPARING on every node it reached; one already decided is finished."""
        await self._write(lambda uow: coordination.abandon(uow, transaction_id, self._clock.now()))
        await self.finish(transaction_id)

    async def _abandon(self, transaction_id: str) -> None:
        """_abort for the work a cancelled request left, which no caller awaits: a failure is logged."""
        try:
            await self._abort(transaction_id)
        except Exception as error:
            # Recovery aborts it after the lease. The class only: a driver's message may quote a row.
            log.warning("saga %s: the abort after a cancelled request failed (%s); recovery will abort it",
                        transaction_id, type(error).__name__)  # fmt: skip

    async def settled(self, prepared: Prepared, settlement: Settlement | None) -> None:
        """After the request that prepared it: an orphan (refused, replayed) is aborted; a decision is applied.

        `settlement` is the one this request wrote for the saga, in the transaction that decided
        the saga, so it is no orphan and its decision is known without reading it back; None when
        the request's answer is anything else.
        """
        self._failpoint("after_local_commit")
        # Shielded and without the caller's deadline: a request cut off after its holds were placed
        # still releases or commits them now, not at recovery's next pass or after the lease.
        if settlement is None:
            await asyncio.shield(self._detached(self._abandon(prepared.transaction_id)))
            return
        decision = coordination.settlement_decision(prepared, settlement)
        if decision.state in coordination.FINAL_OF:
            await asyncio.shield(self._detached(self._tell(decision)))

    async def finish(self, transaction_id: str) -> None:
        """Sends the decided phase to every participant not yet acknowledged; safe to repeat."""
        txn = await self._decided(transaction_id)
        if txn is None:
            return
        if txn.kind == "TRANSFER" and txn.state == coordination.COMMITTING:
            # A transfer not accepted by 06:00 the next day goes back to its sender: past that, its
            # credit is not sent again (by a retry of the transfer, say), it is declined and refunded.
            row = await self._run.query(lambda uow: uow.transfers.get(transaction_id))
            if row is not None and row.state == "PENDING" and wallets.is_due_back(row.create_time, self._clock.now()):
                await self._give_back(row)
                return
        await self._tell(coordination.decision_of(txn))

    async def _decided(self, transaction_id: str) -> NodeTransaction | None:
        """The saga, when it has a decision to send (a final phase); else None."""
        txn = await self._run.query(lambda uow: uow.node_transactions.get(transaction_id))
        return txn if txn is not None and txn.state in coordination.FINAL_OF else None

    def _by_node(
        self, participants: dict[str, list[dict[str, Any]]]
    ) -> list[tuple[Node, list[str], list[dict[str, Any]]]]:
        """Each other node with the provinces of its own that a saga has legs in, and those legs.
        A node keeps one record per transaction whatever province its payers live in, and each step
        (hold, capture, release, refund) applies to that whole record: so a node is sent every step
        once, with all its legs, never once per province."""
        groups: dict[str, tuple[Node, list[str], list[dict[str, Any]]]] = {}
        for province, legs in participants.items():
            peer = self._routing.owner_of_province(province)
            _, provinces, all_legs = groups.setdefault(peer.name, (peer, [], []))
            provinces.append(province)
            all_legs.extend(legs)
        return [(peer, provinces, sorted(legs, key=lambda leg: int(leg["leg_no"])))
                for peer, provinces, legs in groups.values()]  # fmt: skip

    async def _tell(self, txn: coordination.Decision) -> None:
        transaction_id = txn.transaction_id
        acknowledged = list(txn.acknowledged)
        try:
            nodes = self._by_node(txn.participants)
        except DomainError as error:  # a province the routing file no longer gives any node
            log.warning("saga %s: %s: %s; will retry", transaction_id, txn.state, error.reason.value)
            return
        for peer, provinces, legs in nodes:
            if set(provinces) <= set(txn.acknowledged):
                continue
            try:
                if txn.kind == "TRANSFER":
                    leg = legs[0]
                    self._failpoint("before_wallet_credit")
                    await self._client.credit_wallet(
                        peer, transaction_id, leg["beneficiary_id_number"], leg["payer_id_number"], leg["binding_id"],
                        leg["amount_fen"], txn.coordinator_province,
                    )  # fmt: skip
                    self._failpoint("after_wallet_credit")
                elif txn.state == coordination.COMMITTING:
                    self._failpoint("before_remote_commit")
                    await self._client.commit(
                        peer, transaction_id, {int(x["leg_no"]): int(x["captured_fen"]) for x in legs}
                    )
                elif txn.state == coordination.ABORTING:
                    await self._abort_or_refund(peer, transaction_id, txn.coordinator_province)
                else:
                    # The undo may have been decided before the commit reached this node (it was
                    # down): the commit goes first, a no-op where it arrived, then the refund.
                    await self._client.commit(
                        peer, transaction_id, {int(x["leg_no"]): int(x["captured_fen"]) for x in legs}
                    )
                    await self._client.refund(peer, transaction_id)
            except DomainError as error:
                log.warning(
                    "saga %s: %s on %s: %s; will retry", transaction_id, txn.state, peer.name, error.reason.value
                )
                continue
            acknowledged += [province for province in provinces if province not in acknowledged]
            # A settlement's acknowledgement is one conditional UPDATE; a transfer's completes it too.
            await self._run.transact(
                lambda uow, so_far=tuple(acknowledged): self._note(uow, txn, list(so_far)),
                statement_by_statement=txn.kind != "TRANSFER",
            )

    async def _abort_or_refund(self, peer: Node, transaction_id: str, coordinator_province: str) -> None:
        """Releases what the saga holds on `peer`; what a node captured at once (one round) and this
        node's settlement never took is refunded there instead."""
        try:
            await self._client.abort(peer, transaction_id, coordinator_province)
        except DomainError as error:
            if error.reason is not Reason.ALREADY_CAPTURED:
                raise
            await self._client.refund(peer, transaction_id)

    def _page_read(self, queue: str, ends: list[PageEnd]) -> None:
        """Notes where this pass's page of `queue` ended (see _resume)."""
        self._resume[queue] = ends[-1] if len(ends) == RECOVERY_PAGE else None

    def _note(self, uow: PaymentUnitOfWork, txn: coordination.Decision, acknowledged: list[str]) -> None:
        """The participants that applied the decided phase; a wallet transfer whose credit is
        acknowledged is complete, in the same transaction."""
        state = coordination.acknowledge(uow, txn, acknowledged, self._clock.now())
        if txn.kind == "TRANSFER" and state == coordination.COMMITTED:
            wallets.complete_transfer(uow, txn.transaction_id, self._clock.now())

    async def refund_unaccepted_transfers(self) -> int:
        """Gives back every transfer still not accepted at 06:00 the day after it was made.

        The receiving node is asked first: it either reports the credit (whose
        acknowledgement was lost; the saga then completes) or refuses every later
        credit, and only then is the money given back. An unreachable node keeps
        the transfer pending until it answers.
        """
        now = self._clock.now()
        after = self._resume.get("transfers")
        pending = await self._run.query(lambda uow: uow.transfers.pending(RECOVERY_PAGE, after))
        self._page_read("transfers", [(row.create_time, row.transfer_id) for row in pending])
        refunded = 0
        for row in pending:
            if wallets.is_due_back(row.create_time, now) and await self._give_back(row):
                refunded += 1
        return refunded

    async def _give_back(self, row: Any) -> bool:
        """Gives a transfer due back to its sender once the receiving node promised never to credit
        it; completes it instead when that node had credited it. True when it was refunded now."""
        try:
            peer = self._routing.owner_of_province(row.target_province)
            credited = await self._client.decline_wallet_credit(
                peer, row.transfer_id, row.beneficiary_id_number, row.amount_fen, row.source_province
            )
        except DomainError as error:
            log.warning("transfer %s is due for refund but province %s's node did not answer: %s",
                        row.transfer_id, row.target_province, error.reason.value)  # fmt: skip
            return False
        if credited:  # its credit's acknowledgement was lost: the saga completes instead
            txn = await self._decided(row.transfer_id)
            if txn is not None:
                await self._tell(coordination.decision_of(txn))
            return False
        if await self._write(lambda uow: wallets.refund_unaccepted_transfer(uow, row.transfer_id, self._clock.now())):
            log.info("transfer %s was not accepted by 06:00 the next day; refunded to its sender", row.transfer_id)
            return True
        return False

    async def recover_once(self) -> int:
        """One pass of crash recovery, as coordinator and as participant; returns sagas touched."""
        refunded = await self.refund_unaccepted_transfers()
        now = self._clock.now()

        after = self._resume.get("sagas")

        def stale(uow: PaymentUnitOfWork) -> tuple[list[PageEnd], list[PageEnd]]:
            # Times stamped by this node's clock, which may have been stepped back since (NTP): a
            # decided saga is retried however recently it seems to have been tried, and an intent
            # stamped more than a lease ahead of now is as stale as one a lease old. Abandoning a
            # request still running is safe: it then fails retryably (coordination.record). Each
            # orphan leaves PREPARING when it is abandoned, so they need no paging.
            orphans = uow.node_transactions.unfinished(
                [coordination.PREPARING], RECOVERY_PAGE, idle=(now - self._lease, now + self._lease)
            )
            pending = uow.node_transactions.unfinished(coordination.UNFINISHED, RECOVERY_PAGE, after=after)
            return orphans, pending

        orphans, pending = await self._run.query(stale)
        self._page_read("sagas", pending)
        for _, transaction_id in orphans:
            await self._abort(transaction_id)
        for _, transaction_id in pending:
            await self.finish(transaction_id)
        held_after = self._resume.get("holds")
        expired = await self._run.query(
            lambda uow: participant.expired_with_provinces(uow, now, RECOVERY_PAGE, held_after)
        )
        self._page_read("holds", [(txn.expire_time, txn.transaction_id) for txn, _ in expired])
        for txn, provinces in expired:
            try:
                peer = self._routing.owner_of_province(txn.coordinator_province)
                # The coordinator tells each province's legs apart: asked for every one held here.
                found = [await self._client.outcome(peer, txn.transaction_id, p) for p in provinces]
            except DomainError:
                continue  # in doubt: keep holding until the coordinator answers
            outcome = found[0].state if len({f.state for f in found}) == 1 else "PENDING"
            captures = {leg_no: fen for f in found for leg_no, fen in f.captures.items()}
            if outcome == "COMMITTED":
                await self._write(
                    lambda uow, t=txn, c=captures: participant.commit(uow, t.transaction_id, c, self._clock.now())
                )
            elif outcome == "ABORTED":
                await self._write(
                    lambda uow, t=txn: participant.abort(
                        uow, t.transaction_id, t.coordinator_province, self._clock.now()
                    )
                )
        return refunded + len(orphans) + len(pending) + len(expired)

    async def _write(self, fn: Callable[[PaymentUnitOfWork], Any]) -> Any:
        return await self._run.transact(fn)


def _fits_one_round(bill: Bill, payers: settlements.Payers, remote: set[str]) -> bool:
    """Whether the grants in `remote`, kept by one other node, may be captured there at once
    (shared.deduction.fits_one_round)."""
    order = [g.binding_id for g in payers.grants if g.grantor_id_number != bill.patient_id_number]
    return fits_one_round(order, payers.mode, remote)
