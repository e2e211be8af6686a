"""Debian's real Prometheus against a real payment server, and promtool on the compose files.

Prometheus runs as a child process (never as a system service) with a config of its own in
tmp_path: it scrapes an in-process payment server's --metrics-address every second and loads
services/compose/prometheus/alerts.yml. The test settles bills and reads them back through the
HTTP query API. Without the binaries (apt-get install prometheus) the tests skip, unless CI is
set, when they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import _free_port
from tests.payment_helpers import PaymentFamily
from tests.test_metrics import Metered, metered  # noqa: F401  (the fixture: a metered binding and payment)

REPO_ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = REPO_ROOT / "services" / "compose" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
DASHBOARD = PROMETHEUS_DIR / "dashboard.json"
DEADLINE_SECONDS = 60.0


def _binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
    if path is None:
        message = f"{name} is not installed (apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; it is required when CI is set")
        pytest.skip(message)
    return path


def _until(check: Callable[[], Any], what: str, deadline_seconds: float = DEADLINE_SECONDS) -> Any:
    """Polls `check` until it returns something truthy; fails naming `what` after the deadline."""
    deadline = time.monotonic() + deadline_seconds
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, urllib.error.URLError) as error:
            last = error
        else:
            if last:
                return last
        time.sleep(0.5)
    pytest.fail(f"{what} within {deadline_seconds:.0f} s; last seen: {last!r}")


class PrometheusApi:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> dict:
        url = f"{self.base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.base}/-/ready", timeout=5) as response:
            return response.status == 200

    def query(self, expr: str) -> list[dict]:
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]

    def scalar(self, expr: str) -> float | None:
        """The value of a one-series answer; None while there is none."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


