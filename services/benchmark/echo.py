"""The echo baseline: a bare grpc.aio echo server behind the same mutual TLS, run in its own
process, and the same closed-loop callers driving it with a Settle-sized message. What gRPC in
Python alone costs per call."""

from __future__ import annotations

import asyncio
import random
import signal
from datetime import date
from pathlib import Path

import grpc

from services.benchmark.cpu import CpuMeter
from services.benchmark.deployment import INSTITUTIONS
from services.benchmark.desk import CALL_TIMEOUT, Connect
from services.benchmark.driver import Level, drive
from services.benchmark.families import Family, person_id, settle_request
from services.benchmark.options import Options
from services.benchmark.progress import level_line, say
from shared.principals import institution

ECHO_METHOD = "/gongji.benchmark.Echo/Echo"


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


class _EchoHandler(grpc.GenericRpcHandler):
    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if handler_call_details.method == ECHO_METHOD:  # type: ignore[attr-defined]
            return grpc.unary_unary_rpc_method_handler(_echo)  # no serializers: bytes in, bytes out
        return None


async def serve_echo(address: str, cert: Path, key: Path, ca: Path) -> None:
    """Echoes every request, behind mutual TLS as gongji's ports are: the server presents `cert`
    and requires a client certificate signed by `ca`."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((_EchoHandler(),))
    credentials = grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())], root_certificates=ca.read_bytes(), require_client_auth=True
    )
    server.add_secure_port(address, credentials)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(0.5)


def echo_payload() -> bytes:
    """As many bytes as a Settle request, so echo carries a comparable message."""
    family = Family(person_id(date(2012, 1, 1), 0), (person_id(date(1975, 1, 1), 0),) * 2)
    return settle_request(family, random.Random(1)).SerializeToString()


async def measure_echo(
    options: Options, address: str, connect: Connect, payload: bytes, meter: CpuMeter
) -> list[Level]:
    """Echo over mutual TLS, the client presenting a hospital's certificate as Settle's callers do."""
    async with connect(address, institution(INSTITUTIONS[0])) as channel:
        echo = channel.unary_unary(ECHO_METHOD)
        await echo(payload, timeout=30, wait_for_ready=True)
        levels = []
        for concurrency in options.concurrency:
            level = await drive(lambda: echo(payload, timeout=CALL_TIMEOUT), concurrency, options.warmup,
                                options.seconds, meter=meter)  # fmt: skip
            levels.append(level)
            say(level_line("echo", level))
        return levels
