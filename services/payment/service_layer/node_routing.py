"""Which payment node answers a request: this one, the node that keeps the institution's
province, or the node that holds the settlement. `on_bill_owner`, `on_settlement_holder` and
`on_original_holder` run a call there or here; the latter two, after running it here, apply the
cross-node decision it made (`follow_up`).

A request another node forwarded here is answered here: forwarding it on would send it back
and forth between nodes that both do not know it, so such a bill is refused instead."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from services.common.interceptors import RpcFailure
from services.common.runner import UseCaseRunner
from services.payment.routing import RoutingTable
from services.payment.service_layer.coordinator import Coordinator
from services.payment.service_layer.unit_of_work import PaymentUnitOfWork
from shared.errors import DomainError, Reason

A = TypeVar("A")


class NodeRouting:
    def __init__(self, runner: UseCaseRunner[PaymentUnitOfWork], coordinator: Coordinator) -> None:
        self._run = runner
        self._coordinator = coordinator

    @property
    def _routing(self) -> RoutingTable:
        return self._coordinator.routing

    @property
    def distributed(self) -> bool:
        """Whether other payment nodes keep accounts too."""
        return self._routing.distributed

    def is_local(self, admdvs: str) -> bool:
        return self._routing.is_local(admdvs)

    async def bill_elsewhere(
        self, method: str, request: Any, institution_admdvs: str, caller: str, forwarded: bool
    ) -> Any | None:
        """The answer of the node keeping the institution's province, in the caller's name; None
        when this node keeps it."""
        if self._routing.is_local(institution_admdvs):
            return None
        owner = self._routing.owner_of(institution_admdvs)
        if forwarded:
            raise DomainError(
                Reason.PROVINCE_UNREACHABLE,
                f"a forwarded bill of province {institution_admdvs[:2]} belongs to node {owner.name}; "
                "the routing files of the nodes disagree",
                metadata={"node": owner.name},
            )
        return await self._coordinator.forward(owner, method, request, caller)

    async def on_bill_owner(
        self,
        method: str,
        request: Any,
        institution_admdvs: str,
        caller: str,
        forwarded: bool,
        here: Callable[[], Awaitable[A]],
    ) -> A:
        """The answer of the node keeping the institution's province when that is another node;
        else runs `here` (settling ends the cross-node part of a bill itself)."""
        elsewhere = await self.bill_elsewhere(method, request, institution_admdvs, caller, forwarded)
        return elsewhere if elsewhere is not None else await here()

    async def settlement_elsewhere(
        self, method: str, request: Any, settlement_id: str, caller: str, forwarded: bool
    ) -> Any | None:
        """The answer of the node holding a settlement this node does not know; None when this
        node holds it, or no node does (the local use case then says NOT_FOUND)."""
        if not self._routing.distributed or forwarded:
            return None
        here = await self._run.query(lambda uow: uow.settlements.get(settlement_id))
        if here is not None:
            return None
        return await self._coordinator.forward_to_holder(method, request, settlement_id, caller)

    async def reversal_elsewhere(self, request: Any, original_request_id: str, caller: str, forwarded: bool) -> Any:
        """The answer of the node that saw the original request, when this node never did: the
        hospital may have sent it here and this node forwarded it to the node that settled it."""
        if not self._routing.distributed or forwarded:
            return None
        known = await self._run.query(lambda uow: uow.idempotency.get(caller, original_request_id))
        if known is not None:
            return None
        return await self._coordinator.reverse_elsewhere(request, caller)

    async def on_settlement_holder(
        self,
        method: str,
        request: Any,
        settlement_id: str,
        caller: str,
        forwarded: bool,
        here: Callable[[], Awaitable[A]],
        settled: Callable[[A], str] | None = None,
    ) -> A:
        """The answer of the node holding the settlement when that is another node; else runs
        `here` and, when `settled` names the settlement in its answer, applies the cross-node
        decision it made (`follow_up`). A read passes no `settled`."""
        elsewhere = await self.settlement_elsewhere(method, request, settlement_id, caller, forwarded)
        if elsewhere is not None:
            return elsewhere
        try:
            return await self._here_then_follow_up(here, settled)
        except RpcFailure:
            # A refusal may keep a decision too: a capture that finds the holds expired releases
            # them here, decides to abort and answers HOLD_EXPIRED. The other nodes' holds go now,
            # as after a release, not at the next sweep (following up nothing decided is a no-op).
            if settled is not None:
                await self.follow_up(settlement_id)
            raise

    async def on_original_holder(
        self,
        request: Any,
        original_request_id: str,
        caller: str,
        forwarded: bool,
        here: Callable[[], Awaitable[A]],
        settled: Callable[[A], str],
    ) -> A:
        """A reversal's answer from the node that saw the original request when this node never
        did; else runs `here` and applies the decision it made on the settlement `settled` names."""
        elsewhere = await self.reversal_elsewhere(request, original_request_id, caller, forwarded)
        if elsewhere is not None:
            return elsewhere
        return await self._here_then_follow_up(here, settled)

    async def on_account_keeper(
        self, method: str, request: Any, caller: str, forwarded: bool, here: Callable[[], Awaitable[A]]
    ) -> A:
        """A read of a person's account: here, or, when this node keeps no such account, the
        answer of the node that does (each other node is asked in the caller's name, so its
        access policy judges the caller). NOT_FOUND when no node keeps it."""
        try:
            return await here()
        except DomainError as missing:
            if missing.reason is not Reason.ACCOUNT_NOT_FOUND or not self._routing.distributed or forwarded:
                raise
            for peer in self._routing.peers:
                try:
                    return await self._coordinator.forward(peer, method, request, caller)
                except DomainError as elsewhere:
                    if elsewhere.reason is not Reason.ACCOUNT_NOT_FOUND:
                        raise
            raise

    async def _here_then_follow_up(self, here: Callable[[], Awaitable[A]], settled: Callable[[A], str] | None) -> A:
        answer = await here()
        if settled is not None:
            await self.follow_up(settled(answer))
        return answer

    async def follow_up(self, settlement_id: str) -> None:
        """Applies a cross-node decision the last request made (nothing on a single node)."""
        if self._routing.distributed and settlement_id:
            await self._coordinator.finish(settlement_id)

    async def transfer_held_elsewhere(self, missing: DomainError, transfer_id: str) -> DomainError:
        """A transfer is kept by the node that sent it. When this node only received it (credited
        or declined a wallet credit under its id), the TRANSFER_NOT_FOUND to answer names that
        node; else it is `missing` as it was. No other node is asked."""
        if not self._routing.distributed:
            return missing
        provinces = await self._run.query(lambda uow: uow.transfers.senders_of(transfer_id))
        senders = []
        for province in provinces:
            if province in self._routing.me.provinces:
                continue  # not sent from another node: this node holds no transfer under the id
            try:
                senders.append(self._routing.owner_of_province(province).name)
            except DomainError:
                continue  # a province the routing file no longer gives any node
        if not senders:
            return missing
        named = ", ".join(sorted(set(senders)))
        return DomainError(
            Reason.TRANSFER_NOT_FOUND,
            f"transfer {transfer_id} was sent from another province; ask payment node {named}, which holds it",
            field="transfer_id",
            metadata={"node": named},
        )

    def check_wallet_kept_here(self, admdvs: str) -> None:
        """A wallet is kept by the node of its holder's province. The refusal names that node as the
        routing file does, never its address: callers reach nodes by name, and addresses are the
        deployment's own."""
        if not self._routing.is_local(admdvs):
            peer = self._routing.owner_of(admdvs)
            raise DomainError(
                Reason.FIELD_INVALID,
                f"wallets of province {admdvs[:2]} are kept by payment node {peer.name}",
                field="admdvs",
                metadata={"node": peer.name},
            )

    def check_wallet_node_known(self, admdvs: str) -> None:
        """A transfer to a wallet another node keeps needs that node: with none keeping the wallet's
        province, nothing could credit the transfer or promise never to, and the grantor's money
        would stay with a transfer pending for good. PROVINCE_UNREACHABLE, for a retry once the
        routing file gives the province a node."""
        if not self._routing.is_local(admdvs):
            self._routing.owner_of(admdvs)

    def check_account_kept_here(self, admdvs: str) -> None:
        """A personal account is opened by the node of its holder's province."""
        if not self._routing.is_local(admdvs):
            peer = self._routing.owner_of(admdvs)
            raise DomainError(
                Reason.FIELD_INVALID,
                f"the person is insured in {admdvs}: personal accounts of province {admdvs[:2]} are kept by "
                f"payment node {peer.name}; credit there",
                field="admdvs",
                metadata={"node": peer.name},
            )

    def check_grantor_account_kept_here(self, grantor_admdvs: str) -> None:
        """A transfer to a wallet starts on the node that keeps the grantor's personal account."""
        if not self._routing.is_local(grantor_admdvs):
            raise DomainError(
                Reason.FIELD_INVALID,
                f"send the transfer to payment node {self._routing.owner_of(grantor_admdvs).name}, "
                "which keeps the grantor's account",
                field="grantor_id_number",
            )