@pytest.fixture
def prometheus(metered: Metered, tmp_path: Path) -> Iterator[PrometheusApi]:  # noqa: F811
    binary = _binary("prometheus")
    port = _free_port()
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [
            {"job_name": "payment", "static_configs": [{"targets": [f"127.0.0.1:{metered.payment_port}"]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        api = PrometheusApi(port)
        try:
            _until(lambda: process.poll() is None and api.ready(), "Prometheus did not become ready")
        except pytest.fail.Exception:
            raise AssertionError(log_path.read_text(errors="replace")[-4000:]) from None
        yield api
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def test_prometheus_scrapes_the_payment_service_and_reads_back_the_settlements(
    metered: Metered,  # noqa: F811
    prometheus: PrometheusApi,
) -> None:
    _until(
        lambda: prometheus.scalar('up{job="payment"}') == 1.0,
        "Prometheus did not scrape the payment service's metrics address",
    )
    family = PaymentFamily(metered.payment)
    settled = 'sum(grpc_server_handled_total{grpc_method="Settle", grpc_code="OK"})'
    # The counter's series is born at the first Settle: rate() needs a later increase to see.
    family.settle(10_000)
    _until(lambda: prometheus.scalar(settled) == 1.0, "Prometheus did not read back the first settlement")
    family.settle(20_000)
    family.settle(30_000)

    _until(lambda: prometheus.scalar(settled) == 3.0, "Prometheus did not read back 3 settlements")
    rate = 'sum(rate(grpc_server_handled_total{grpc_method="Settle", grpc_code="OK"}[1m]))'
    _until(lambda: (prometheus.scalar(rate) or 0) > 0, "Prometheus gave no settlement rate")
    assert prometheus.scalar('sum(gongji_settlements{state="CAPTURED"})') == 3.0
    # The rates README "Metrics" gives, over the gauges counted by kind (all three were Settles).
    taken = 'sum(gongji_settlement_operations{kind=~"settle|capture"})'
    _until(lambda: prometheus.scalar(taken) == 3.0, "Prometheus did not read back 3 settlements taken")
    assert prometheus.scalar('sum(gongji_settlement_operations{kind="settle"})') == 3.0
    assert prometheus.scalar('sum(gongji_settlement_money_fen{kind=~"settle|capture"})') == 60_000
    rate = 'sum(rate(gongji_settlement_operations{kind=~"settle|capture"}[1m]))'
    _until(lambda: (prometheus.scalar(rate) or 0) > 0, "Prometheus gave no rate of settlements taken")
    fen = 'sum by (source) (rate(gongji_settlement_money_fen{kind=~"settle|capture"}[1m]))'
    assert prometheus.query(fen)


def test_every_alert_rule_and_dashboard_query_is_accepted_and_evaluated_by_prometheus(
    prometheus: PrometheusApi,
) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert queries
    for expr in queries:
        prometheus.query(expr)  # a query Prometheus cannot parse is an error answer

    def rules_evaluated() -> list[dict] | None:
        groups = prometheus.get("/api/v1/rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if rules and all(rule.get("health") == "ok" for rule in rules) else None

    rules = _until(rules_evaluated, "the alert rules were not all evaluated healthy")
    alerts = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    assert {rule["name"] for rule in rules} == {rule["alert"] for group in alerts["groups"] for rule in group["rules"]}


def test_promtool_accepts_the_alert_rules() -> None:
    result = subprocess.run(
        [_binary("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_cross_node_saga_pages_once_it_is_older_than_five_minutes_and_not_before(tmp_path: Path) -> None:
    """promtool's rule unit test: a saga unfinished from t=0, scraped every 15 s, its age growing."""
    (rule,) = [
        rule
        for group in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if rule["alert"] == "GongjiCrossNodeSagaStuck"
    ]
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    labels = {"job": "payment", "instance": "east:9102", "node": "east"}
    series = 'gongji_cross_node_saga_oldest_unfinished_age_seconds{job="payment",instance="east:9102",node="east"}'

    def firing(age: str) -> list[dict]:
        return [{
            "exp_labels": {**labels, "severity": "page"},
            "exp_annotations": {
                "summary": f"Cross-node transaction unfinished for {age} on east:9102",
                "description": rule["annotations"]["description"],
            },
        }]  # fmt: skip

    tests = {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": [{"series": series, "values": "0+15x40"}],
                "alert_rule_test": [
                    {"eval_time": "4m45s", "alertname": "GongjiCrossNodeSagaStuck", "exp_alerts": []},
                    # Exactly 5 minutes is not older than 5 minutes; the next evaluation is.
                    {"eval_time": "5m", "alertname": "GongjiCrossNodeSagaStuck", "exp_alerts": []},
                    {"eval_time": "5m15s", "alertname": "GongjiCrossNodeSagaStuck", "exp_alerts": firing("5m 15s")},
                    {"eval_time": "8m", "alertname": "GongjiCrossNodeSagaStuck", "exp_alerts": firing("8m 0s")},
                ],
            },
            {
                # A saga that finishes at 4 minutes (the gauge back to 0) never pages.
                "interval": "1m",
                "input_series": [{"series": series, "values": "0 60 120 180 240 0 0 0 0 0 0"}],
                "alert_rule_test": [
                    {"eval_time": "10m", "alertname": "GongjiCrossNodeSagaStuck", "exp_alerts": []},
                ],
            },
        ],
    }
    (tmp_path / "saga_test.yml").write_text(yaml.safe_dump(tests), encoding="utf-8")
    result = subprocess.run(
        [_binary("promtool"), "test", "rules", str(tmp_path / "saga_test.yml")],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_compose_prometheus_config_with_its_rule_file(tmp_path: Path) -> None:
    # A copy, as compose mounts them: alerts.yml beside prometheus.yml, which names it relatively.
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(PROMETHEUS_DIR / name, tmp_path / name)
    result = subprocess.run(
        [_binary("promtool"), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_prometheus_scrapes_every_gongji_service_of_the_compose_file() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {
        target for job in config["scrape_configs"] for static in job["static_configs"] for target in static["targets"]
    }
    expected = set()
    for name, service in compose.items():
        argv = [str(arg) for arg in service.get("command", [])]
        if argv[:1] == ["serve"]:
            port = argv[argv.index("--metrics-address") + 1].rpartition(":")[2]
            expected.add(f"{name}:{port}")
    assert expected and targets == expected
