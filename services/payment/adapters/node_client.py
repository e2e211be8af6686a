"""gRPC client of the node-to-node service (gongji.node.v1), one mutual-TLS channel per
peer, presenting this node's own certificate.

A peer that does not answer within the deadline is PROVINCE_UNREACHABLE, which
callers treat as transient; a peer's refusal comes back as the same DomainError.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from grpc_status import rpc_status
from opentelemetry.sdk.trace import TracerProvider

from gongji.common.v1 import common_pb2 as common
from gongji.node.v1 import node_service_pb2 as node
from gongji.node.v1 import node_service_pb2_grpc as node_grpc
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.common.client import peer_channel
from services.common.converters import datetime_to_timestamp, enum_to_proto
from services.common.grants import grant_to_proto
from services.common.interceptors import RpcFailure
from services.common.metrics import ClientRpcMetrics
from services.common.security.callers import ACTING_FOR
from services.common.security.transport import Transport
from services.common.status import error_info_of
from services.payment.adapters.commit_batcher import BatchUnsupported, CommitBatcher
from services.payment.routing import Node
from services.payment.service_layer.coordination import LegOutcome, Outcome, RemoteCapacity
from shared.errors import DomainError, Reason
from shared.payers import PayerGrant
from shared.regions import province_of, validate_admdvs
from shared.settlements import Bill

NODE_SERVICE = "gongji.node.v1.PaymentNodeService"
OUTCOMES = {
    node.TRANSACTION_OUTCOME_PENDING: "PENDING",
    node.TRANSACTION_OUTCOME_COMMITTED: "COMMITTED",
    node.TRANSACTION_OUTCOME_ABORTED: "ABORTED",
    node.TRANSACTION_OUTCOME_REFUNDED: "COMMITTED",
}


# Refusals naming a field malformed: of a node-to-node request, a field this node wrote.
_FIELDS_THIS_NODE_WROTE = frozenset({"FIELD_INVALID", "FIELD_REQUIRED", "MALFORMED_REQUEST"})


class GrpcNodeClient:
    def __init__(
        self,
        transport: Transport,
        deadline: float = 2.0,
        tracer_provider: TracerProvider | None = None,
        metrics: ClientRpcMetrics | None = None,
    ) -> None:
        self._transport = transport
        self._deadline = deadline
        self._tracer_provider = tracer_provider
        self._metrics = metrics
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._commits = CommitBatcher(self._commit_one, self._commit_many)

    def _stub(self, peer: Node) -> node_grpc.PaymentNodeServiceStub:
        if peer.address not in self._channels:
            self._channels[peer.address] = peer_channel(
                peer.address, NODE_SERVICE, self._transport, self._deadline, self._tracer_provider, self._metrics
            )
        return node_grpc.PaymentNodeServiceStub(self._channels[peer.address])

    def payment_stub(self, peer: Node) -> payment_grpc.PaymentServiceStub:
        """The peer's public PaymentService, for forwarding a request that belongs there."""
        self._stub(peer)
        return payment_grpc.PaymentServiceStub(self._channels[peer.address])

    async def forward(self, peer: Node, method: str, request: Any, acting_for: str) -> Any:
        """Sends a PaymentService request to the node it belongs to, in the name of the principal
        that made it (that node judges the call as that principal's); its refusal comes back unchanged."""
        try:
            return await getattr(self.payment_stub(peer), method)(
                request, timeout=self._deadline * 3, metadata=((ACTING_FOR, acting_for),)
            )
        except grpc.aio.AioRpcError as error:
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
            if status is not None and error.code() not in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            ):
                raise RpcFailure(status) from None
            raise DomainError(
                Reason.PROVINCE_UNREACHABLE,
                f"payment node {peer.name} did not answer: {error.code().name}",
                metadata={"node": peer.name},
            ) from None

    async def close(self) -> None:
        await self._commits.close()
        for channel in self._channels.values():
            await channel.close()

    async def _call(self, peer: Node, method: str, request: Any) -> Any:
        try:
            return await getattr(self._stub(peer), method)(request, timeout=self._deadline)
        except grpc.aio.AioRpcError as error:
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
            info = error_info_of(status) if status else None
            # A field of this node's own request found malformed (its clock, its version): the
            # peer found fault with this node, not with the caller's input, so it is neither stored
            # under the caller's request_id nor answered as the caller's bad field. A refusal of the
            # bill's own numbers (AMOUNT_LIMIT_EXCEEDED, say) is still the peer's answer to pass on.
            this_nodes_fault = info is None or info.reason in _FIELDS_THIS_NODE_WROTE
            if (
                info is not None
                and info.reason in Reason.__members__
                and error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
                and not (error.code() is grpc.StatusCode.INVALID_ARGUMENT and this_nodes_fault)
            ):
                raise DomainError(Reason(info.reason), f"node {peer.name}: {error.details()}") from None
            if error.code() is grpc.StatusCode.INVALID_ARGUMENT:
                why = info.reason if info else "INVALID_ARGUMENT"
                raise DomainError(
                    Reason.PROVINCE_UNREACHABLE,
                    f"payment node {peer.name} refused this node's {method}: {why}",
                    metadata={"node": peer.name},
                ) from None
            raise DomainError(
                Reason.PROVINCE_UNREACHABLE,
                f"payment node {peer.name} ({', '.join(sorted(peer.provinces))}) did not answer: {error.code().name}",
                metadata={"node": peer.name},
            ) from None

    async def capacity(
        self, peer: Node, beneficiary: str, grants: list[PayerGrant], at: datetime, ceiling_fen: int
    ) -> list[RemoteCapacity]:
        answer = await self._call(
            peer,
            "GetPayerCapacity",
            node.GetPayerCapacityRequest(
                beneficiary_id_number=beneficiary,
                grants=[grant_to_proto(g) for g in grants],
                at_time=datetime_to_timestamp(at),
                ceiling_fen=ceiling_fen,
            ),
        )
        return [
            RemoteCapacity(c.binding_id, c.grantor_id_number, c.limit_fen, c.available_fen, c.admdvs)
            for c in answer.capacities
            if c.has_account
        ]

    async def prepare(
        self,
        peer: Node,
        transaction_id: str,
        coordinator_province: str,
        bill: Bill,
        legs: list[dict[str, Any]],
        grants: list[PayerGrant],
        expire_time: datetime,
        up_to: bool = False,
        capture_at_most: int | None = None,
    ) -> tuple[list[RemoteCapacity], bool]:
        """What the peer holds, by leg, and False; with `up_to`, each leg's amount is a ceiling.
        With `capture_at_most` too (one round): what it captured at once, all together at most
        that, and True; or, from a node of a version before one-round captures, what it holds and False."""
        answer = await self._call(
            peer,
            "PrepareLegs",
            node.PrepareLegsRequest(
                transaction_id=transaction_id,
                coordinator_province=coordinator_province,
                beneficiary_id_number=bill.patient_id_number,
                institution_code=bill.institution_code,
                use_category=enum_to_proto(common.UseCategory, bill.use_category),
                institution_admdvs=bill.institution_admdvs,
                chronic_disease=bill.chronic_disease,
                legs=[
                    node.NodeLeg(
                        leg_no=leg["leg_no"], payer_id_number=leg["payer_id_number"], binding_id=leg["binding_id"],
                        amount_fen=leg["amount_fen"],
                    )
                    for leg in legs
                ],
                expire_time=datetime_to_timestamp(expire_time),
                grants=[grant_to_proto(g) for g in grants],
                hold_up_to_amount=up_to,
                capture_now=capture_at_most is not None,
                capture_at_most_fen=capture_at_most or 0,
            ),
        )  # fmt: skip
        taken = held_legs(peer, legs, answer)
        if capture_at_most is None or not answer.captured:
            return taken, False
        if sum(c.limit_fen for c in taken) > capture_at_most:
            raise _untrusted(peer, f"its legs take more than the {capture_at_most} fen asked of them together")
        return taken, True

    async def commit(self, peer: Node, transaction_id: str, captures: dict[int, int]) -> None:
        """Commits decided while another commit to the peer is on its way go with the next batch."""
        await self._commits.commit(peer, transaction_id, captures)

    async def _commit_one(self, peer: Node, transaction_id: str, captures: dict[int, int]) -> None:
        await self._call(peer, "CommitLegs", _commit_request(transaction_id, captures))

    async def _commit_many(self, peer: Node, commits: list[tuple[str, dict[int, int]]]) -> None:
        request = node.BatchCommitLegsRequest(requests=[_commit_request(t, c) for t, c in commits])
        try:
            await self._stub(peer).BatchCommitLegs(request, timeout=self._deadline)
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.UNIMPLEMENTED:
                raise BatchUnsupported from None
            raise

    async def abort(self, peer: Node, transaction_id: str, coordinator_province: str) -> None:
        await self._call(
            peer,
            "AbortLegs",
            node.AbortLegsRequest(transaction_id=transaction_id, coordinator_province=coordinator_province),
        )

    async def refund(self, peer: Node, transaction_id: str) -> None:
        await self._call(peer, "RefundLegs", node.RefundLegsRequest(transaction_id=transaction_id))

    async def outcome(self, peer: Node, transaction_id: str, province: str) -> Outcome:
        answer = await self._call(
            peer,
            "GetTransactionOutcome",
            node.GetTransactionOutcomeRequest(transaction_id=transaction_id, participant_province=province),
        )
        return Outcome(
            OUTCOMES.get(answer.outcome, "PENDING"),
            tuple(LegOutcome(c.leg_no, c.payer_id_number, c.binding_id, c.amount_fen) for c in answer.captures),
            answer.beneficiary_id_number,
        )

    async def credit_wallet(
        self,
        peer: Node,
        transfer_id: str,
        beneficiary: str,
        grantor: str,
        binding_id: str,
        amount_fen: int,
        source_province: str,
    ) -> None:
        await self._call(
            peer,
            "CreditWallet",
            node.CreditWalletRequest(
                transfer_id=transfer_id,
                beneficiary_id_number=beneficiary,
                amount_fen=amount_fen,
                source_province=source_province,
                grantor_id_number=grantor,
                binding_id=binding_id,
            ),
        )

    async def decline_wallet_credit(
        self, peer: Node, transfer_id: str, beneficiary: str, amount_fen: int, source_province: str
    ) -> bool:
        answer = await self._call(
            peer,
            "DeclineWalletCredit",
            node.DeclineWalletCreditRequest(
                transfer_id=transfer_id,
                beneficiary_id_number=beneficiary,
                amount_fen=amount_fen,
                source_province=source_province,
            ),
        )
        return bool(answer.credited)


