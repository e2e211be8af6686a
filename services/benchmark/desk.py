"""Who calls: a desk of stubs, one per natural caller, over mutual TLS or (for the cost-of-security
phase) plaintext that names its caller in x-forwarded-client-cert."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import grpc

from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from gongji.payment.v1 import payment_service_pb2 as papi
from gongji.payment.v1 import payment_service_pb2_grpc as payment_grpc
from services.benchmark.deployment import APP, INSTITUTIONS, OPERATOR
from services.common.security.development_pki import DevelopmentPKI
from services.common.security.transport import ForwardedIdentity
from shared.principals import Principal, institution

CALL_TIMEOUT = 10.0
# Every channel its own connection, secure or not: gRPC would otherwise let plaintext channels to one
# address share a connection while each certificate gets its own, and the phases would not compare.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]
# Connections each hospital settles over, its calls taking them in turn, as a hospital's many
# counters would. A payment node of several processes gets each connection whole, on the process
# the kernel picks as it opens (SO_REUSEPORT hashes the addresses): eight hospitals of one
# connection each split 5/3 or worse between two processes three times in four, leaving one
# process idle while the other queues; 33 connections were seen to split 14/19. Of 128, a split
# worse than 45/55 comes about one time in three.
CONNECTIONS_PER_HOSPITAL = 16

Connect = Callable[[str, Principal], grpc.aio.Channel]


def mutual_tls(pki: DevelopmentPKI) -> Connect:
    """Channels that present the principal's certificate, as every caller of a gongji port must."""

    def connect(address: str, principal: Principal) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(address, pki.credentials(principal), options=CHANNEL_OPTIONS)

    return connect


def plaintext(address: str, principal: Principal) -> grpc.aio.Channel:
    """A plaintext channel to a server started with --insecure, each call naming the principal in
    x-forwarded-client-cert (as a TLS-terminating sidecar would): the access policy still applies."""
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS, interceptors=[ForwardedIdentity(principal)])


@dataclass
class Desk:
    """The benchmark's stubs, each making its calls as the principal a deployment would."""

    registry: binding_grpc.BindingServiceStub  # the national operator: people, region policies
    app: binding_grpc.BindingServiceStub  # the national app: bindings, payer orders
    treasury: payment_grpc.PaymentServiceStub  # the national operator: credits, ledger, clearing report
    # Per institution code, its Settle stubs, one per connection, taken in turn.
    hospitals: dict[str, Iterator[payment_grpc.PaymentServiceStub]]

    async def settle(self, request: papi.SettleRequest) -> papi.SettleResponse:
        """Settles the bill as the institution named in it, on its next connection."""
        return await next(self.hospitals[request.bill.institution_code]).Settle(request, timeout=CALL_TIMEOUT)


@contextlib.asynccontextmanager
async def open_desk(
    binding_address: str, payment_address: str, connect: Connect, hospitals: tuple[str, ...] = INSTITUTIONS
) -> AsyncIterator[Desk]:
    """A desk on these servers, with a Settle stub for each of `hospitals` (institution codes; by
    default Nanjing's eight); its channels close when the block ends. A channel connects on its
    first call, so stubs a phase does not use cost nothing."""
    channels: list[grpc.aio.Channel] = []

    def channel(address: str, principal: Principal) -> grpc.aio.Channel:
        channels.append(connect(address, principal))
        return channels[-1]

    try:
        yield Desk(
            registry=binding_grpc.BindingServiceStub(channel(binding_address, OPERATOR)),
            app=binding_grpc.BindingServiceStub(channel(binding_address, APP)),
            treasury=payment_grpc.PaymentServiceStub(channel(payment_address, OPERATOR)),
            hospitals={
                code: itertools.cycle(
                    [
                        payment_grpc.PaymentServiceStub(channel(payment_address, institution(code)))
                        for _ in range(CONNECTIONS_PER_HOSPITAL)
                    ]
                )
                for code in hospitals
            },
        )
    finally:
        await asyncio.gather(*(opened.close() for opened in channels))
