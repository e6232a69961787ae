"""The health-check probe against a real local server: kubelet readiness semantics, every attempt recorded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bluegreen_spec import HealthCheck
from steps.probe import (
    ProbeAttempt,
    ProbeResult,
    ProbeVerdict,
    default_deadline_seconds,
    is_success_status,
    probe_url,
    run_probe,
)
from tests.steps.http_servers import AppServer, Reply, SkippingClock, self_signed_server_context, unused_port


def health_check(**fields: Any) -> HealthCheck:
    document: dict[str, Any] = {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 10}
    document.update(fields)
    return HealthCheck.model_validate(document)


@pytest.fixture
def app() -> Iterator[AppServer]:
    with AppServer() as server:
        yield server


@pytest.fixture
def clock() -> SkippingClock:
    return SkippingClock()


def probe(check: HealthCheck, base_url: str, clock: SkippingClock, **options: Any) -> ProbeResult:
    return run_probe(check, base_url, sleep=clock.sleep, clock=clock, **options)


def statuses(result: ProbeResult) -> list[int | None]:
    return [attempt.status for attempt in result.attempts]


def test_success_after_failures_below_the_failure_threshold(app: AppServer, clock: SkippingClock) -> None:
    app.route("/health", 500, 503, 200)
    seen: list[ProbeAttempt] = []
    check = health_check(initialDelaySeconds=5, failureThreshold=3)

    result = probe(check, app.url, clock, on_attempt=seen.append)

    assert result.verdict is ProbeVerdict.healthy and result.healthy
    assert statuses(result) == [500, 503, 200]
    assert list(result.attempts) == seen
    assert [attempt.number for attempt in seen] == [1, 2, 3]
    assert len(app.received("/health")) == 3
    # The schedule: the initial delay, then one period between attempt starts.
    assert clock.sleeps[0] == pytest.approx(5, abs=0.5)
    assert clock.sleeps[1:] == [pytest.approx(10, abs=0.5)] * 2
    assert "successThreshold 1 at attempt 3" in result.reason


def test_failure_at_the_failure_threshold_records_every_attempt(app: AppServer, clock: SkippingClock) -> None:
    app.route("/health", Reply(503, "warming up"))
    seen: list[ProbeAttempt] = []

    result = probe(health_check(failureThreshold=4), app.url, clock, on_attempt=seen.append)

    assert result.verdict is ProbeVerdict.unhealthy
    assert statuses(result) == [503] * 4
    assert seen == list(result.attempts)
    assert all(not attempt.succeeded and attempt.latency_ms > 0 for attempt in seen)
    assert len(app.received("/health")) == 4
    assert result.reason.startswith(f"GET {app.url}/health: unhealthy: 503 after ")
    assert "4 consecutive failures reached failureThreshold 4 at attempt 4" in result.reason


def test_success_threshold_needs_consecutive_successes(app: AppServer, clock: SkippingClock) -> None:
    app.route("/health", 200, 200, 500, 200, 200, 200, then=500)

    result = probe(health_check(successThreshold=3, failureThreshold=3), app.url, clock)

    assert result.healthy
    assert statuses(result) == [200, 200, 500, 200, 200, 200]


def test_a_reply_slower_than_the_timeout_is_a_failure(app: AppServer, clock: SkippingClock) -> None:
    # The reply would come after a minute: only the 1 s timeout can end the attempt well before that.
    app.route("/health", Reply(200, delay=60))
    began = time.monotonic()

    result = probe(health_check(timeoutSeconds=1, failureThreshold=1), app.url, clock)

    assert time.monotonic() - began < 30, "the attempt waited past its timeout"
    assert result.verdict is ProbeVerdict.unhealthy
    (attempt,) = result.attempts
    assert attempt.status is None
    assert attempt.error == "no response within 1 s"
    assert 1000 <= attempt.latency_ms < 2000


@pytest.mark.parametrize(
    ("status", "healthy"),
    [(200, True), (204, True), (301, True), (302, True), (399, True), (400, False), (404, False), (500, False)],
)
def test_status_classes_follow_the_kubelet(app: AppServer, clock: SkippingClock, status: int, healthy: bool) -> None:
    # A redirect is not followed: its target would answer 404 here, yet the probe passes as the kubelet's does.
    app.route("/health", Reply(status, headers={"Location": "/elsewhere"}))

    result = probe(health_check(failureThreshold=1), app.url, clock)

    assert result.healthy is healthy
    assert statuses(result) == [status]
    assert app.received("/elsewhere") == []


def test_connection_refused_counts_as_failure(clock: SkippingClock) -> None:
    result = probe(health_check(failureThreshold=2), f"http://127.0.0.1:{unused_port()}", clock)

    assert result.verdict is ProbeVerdict.unhealthy
    assert [attempt.status for attempt in result.attempts] == [None, None]
    assert all(attempt.error.startswith("ConnectError") for attempt in result.attempts)


def test_a_flapping_service_ends_at_the_deadline(app: AppServer, clock: SkippingClock) -> None:
    app.route("/health", *[200, 500] * 50)
    check = health_check(initialDelaySeconds=3, successThreshold=2, failureThreshold=2)

    result = probe(check, app.url, clock)

    assert default_deadline_seconds(check) == 3 + 5 * 10
    assert result.verdict is ProbeVerdict.no_verdict
    # Attempts start at 3, 13, 23, 33, 43 and 53 s: the last one on the deadline itself.
    assert len(result.attempts) == 6
    assert "no verdict within 53 s: 6 attempts reached neither" in result.reason


def test_https_scheme_comes_from_the_check_and_skips_verification(clock: SkippingClock) -> None:
    with AppServer(ssl_context=self_signed_server_context()) as tls_app:
        tls_app.route("/health", 200)
        plain_base = tls_app.url.replace("https://", "http://")

        result = probe(health_check(httpGet={"path": "/health", "port": 8443, "scheme": "HTTPS"}), plain_base, clock)

    assert result.healthy, result.reason
    assert result.url == f"{tls_app.url}/health"


def test_probe_url_keeps_host_port_and_prefix() -> None:
    check = health_check(httpGet={"path": "/ready?full=1", "port": 8080})
    assert probe_url(check, "http://user-service-preview.apps.svc:8080") == (
        "http://user-service-preview.apps.svc:8080/ready?full=1"
    )
    assert probe_url(check, "http://gateway:80/user-service/") == "http://gateway:80/user-service/ready?full=1"
    with pytest.raises(ValueError, match="is not a base URL"):
        probe_url(check, "user-service-preview:8080")


def test_records_are_strings(app: AppServer, clock: SkippingClock) -> None:
    app.route("/health", 200)
    result = probe(health_check(), app.url, clock)
    assert result.to_record()["verdict"] == "Healthy"
    assert result.attempts[0].to_record()["status"] == "200"
    assert all(isinstance(value, str) for value in result.attempts[0].to_record().values())


def reference_verdict(outcomes: list[bool], success_threshold: int, failure_threshold: int) -> tuple[str, int]:
    """The readiness-probe rule written the plainest way: the verdict and the attempt that reached it."""
    successes = failures = 0
    for number, ok in enumerate(outcomes, start=1):
        successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
        if successes >= success_threshold:
            return "Healthy", number
        if failures >= failure_threshold:
            return "Unhealthy", number
    raise AssertionError("the padded sequence always reaches a verdict")


def test_verdict_matches_the_reference_model_for_any_sequence(app: AppServer) -> None:
    @settings(max_examples=60, deadline=None)
    @given(
        outcomes=st.lists(st.booleans(), max_size=12),
        success_threshold=st.integers(1, 4),
        failure_threshold=st.integers(1, 4),
    )
    def check(outcomes: list[bool], success_threshold: int, failure_threshold: int) -> None:
        # After the scripted outcomes the service is up for good, so every sequence ends in a verdict.
        app.route("/health", *[200 if ok else 500 for ok in outcomes], then=200)
        clock = SkippingClock()
        spec = health_check(successThreshold=success_threshold, failureThreshold=failure_threshold)

        result = probe(spec, app.url, clock, deadline_seconds=1e6)

        padded = outcomes + [True] * success_threshold
        verdict, attempts = reference_verdict(padded, success_threshold, failure_threshold)
        assert (result.verdict.value, len(result.attempts)) == (verdict, attempts)
        assert [attempt.succeeded for attempt in result.attempts] == padded[:attempts]

    check()


@given(st.integers(100, 599))
def test_success_is_exactly_200_to_399(status: int) -> None:
    assert is_success_status(status) is (200 <= status <= 399)
