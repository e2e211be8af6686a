"""Wires the gateway: its store (migrated on start), gRPC channels to the binding and payment
services presenting the gateway's own certificate, and the HTTPS listener.

The listener presents the same certificate (spiffe://gongji/service/gateway) and asks for a
client certificate of the gongji CA without requiring one, so a HIS may authenticate by
certificate or, where access keys are configured, by signed headers."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from services.common.addresses import check_listen_address
from services.common.clock import Clock, SystemClock
from services.common.database import create_database_engine, migrate
from services.common.metrics import Metrics
from services.common.security.transport import Transport
from services.gateway.adapters.gongji_client import GrpcGongji
from services.gateway.adapters.store import SqlStore
from services.gateway.entrypoints.http import Endpoint, make_app
from services.gateway.entrypoints.metrics import RequestMetrics, read_gateway_gauges
from services.gateway.service_layer.account_pay import AccountPayRules
from services.gateway.service_layer.inpatient import DEFAULT_HOLD_DAYS, check_hold_days
from services.gateway.service_layer.transactions import Transactions
from services.gateway.wire.signatures import AccessKey

log = logging.getLogger(__name__)
DEFAULT_ADDRESS = "127.0.0.1:8443"
MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class GatewaySettings:
    database_url: str
    # The gateway's identity (spiffe://gongji/service/gateway) and TLS files, for its HTTPS
    # listener and its gRPC calls alike; Transport.insecure for loopback development.
    transport: Transport
    binding_address: str
    payment_address: str
    address: str = DEFAULT_ADDRESS
    # access_key → AccessKey (signatures.load_access_keys); None: client certificates only.
    access_keys: Mapping[str, AccessKey] | None = None
    account_pay: AccountPayRules = field(default_factory=AccountPayRules)
    clock: Clock = field(default_factory=SystemClock)
    migrate_on_start: bool = True
    # Seconds each call on gongji may take before the HIS is told SERVICE_UNAVAILABLE.
    call_deadline: float = 5.0
    max_body_bytes: int = MAX_BODY
    # HOST:PORT serving Prometheus metrics over plain HTTP; None serves none.
    metrics_address: str | None = None
    # Days a 2303's deposit hold lasts unless a later 2303 renews it or a 2304 captures it;
    # at most inpatient.MAX_HOLD_DAYS, as the payment service holds for 60 days at most.
    inpatient_hold_days: int = DEFAULT_HOLD_DAYS

    def __post_init__(self) -> None:
        check_hold_days(self.inpatient_hold_days)


@dataclass
class RunningGateway:
    runner: web.AppRunner
    port: int
    gongji: GrpcGongji
    dispose_engine: Callable[[], None]
    metrics: Metrics | None = None

    async def stop(self, grace: float, drain_delay: float = 0.0) -> None:
        """Takes new requests `drain_delay` seconds more (while load balancers take this process
        out), then stops accepting, gives requests in flight `grace` seconds, then closes the
        channels and pool."""
        if drain_delay > 0:
            log.info("still taking requests for %.1fs before the drain", drain_delay)
            await asyncio.sleep(drain_delay)
        try:
            async with asyncio.timeout(grace):  # not wait_for, which may lose a cancel on 3.11
                await self.runner.cleanup()
        except TimeoutError:
            log.warning("requests still in flight after %.0fs were cut off", grace)
        await self.gongji.close()
        if self.metrics is not None:
            await self.metrics.stop()
        self.dispose_engine()


def server_ssl_context(transport: Transport) -> ssl.SSLContext | None:
    if transport.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(transport.tls.cert), str(transport.tls.key))
    context.load_verify_locations(cafile=str(transport.tls.ca))
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


async def start_gateway(settings: GatewaySettings) -> RunningGateway:
    settings.transport.check_listen_address(settings.address)
    if settings.migrate_on_start:
        migrate("gateway", settings.database_url)
    engine = create_database_engine(settings.database_url, pool_size=4)
    store = SqlStore(engine)
    metrics = Metrics.serving(settings.metrics_address, engine, read_gateway_gauges)
    gongji = GrpcGongji(
        settings.transport, settings.binding_address, settings.payment_address, settings.call_deadline,
        metrics.client if metrics else None,
    )  # fmt: skip
    transactions = Transactions(gongji, store, settings.clock, settings.account_pay, settings.inpatient_hold_days)
    endpoint = Endpoint(
        transactions, store, settings.clock, settings.transport.secure, settings.access_keys,
        RequestMetrics(metrics.registry, transactions.served) if metrics else None,
    )  # fmt: skip
    runner = web.AppRunner(make_app(endpoint, settings.max_body_bytes), access_log=None, handle_signals=False)
    await runner.setup()
    host, port = check_listen_address(settings.address, "listen address")
    site = web.TCPSite(runner, host or None, port, ssl_context=server_ssl_context(settings.transport))
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        await gongji.close()
        if metrics is not None:
            await metrics.stop()
        engine.dispose()
        raise OSError(f"cannot listen on {settings.address}: {error}") from error
    bound = int(runner.addresses[0][1])
    log.info(
        "serving the national interface on port %d (%s, as %s)",
        bound, "HTTPS" if settings.transport.secure else "PLAINTEXT", settings.transport.identity,
    )  # fmt: skip
    return RunningGateway(runner, bound, gongji, engine.dispose, metrics)
