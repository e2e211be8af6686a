"""Wires the payment service: database, binding-service channel, gRPC server."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial

from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.payment.v1 import payment_service_pb2_grpc as api_grpc
from services.binding.entrypoints.grpc_servicer import SERVICE as BINDING_SERVICE
from services.common.client import peer_channel
from services.common.clock import Clock, SystemClock
from services.common.database import migrate
from services.common.server import RunningServer, ServiceRegistration, start_server
from services.payment.entrypoints.grpc_servicer import SERVICE, PaymentServicer

ERROR_DOMAIN = "payment.gongji"
BINDING_ADDRESS_ENV = "GONGJI_BINDING_ADDRESS"


def default_binding_address() -> str:
    return os.environ.get(BINDING_ADDRESS_ENV, "127.0.0.1:50051")


@dataclass
class PaymentSettings:
    database_url: str
    address: str = "127.0.0.1:50052"
    binding_address: str = field(default_factory=default_binding_address)
    migrate_on_start: bool = True
    clock: Clock = field(default_factory=SystemClock)
    workers: int = 16


async def start_payment_server(settings: PaymentSettings) -> RunningServer:
    if settings.migrate_on_start:
        migrate("payment", settings.database_url)
    channel = peer_channel(settings.binding_address, BINDING_SERVICE)
    servicer = PaymentServicer(binding_grpc.BindingServiceStub(channel))
    registration = ServiceRegistration(SERVICE, partial(api_grpc.add_PaymentServiceServicer_to_server, servicer))
    running = await start_server([registration], settings.address, ERROR_DOMAIN)
    running.cleanups.append(channel.close)
    return running
