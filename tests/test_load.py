"""A flood against a served process: 5,000 concurrent calls and 3,000 health watches. The
service stays up, its memory stays bounded, every call ends (answered, or shed at once with
RESOURCE_EXHAUSTED or UNAVAILABLE), and afterwards it answers as before."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gongji.binding.v1 import binding_service_pb2 as bapi
from gongji.binding.v1 import binding_service_pb2_grpc as binding_grpc
from services.common.limits import ServerLimits
from shared.principals import BINDING_SERVICE, institution, operator
from tests.test_servers import OPERATOR, _free_port, _wait_serving

pytestmark = pytest.mark.slow
SHED = {"RESOURCE_EXHAUSTED", "UNAVAILABLE"}


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def _flood(pki, address: str) -> tuple[Counter[str], Counter[str]]:
    callers = [institution(f"H3201000{n}") for n in range(5)]
    watchers = [operator("000000", f"watch-{n}") for n in range(3)]
    channels = [grpc.aio.secure_channel(address, pki.credentials(p)) for p in [*callers, *watchers]]
    calls: Counter[str] = Counter()
    watches: Counter[str] = Counter()

    async def call(channel: grpc.aio.Channel) -> None:
        try:
            await binding_grpc.BindingServiceStub(channel).GetRegionPolicy(
                bapi.GetRegionPolicyRequest(admdvs="320100"), timeout=90
            )
            calls["OK"] += 1
        except grpc.aio.AioRpcError as error:
            calls[error.code().name] += 1

    async def watch(channel: grpc.aio.Channel) -> None:
        stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=90)
        try:
            async for _ in stream:
                watches["OPEN"] += 1
                return
        except grpc.aio.AioRpcError as error:
            watches[error.code().name] += 1

    try:
        watching = [asyncio.create_task(watch(channels[5 + n % 3])) for n in range(3_000)]
        await asyncio.gather(*(call(channels[n % 5]) for n in range(5_000)))
        await asyncio.gather(*watching)
    finally:
        for channel in channels:
            await channel.close()
    return calls, watches


def test_a_flood_of_calls_and_watches_is_served_or_shed_and_the_service_stays_up(tmp_path, pki):
    address = f"127.0.0.1:{_free_port()}"
    command = [sys.executable, "-m", "services.cli", "serve", "binding", "--address", address,
               "--database", f"sqlite:///{tmp_path}/b.db", *pki.args(BINDING_SERVICE)]  # fmt: skip
    log = (tmp_path / "server.log").open("w")  # a pipe nobody reads would fill up and stall the server
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        _wait_serving(pki, address, process)
        before = _rss_kib(process.pid)
        calls, watches = asyncio.run(_flood(pki, address))
        after = _rss_kib(process.pid)
        assert process.poll() is None, "the service died under the flood"
        assert sum(calls.values()) == 5_000 and set(calls) <= {"OK", *SHED}, calls
        assert calls["OK"] >= 1_000, calls
        # 1,000 calls at once on each connection are more than it carries (streams_per_connection):
        # the excess is shed, not queued.
        assert sum(calls[code] for code in SHED) >= 1, calls
        assert sum(watches.values()) == 3_000 and set(watches) <= {"OPEN", *SHED}, watches
        assert watches["OPEN"] <= 3 * ServerLimits().streams_per_principal, watches
        assert sum(watches[code] for code in SHED) >= 3_000 - 3 * ServerLimits().streams_per_principal, watches
        assert after - before < 300 * 1024, f"memory grew from {before} KiB to {after} KiB"
        with pki.channel(address, OPERATOR) as channel:
            policy = binding_grpc.BindingServiceStub(channel).GetRegionPolicy(
                bapi.GetRegionPolicyRequest(admdvs="320100"), timeout=10
            )
        assert policy.policy.version
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
