"""Starting the national-interface gateway in front of the single-node phase's binding and east:
in its own process, as `gongji serve gateway` runs it, or on a thread of this process with
--in-process. Ready when its HTTPS listener answers."""

from __future__ import annotations

import contextlib
import http.client
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.benchmark.errors import BenchmarkError
from services.benchmark.options import Options
from services.benchmark.processes import Process, Scratch, free_port
from services.benchmark.servers import Servers
from services.common.security.development_pki import DevelopmentPKI
from shared.principals import GATEWAY

PATH = "/fsi/api/rsfComIfsService/callService"


@dataclass
class GatewayServer:
    address: str  # HOST:PORT of its HTTPS listener
    pid: int | None  # None in-process
    stop: Callable[[], None]


def start_gateway_server(
    scratch: Scratch, options: Options, database_url: str, pki: DevelopmentPKI, servers: Servers
) -> GatewayServer:
    """The gateway, as its own principal, calling binding and east over mutual TLS; its database
    already migrated."""
    if options.in_process:
        return _start_in_process(database_url, pki, servers)
    address = f"127.0.0.1:{free_port()}"
    argv = [
        "-m", "services.cli", "--log-level", options.server_log_level, "serve", "gateway", "--address", address,
        "--database", database_url, "--binding-address", servers.binding_address,
        "--payment-address", servers.payment_address, *pki.args(GATEWAY),
    ]  # fmt: skip
    process = scratch.spawn("gateway", argv, address)
    try:
        wait_until_answering(process, address, pki)
    except BaseException:
        scratch.stop(process)
        raise
    return GatewayServer(address, process.popen.pid, lambda: scratch.stop(process))


def _start_in_process(database_url: str, pki: DevelopmentPKI, servers: Servers) -> GatewayServer:
    from services.common.hosting import BackgroundServer
    from services.gateway.app import GatewaySettings, start_gateway

    settings = GatewaySettings(
        database_url=database_url, transport=pki.transport(GATEWAY), binding_address=servers.binding_address,
        payment_address=servers.payment_address, address="127.0.0.1:0", migrate_on_start=False,
    )  # fmt: skip
    server = BackgroundServer(lambda: start_gateway(settings)).start()  # type: ignore[arg-type,return-value]
    return GatewayServer(server.address, None, server.stop)


def wait_until_answering(process: Process, address: str, pki: DevelopmentPKI, timeout: float = 60.0) -> None:
    """Until a GET of the endpoint answers over HTTPS (405: the endpoint takes POST only)."""
    host, _, port = address.rpartition(":")
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise BenchmarkError(f"the gateway exited with {process.popen.returncode}:\n{process.log_tail()}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=1.0)
            try:
                connection.request("GET", PATH)
                if connection.getresponse().status == 405:
                    return
            finally:
                connection.close()
        time.sleep(0.1)
    raise BenchmarkError(f"the gateway did not answer on {address} within {timeout:.0f}s\n{process.log_tail()}")
