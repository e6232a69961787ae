"""Run metrics pushed to a recording Pushgateway on loopback; no URL, no push; a failed push is a result."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bluegreen_contract import PUSHGATEWAY_URL_ENV
from steps.metrics import PushResult, RunMetrics
from tests.steps.http_servers import RecordingWebhook, Reply, unused_port


@pytest.fixture
def pushgateway() -> Iterator[RecordingWebhook]:
    with RecordingWebhook() as server:
        yield server


def busy_run(metrics: RunMetrics) -> None:
    metrics.record_run("RolledBack")
    metrics.observe_switch(1.7)
    metrics.observe_rollback(4.2)
    metrics.observe_probe_latency(0.012)
    metrics.observe_smoke_latency("health", 0.03)


def test_push_reaches_the_service_group_with_every_metric(pushgateway: RecordingWebhook) -> None:
    metrics = RunMetrics.from_env("user-service", {PUSHGATEWAY_URL_ENV: pushgateway.url})
    busy_run(metrics)

    result = metrics.push()

    assert result == PushResult(True, pushgateway.url)
    (request,) = pushgateway.received()
    assert request.method == "PUT"
    assert request.path == "/metrics/job/bluegreen/service/user-service"
    body = request.body.decode()
    for sample in (
        'bluegreen_runs_total{outcome="RolledBack"} 1.0',
        "bluegreen_switch_duration_seconds_count 1.0",
        "bluegreen_switch_duration_seconds_sum 1.7",
        "bluegreen_rollback_duration_seconds_sum 4.2",
        'bluegreen_probe_latency_seconds_bucket{le="0.025"} 1.0',
        'bluegreen_smoke_latency_seconds_count{test="health"} 1.0',
    ):
        assert sample in body


def test_each_run_has_its_own_registry(pushgateway: RecordingWebhook) -> None:
    first, second = RunMetrics("a", pushgateway.url), RunMetrics("b", pushgateway.url)
    first.record_run("Succeeded")

    second.push()

    assert "outcome=" not in pushgateway.received()[0].body.decode()


def test_without_a_url_nothing_is_pushed(pushgateway: RecordingWebhook) -> None:
    assert RunMetrics.from_env("user-service", {}).push() is None
    assert RunMetrics.from_env("user-service", {PUSHGATEWAY_URL_ENV: " "}).push() is None
    assert RunMetrics("user-service", None).push() is None
    assert pushgateway.received() == []


def test_a_refusing_gateway_is_a_result_not_an_exception(pushgateway: RecordingWebhook) -> None:
    pushgateway.script(Reply(500, "storage full"))
    metrics = RunMetrics("user-service", pushgateway.url)
    busy_run(metrics)

    result = metrics.push()

    assert result is not None and not result.pushed
    assert result.error.startswith(f"PUT {pushgateway.url}/metrics/job/bluegreen/service/user-service: HTTPError")
    assert "500" in result.error
    assert result.to_record()["pushed"] == "false"


def test_an_unreachable_gateway_is_a_result_not_an_exception() -> None:
    gateway = f"http://user:secret@127.0.0.1:{unused_port()}"

    result = RunMetrics("user-service", gateway, timeout_seconds=2).push()

    assert result is not None and not result.pushed
    assert "URLError" in result.error
    assert "secret" not in result.error and "secret" not in result.gateway