def held_legs(peer: Node, asked: list[dict[str, Any]], answer: node.PrepareLegsResponse) -> list[RemoteCapacity]:
    """The peer's holds, each checked against what was asked: a peer's numbers are not taken
    on trust, so a leg not asked for, held twice, or above its ask is refused."""
    ceilings = {(leg["leg_no"], leg["binding_id"], leg["payer_id_number"]): leg["amount_fen"] for leg in asked}
    balances, regions = list(answer.payer_available_after_fen), list(answer.payer_admdvs)
    if not regions:
        regions = [""] * len(answer.legs)  # a node of a version before payer_admdvs; the caller fills them
    if not len(balances) == len(regions) == len(answer.legs):
        raise _untrusted(peer, "its balances and regions do not match its legs")
    held: list[RemoteCapacity] = []
    seen: set[int] = set()
    for leg, after, admdvs in zip(answer.legs, balances, regions, strict=True):
        ceiling = ceilings.get((leg.leg_no, leg.binding_id, leg.payer_id_number))
        if ceiling is None or leg.leg_no in seen or not 0 < leg.amount_fen <= ceiling or after < 0:
            raise _untrusted(peer, f"leg {leg.leg_no} is not a hold of at most what was asked")
        if admdvs and not _region_of(peer, admdvs):
            raise _untrusted(peer, f"leg {leg.leg_no}'s payer region is not one of that node's provinces")
        seen.add(leg.leg_no)
        held.append(RemoteCapacity(leg.binding_id, leg.payer_id_number, leg.amount_fen, after + leg.amount_fen, admdvs))
    return held


def _region_of(peer: Node, admdvs: str) -> bool:
    """Whether `admdvs` is a division code of one of the peer's provinces."""
    try:
        validate_admdvs(admdvs, "payer_admdvs")
    except DomainError:
        return False
    return province_of(admdvs) in peer.provinces


def _untrusted(peer: Node, why: str) -> DomainError:
    return DomainError(Reason.PEER_CLAIM_REJECTED, f"node {peer.name} answered a prepare wrongly: {why}")


def _commit_request(transaction_id: str, captures: dict[int, int]) -> node.CommitLegsRequest:
    return node.CommitLegsRequest(
        transaction_id=transaction_id,
        captures=[node.NodeLeg(leg_no=n, amount_fen=a) for n, a in sorted(captures.items())],
    )
