"""Post-switch analysis against a fake Prometheus on loopback: bounds, failureLimit, errors, silence, outages."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from bluegreen_spec import Analysis
from steps.analysis import AnalysisReport, AnalysisSample, SampleOutcome, run_analysis
from tests.steps.http_servers import (
    FakePrometheus,
    Reply,
    SkippingClock,
    prometheus_error,
    scalar,
    unused_port,
    vector,
)

ERROR_RATE = 'sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))'
LATENCY = "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[1m])))"
SUCCESS = "avg(up)"


def analysis(url: str, *queries: dict[str, Any], **fields: Any) -> Analysis:
    return Analysis.model_validate(
        {"prometheusUrl": url, "window": "2m", "interval": "30s", "queries": list(queries), **fields}
    )


def error_rate(**bounds: float) -> dict[str, Any]:
    return {"name": "error-rate", "query": ERROR_RATE, **(bounds or {"max": 0.05})}


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    with FakePrometheus() as server:
        yield server


@pytest.fixture
def clock() -> SkippingClock:
    return SkippingClock()


def analyse(spec: Analysis, clock: SkippingClock, **options: Any) -> AnalysisReport:
    return run_analysis(spec, sleep=clock.sleep, clock=clock, **options)


def outcomes(report: AnalysisReport, query: str = "error-rate") -> list[SampleOutcome]:
    return [sample.outcome for sample in report.samples if sample.query == query]


def test_passes_when_every_sample_is_within_bounds(prometheus: FakePrometheus, clock: SkippingClock) -> None:
    prometheus.answer(ERROR_RATE, vector(0.01, 0.02))
    prometheus.answer(LATENCY, scalar(0.21))
    spec = analysis(prometheus.url, error_rate(), {"name": "p99", "query": LATENCY, "max": 0.5, "min": 0.0})
    seen: list[AnalysisSample] = []

    report = analyse(spec, clock, on_sample=seen.append)

    assert report.passed, report.reason
    # 2m every 30s: at 0, 30, 60, 90 and 120 s.
    assert outcomes(report) == [SampleOutcome.within] * 5
    assert outcomes(report, "p99") == [SampleOutcome.within] * 5
    assert seen == list(report.samples)
    assert report.samples[0].values == (0.01, 0.02)
    assert prometheus.queries() == [ERROR_RATE, LATENCY] * 5
    assert clock.sleeps == [pytest.approx(30, abs=0.5)] * 4
    assert report.reason == "2 queries stayed within bounds over 2m (5 samples each, 0 breaches below failureLimit 1)"
    assert report.to_record()["passed"] == "true"


def test_a_max_breach_fails_at_once(prometheus: FakePrometheus, clock: SkippingClock) -> None:
    prometheus.answer(ERROR_RATE, vector(0.01), vector(0.01, 0.2), vector(0.01))

    report = analyse(analysis(prometheus.url, error_rate()), clock)

    assert not report.passed
    assert outcomes(report) == [SampleOutcome.within, SampleOutcome.breach]
    assert len(prometheus.received()) == 2, "the analysis went on sampling after failureLimit was reached"
    assert report.breaches == {"error-rate": 1}
    assert report.reason == (
        "query error-rate breached its bounds 1 times, reaching failureLimit 1; "
        'last: 0.2 above max 0.05 for {__name__="up",instance="pod-1"}'
    )


def test_a_min_breach_fails(prometheus: FakePrometheus, clock: SkippingClock) -> None:
    prometheus.answer(SUCCESS, scalar(0.95))

    report = analyse(analysis(prometheus.url, {"name": "availability", "query": SUCCESS, "min": 0.99}), clock)

    assert not report.passed
    assert "0.95 below min 0.99" in report.reason
    assert report.samples[0].to_record() == {
        "query": "availability",
        "sample": "1",
        "outcome": "Breach",
        "values": "0.95",
        "detail": "0.95 below min 0.99",
    }


def test_failure_limit_tolerates_fewer_breaches(prometheus: FakePrometheus, clock: SkippingClock) -> None:
    prometheus.answer(ERROR_RATE, vector(0.1), vector(0.01), vector(0.1), vector(0.01))

    report = analyse(analysis(prometheus.url, error_rate(), failureLimit=3), clock)

    assert report.passed, report.reason
    assert report.breaches == {"error-rate": 2}
    assert "2 breaches below failureLimit 3" in report.reason


def test_failure_limit_reached_fails_early(prometheus: FakePrometheus, clock: SkippingClock) -> None:
    prometheus.answer(ERROR_RATE, vector(0.1), vector(0.01), vector(0.1), vector(0.1, 0.3), vector(0.01))

    report = analyse(analysis(prometheus.url, error_rate(), failureLimit=3), clock)

    assert not report.passed
    # Two breaching series in one sample count once.
    assert report.breaches == {"error-rate": 3}
    assert len(report.samples) == 4
    assert "breached its bounds 3 times, reaching failureLimit 3" in report.reason


def test_a_rejected_query_fails_without_waiting_out_the_window(
    prometheus: FakePrometheus, clock: SkippingClock
) -> None:
    message = 'invalid parameter "query": 1:6: parse error: unexpected "{"'
    prometheus.answer(ERROR_RATE, Reply.json(prometheus_error("bad_data", message), status=400))

    report = analyse(analysis(prometheus.url, error_rate()), clock)

    assert not report.passed
    assert report.reason == f"Prometheus rejected query error-rate: HTTP 400, bad_data: {message}"
    assert outcomes(report) == [SampleOutcome.query_error]
    assert clock.sleeps == []


def test_errors_for_the_whole_window_fail_with_prometheus_message(
    prometheus: FakePrometheus, clock: SkippingClock
) -> None:
    prometheus.answer(ERROR_RATE, Reply.json(prometheus_error("timeout", "query timed out"), status=503))

    report = analyse(analysis(prometheus.url, error_rate()), clock)

    assert not report.passed
    assert outcomes(report) == [SampleOutcome.query_error] * 5
    assert (
        report.reason == "query error-rate never gave a value; Prometheus answered: HTTP 503, timeout: query timed out"
    )


def test_a_passing_error_or_proxy_page_is_inconclusive(prometheus: FakePrometheus, clock: SkippingClock) -> None:
    prometheus.answer(
        ERROR_RATE,
        Reply(502, "<html>Bad Gateway</html>", content_type="text/html"),
        Reply.json(prometheus_error("execution", "too many samples"), status=422),
        vector(0.01),
    )

    report = analyse(analysis(prometheus.url, error_rate()), clock)

    assert report.passed, report.reason
    assert outcomes(report)[:3] == [SampleOutcome.query_error, SampleOutcome.query_error, SampleOutcome.within]
    assert report.samples[0].detail == "HTTP 502 with a body that is not JSON: '<html>Bad Gateway</html>'"


def test_no_data_for_the_whole_window_fails(prometheus: FakePrometheus, clock: SkippingClock) -> None:
    prometheus.answer(ERROR_RATE, vector())

    report = analyse(analysis(prometheus.url, error_rate()), clock)

    assert not report.passed
    assert outcomes(report) == [SampleOutcome.no_data] * 5
    assert report.breaches == {"error-rate": 0}
    assert report.reason == f"no data for query error-rate; check the query: {ERROR_RATE}"


def test_some_no_data_and_nan_are_inconclusive_not_breaches(prometheus: FakePrometheus, clock: SkippingClock) -> None:
    prometheus.answer(ERROR_RATE, vector(), vector("NaN"), vector(0.01))

    report = analyse(analysis(prometheus.url, error_rate()), clock)

    assert report.passed, report.reason
    assert outcomes(report) == [SampleOutcome.no_data] * 2 + [SampleOutcome.within] * 3


def test_a_range_vector_query_is_rejected(prometheus: FakePrometheus, clock: SkippingClock) -> None:
    matrix = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    prometheus.answer("up[5m]", matrix)

    report = analyse(analysis(prometheus.url, {"name": "raw", "query": "up[5m]", "max": 1}), clock)

    assert not report.passed
    assert "returns a matrix; analysis needs an instant vector or a scalar" in report.reason


def test_unreachable_for_the_whole_window_names_the_url(clock: SkippingClock) -> None:
    url = f"http://127.0.0.1:{unused_port()}"
    began = time.monotonic()

    report = analyse(analysis(url, error_rate()), clock)

    # The window's pauses go to the skipping clock; waited out for real they would take minutes.
    assert time.monotonic() - began < 30
    assert clock.sleeps, "the samples were not spread over the window"
    assert not report.passed
    assert outcomes(report) == [SampleOutcome.unreachable] * 5
    assert report.reason.startswith(f"Prometheus at {url} was unreachable for the whole 2m window; last: GET {url}")
    assert "ConnectError" in report.reason
    # Retried with backoff until each next sample was due: 1 + 2 + 4 + 8 + 8 + 7 s fill each 30 s interval.
    assert sum(clock.sleeps) == pytest.approx(120, abs=1)
    assert max(clock.sleeps) <= 8


def test_a_given_client_is_used_and_left_open(prometheus: FakePrometheus, clock: SkippingClock) -> None:
    prometheus.answer(ERROR_RATE, vector(0.0))
    with httpx.Client(headers={"Authorization": "Bearer test-token"}) as client:
        report = analyse(analysis(prometheus.url + "/", error_rate(), window="30s"), clock, client=client)
        assert not client.is_closed

    assert report.passed, report.reason
    assert len(report.samples) == 2
    assert {request.headers["Authorization"] for request in prometheus.received()} == {"Bearer test-token"}


def test_a_zero_interval_is_refused_by_the_spec_before_any_run() -> None:
    with pytest.raises(ValidationError, match="'0s' is not above zero"):
        analysis("http://127.0.0.1:1", error_rate(), interval="0s")
