"""Starting the services under test: binding and payment "east" (and, for the cross-node phase,
payment "west") in their own processes, as `gongji serve` runs them, or on threads of this
process with --in-process."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from services.benchmark.deployment import EAST, EAST_PROVINCES, OPERATOR, WEST, WEST_PROVINCES
from services.benchmark.options import Options
from services.benchmark.processes import Process, Scratch, free_port, wait_until_listening, wait_until_serving
from services.common.security.development_pki import DevelopmentPKI
from services.common.tracing import TRACES_EXPORTER_ENV
from shared.principals import BINDING_SERVICE

# The gRPC service names whose health says a server is ready.
BINDING = "gongji.binding.v1.BindingService"
PAYMENT = "gongji.payment.v1.PaymentService"


@dataclass(frozen=True)
class ObservabilityPorts:
    """Where restarted servers serve their metrics and send their spans (the observability phase)."""

    binding_metrics: str  # HOST:PORT for --metrics-address
    payment_metrics: str
    otlp_endpoint: str  # http://HOST:PORT of an OTLP gRPC trace receiver

    def environment(self) -> dict[str, str]:
        # Sampler left at the SDK's default (parentbased_always_on): every settlement traced.
        return {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_endpoint}


class Restart(Protocol):
    """Stops binding and east and starts them again on the same addresses and databases: with
    --insecure (plaintext) or mutual TLS, and with metrics and traces when given ports for them."""

    def __call__(self, plaintext: bool = False, observability: ObservabilityPorts | None = None) -> None: ...


@dataclass
class Servers:
    binding_address: str
    payment_address: str  # node "east"
    pids: dict[str, int] = field(default_factory=dict)  # kept current across restarts
    stop: Callable[[], None] = lambda: None
    west_address: str | None = None  # the second payment node, for the cross-node phase
    west_pid: int | None = None
    restart: Restart | None = None  # None in-process


def start_subprocess_servers(scratch: Scratch, options: Options, urls: dict[str, str], pki: DevelopmentPKI) -> Servers:
    binding_address = f"127.0.0.1:{free_port()}"
    payment_address = f"127.0.0.1:{free_port()}"
    common_args = ["--log-level", options.server_log_level, "serve"]
    binding_args = [*common_args, "binding", "--address", binding_address, "--database", urls["binding"]]
    payment_args = [
        *common_args, "payment", "--address", payment_address, "--database", urls["payment"],
        "--binding-address", binding_address, "--grace", "5", "--verifier", "stand-in", "--node", "east",
    ]  # fmt: skip
    if options.payment_processes > 1:
        payment_args += ["--processes", str(options.payment_processes)]
    if not options.payer_cache:
        binding_args += ["--payer-watch-lease", "0"]
        payment_args += ["--no-payer-cache"]
    if not options.one_round:
        payment_args += ["--no-one-round"]
    west_address = west_args = None
    if options.cross_node:
        west_address = f"127.0.0.1:{free_port()}"
        routing = os.path.join(scratch.directory, "routing.json")
        with open(routing, "w", encoding="utf-8") as handle:
            json.dump(
                {
                    "nodes": {
                        "east": {"address": payment_address, "provinces": list(EAST_PROVINCES)},
                        "west": {"address": west_address, "provinces": list(WEST_PROVINCES)},
                    }
                },
                handle,
            )
        west_args = [
            *common_args, "payment", "--address", west_address, "--database", urls["payment_west"],
            "--binding-address", binding_address, "--grace", "5", "--verifier", "stand-in",
            "--routing", routing, "--node", "west", *pki.args(WEST),
            *(() if options.payer_cache else ("--no-payer-cache",)),
            *(() if options.one_round else ("--no-one-round",)),
            *(("--processes", str(options.payment_processes)) if options.payment_processes > 1 else ()),
        ]  # fmt: skip
        payment_args += ["--routing", routing]
        binding_args += ["--routing", routing]  # the binding service answers only the routing file's nodes
    health = pki.credentials(OPERATOR)

    def command(name: str, args: list[str], profiled: bool) -> list[str]:
        """`gongji ARGS`, or the same under cProfile (services/benchmark/__main__.py)."""
        if profiled and options.profile:
            path = options.profile if name == "payment" else f"{options.profile}.binding"
            return ["-m", "services.benchmark", "profile", path, options.profile_clock, *args]
        return ["-m", "services.cli", *args]

    def start_pair(
        plaintext: bool,
        log_suffix: str = "",
        profiled: bool = False,
        observability: ObservabilityPorts | None = None,
    ) -> tuple[Process, Process]:
        """Binding, then payment east: with mutual TLS, or plaintext with --insecure (the rest alike);
        with metrics and traces only when given `observability`."""
        binding_extra = ["--insecure"] if plaintext else pki.args(BINDING_SERVICE)
        payment_extra = ["--insecure"] if plaintext else pki.args(EAST)
        environment = None
        if observability is not None:
            binding_extra += ["--metrics-address", observability.binding_metrics]
            payment_extra += ["--metrics-address", observability.payment_metrics]
            environment = observability.environment()
        credentials = None if plaintext else health
        binding = scratch.spawn(
            f"binding{log_suffix}", command("binding", [*binding_args, *binding_extra], profiled), binding_address,
            environment,
        )  # fmt: skip
        wait_until_serving(binding, binding_address, BINDING, credentials)
        payment = scratch.spawn(
            f"payment{log_suffix}", command("payment", [*payment_args, *payment_extra], profiled), payment_address,
            environment,
        )  # fmt: skip
        wait_until_serving(payment, payment_address, PAYMENT, credentials)
        wait_until_listening(payment, payment_address, options.payment_processes)
        return binding, payment

    # Only the first start is profiled: the profile is of the single-node mutual-TLS phase.
    binding, payment = start_pair(plaintext=False, profiled=True)
    west = None
    if west_address and west_args:  # never profiled
        west = scratch.spawn("west", ["-m", "services.cli", *west_args], west_address)
        wait_until_serving(west, west_address, PAYMENT, health)
        wait_until_listening(west, west_address, options.payment_processes)
    servers = Servers(
        binding_address, payment_address, {"binding": binding.popen.pid, "payment": payment.popen.pid},
        west_address=west_address, west_pid=west.popen.pid if west is not None else None,
    )  # fmt: skip

    def restart(plaintext: bool = False, observability: ObservabilityPorts | None = None) -> None:
        nonlocal binding, payment
        scratch.stop(payment)
        scratch.stop(binding)
        suffix = ("-plaintext" if plaintext else "-mtls") + ("-observed" if observability else "")
        binding, payment = start_pair(plaintext, log_suffix=suffix, observability=observability)
        servers.pids.update(binding=binding.popen.pid, payment=payment.popen.pid)

    def stop() -> None:
        if west is not None:
            scratch.stop(west)
        scratch.stop(payment)
        scratch.stop(binding)

    servers.stop, servers.restart = stop, restart
    return servers


def start_in_process_servers(scratch: Scratch, options: Options, urls: dict[str, str], pki: DevelopmentPKI) -> Servers:
    from services.binding.app import BindingSettings, start_binding_server
    from services.common.hosting import BackgroundServer
    from services.common.server import ServerSecurity
    from services.payment.app import PaymentSettings, start_payment_server
    from services.payment.routing import RoutingTable
    from services.payment.verification import StandInVerifier

    # One line per call, as `gongji serve` writes it, into a file instead of the terminal.
    rpc_log = logging.getLogger("gongji.rpc")
    saved = rpc_log.propagate, rpc_log.level
    handler = logging.FileHandler(os.path.join(scratch.directory, "servers.log"))
    rpc_log.propagate = False
    rpc_log.setLevel(getattr(logging, options.server_log_level.upper(), logging.INFO))
    rpc_log.addHandler(handler)

    def restore_logging() -> None:
        rpc_log.removeHandler(handler)
        handler.close()
        rpc_log.propagate, rpc_log.level = saved

    binding_settings = BindingSettings(
        database_url=urls["binding"], security=ServerSecurity(pki.transport(BINDING_SERVICE)),
        address="127.0.0.1:0", migrate_on_start=False, payer_watch_lease=3.0 if options.payer_cache else None,
    )  # fmt: skip
    binding: BackgroundServer | None = None
    # As Scratch.spawn does for subprocesses: a developer's OTEL_* variables must not turn tracing on.
    saved_exporter = os.environ.get(TRACES_EXPORTER_ENV)
    os.environ[TRACES_EXPORTER_ENV] = "none"
    try:
        binding = BackgroundServer(lambda: start_binding_server(binding_settings)).start()
        payment_settings = PaymentSettings(
            database_url=urls["payment"],
            security=ServerSecurity(pki.transport(EAST)),
            verifier=StandInVerifier(),
            address="127.0.0.1:0",
            binding_address=binding.address,
            migrate_on_start=False,
            routing=RoutingTable.single("east"),
            payer_cache=options.payer_cache,
        )
        payment = BackgroundServer(lambda: start_payment_server(payment_settings)).start()
    except BaseException:
        if binding is not None:
            binding.stop()
        restore_logging()
        raise
    finally:
        if saved_exporter is None:
            os.environ.pop(TRACES_EXPORTER_ENV, None)
        else:
            os.environ[TRACES_EXPORTER_ENV] = saved_exporter

    def stop() -> None:
        try:
            payment.stop()
            binding.stop()
        finally:
            restore_logging()

    return Servers(binding.address, payment.address, {}, stop)
