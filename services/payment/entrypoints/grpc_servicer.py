"""gongji.payment.v1.PaymentService over gRPC.

Until the payment issue lands, every RPC inherits the generated base's
NotImplementedError, which the status interceptor answers as UNIMPLEMENTED
with an ErrorInfo.
"""

from __future__ import annotations

from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.payment.v1 import payment_service_pb2_grpc as api_grpc

SERVICE = "gongji.payment.v1.PaymentService"


class PaymentServicer(api_grpc.PaymentServiceServicer):
    def __init__(self, binding: binding_grpc.BindingServiceStub) -> None:
        self._binding = binding
