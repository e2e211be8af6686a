"""gongji's binding and payment services over mutual-TLS gRPC, called as the gateway's own
principal acting for the institution (metadata gongji-acting-for), so each call is judged,
keyed and redacted as that institution's own."""

from __future__ import annotations

from typing import Any

import grpc
from grpc_status import rpc_status

from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.common.client import peer_channel
from services.common.metrics import ClientRpcMetrics
from services.common.security.callers import ACTING_FOR
from services.common.security.transport import Transport
from services.common.status import error_info_of
from services.gateway.service_layer.ports import GongjiRefused
from shared.principals import institution

BINDING = "gongji.binding.v1.BindingService"
PAYMENT = "gongji.payment.v1.PaymentService"


class GrpcGongji:
    def __init__(
        self,
        transport: Transport,
        binding_address: str,
        payment_address: str,
        deadline: float,
        metrics: ClientRpcMetrics | None = None,
    ) -> None:
        self._channels = [
            peer_channel(binding_address, BINDING, transport, default_deadline=deadline, metrics=metrics),
            peer_channel(payment_address, PAYMENT, transport, default_deadline=deadline, metrics=metrics),
        ]
        self._stubs: dict[str, Any] = {
            "binding": binding_grpc.BindingServiceStub(self._channels[0]),
            "payment": payment_grpc.PaymentServiceStub(self._channels[1]),
        }
        self._deadline = deadline

    async def call(self, service: str, method: str, request: Any, institution_code: str) -> Any:
        stub_method = getattr(self._stubs[service], method)
        metadata = ((ACTING_FOR, institution(institution_code).spiffe_id),)
        try:
            return await stub_method(request, metadata=metadata, timeout=self._deadline)
        except grpc.aio.AioRpcError as error:
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
            info = error_info_of(status) if status is not None else None
            reason = info.reason if info is not None else error.code().name
            message = status.message if status is not None else (error.details() or "")
            raise GongjiRefused(error.code().name, reason, message) from None

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()
