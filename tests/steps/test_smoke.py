"""Smoke tests against a real local server: checks, per-test timeouts, the overall budget, concurrency."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bluegreen_spec import SmokeTest
from steps.smoke import SmokeReport, run_smoke_tests
from tests.steps.http_servers import AppServer, Reply, unused_port


def smoke(name: str, endpoint: str, **fields: Any) -> SmokeTest:
    return SmokeTest.model_validate({"name": name, "endpoint": endpoint, **fields})


@pytest.fixture
def app() -> Iterator[AppServer]:
    with AppServer() as server:
        yield server


def timed(tests: list[SmokeTest], base_url: str, budget: float) -> tuple[SmokeReport, float]:
    began = time.monotonic()
    report = run_smoke_tests(tests, base_url, budget)
    return report, time.monotonic() - began


def test_all_pass_with_method_headers_and_body(app: AppServer) -> None:
    app.route("/health", Reply(200, '{"status": "healthy", "version": "2.4.1"}'))
    app.route("/orders", Reply(201, "created"))
    app.route("/", Reply(204))
    tests = [
        smoke("health", "/health", bodyContains="healthy", bodyMatches=r'"version": "2\.\d+'),
        smoke(
            "create-order",
            "/orders",
            method="POST",
            headers={"X-Smoke": "1", "Content-Type": "application/json"},
            body='{"sku": "a-1"}',
            expectedStatus=["201"],
        ),
        smoke("root", "/", method="HEAD", expectedStatus=["204", "200"]),
    ]

    report = run_smoke_tests(tests, app.url, 30)

    assert report.passed, report.summary()
    assert [result.name for result in report.results] == ["health", "create-order", "root"]
    assert [result.status for result in report.results] == [200, 201, 204]
    assert all(result.reason == "" and result.latency_ms > 0 for result in report.results)
    (order,) = app.received("/orders")
    assert order.method == "POST"
    assert order.body == b'{"sku": "a-1"}'
    assert order.headers["X-Smoke"] == "1"
    assert app.received("/")[0].method == "HEAD"
    assert report.to_record() == {
        "passed": "true",
        "tests": "3",
        "failed": "",
        "elapsedSeconds": f"{report.elapsed_seconds:.2f}",
    }


def test_a_wrong_status_fails_only_that_test(app: AppServer) -> None:
    app.route("/health", 200)
    app.route("/checkout", Reply(503, "maintenance"))
    app.route("/created", 201)
    tests = [
        smoke("health", "/health"),
        smoke("checkout", "/checkout"),
        smoke("exact", "/created", expectedStatus=["200", "204"]),
    ]

    report = run_smoke_tests(tests, app.url, 30)

    assert not report.passed
    assert [result.passed for result in report.results] == [True, False, False]
    checkout, exact = report.failures
    assert checkout.status == 503
    assert checkout.reason.startswith(f"GET {app.url}/checkout: expected status 2xx, got 503 after ")
    assert "expected status 200 or 204, got 201" in exact.reason
    assert report.summary().startswith("2 of 3 smoke tests failed: checkout: GET")


def test_body_checks_fail_with_what_the_body_was(app: AppServer) -> None:
    app.route("/version", Reply(200, "version=2.4.0 build=old"))
    tests = [
        smoke("contains", "/version", bodyContains="2.4.1"),
        smoke("matches", "/version", bodyMatches=r"build=[0-9a-f]{7}"),
        smoke("both-pass", "/version", bodyContains="2.4.0", bodyMatches=r"^version=\d"),
    ]

    report = run_smoke_tests(tests, app.url, 30)

    contains, matches, both = report.results
    assert (contains.passed, matches.passed, both.passed) == (False, False, True)
    assert contains.status == 200
    assert contains.reason == (
        f"GET {app.url}/version: body does not contain '2.4.1' (body starts 'version=2.4.0 build=old')"
    )
    assert "body does not match 'build=[0-9a-f]{7}'" in matches.reason


def test_a_test_slower_than_its_timeout_fails(app: AppServer) -> None:
    app.route("/slow", Reply(200, delay=3))

    report, elapsed = timed([smoke("slow", "/slow", timeoutSeconds=1)], app.url, 30)

    (result,) = report.results
    assert not result.passed and result.status is None
    assert result.reason == f"GET {app.url}/slow: no response within 1 s"
    assert 1000 <= result.latency_ms < 2000
    assert elapsed < 2.5, "the test waited for the reply instead of its timeout"


def test_the_budget_ends_a_slow_test_and_keeps_the_others(app: AppServer) -> None:
    # The slow reply never comes while the test runs, and its own timeout is ten times the budget: only the budget
    # can end it. The budget leaves the fast reply seconds, so a loaded machine cannot make it miss.
    budget, own_timeout = 3.0, 30
    app.route("/slow", Reply(200, delay=3600))
    app.route("/fast", 200)
    tests = [smoke("slow", "/slow", timeoutSeconds=own_timeout), smoke("fast", "/fast")]

    report, elapsed = timed(tests, app.url, budget)

    assert elapsed < own_timeout, "the run waited for the slow test's own timeout instead of ending with the budget"
    assert report.elapsed_seconds >= budget
    slow, fast = report.results
    assert fast.passed, fast.reason
    assert not slow.passed and slow.status is None
    assert slow.reason == "smoke budget of 3 s exhausted"
    assert slow.latency_ms >= budget * 1000


def test_tests_run_concurrently(app: AppServer) -> None:
    # Every reply waits until all six requests are in flight together; run one after another, the first would wait
    # out the barrier and answer 503.
    count = 6
    app.route("/work", Reply(200, "done", meet=threading.Barrier(count, timeout=20)))
    tests = [smoke(f"work-{index}", "/work", timeoutSeconds=30) for index in range(count)]

    report = run_smoke_tests(tests, app.url, 60)

    assert report.passed, report.summary()
    assert len(app.received("/work")) == count


def test_an_unreachable_service_fails_every_test() -> None:
    base = f"http://127.0.0.1:{unused_port()}"

    report = run_smoke_tests([smoke("health", "/health"), smoke("ready", "/ready")], base, 10)

    assert not report.passed
    assert all(
        result.reason.startswith(f"GET {base}/") and "ConnectError" in result.reason for result in report.results
    )


def test_no_tests_pass_at_once() -> None:
    report = run_smoke_tests([], "http://127.0.0.1:1", 30)
    assert report.passed and report.results == ()


def test_result_records_are_strings(app: AppServer) -> None:
    app.route("/health", 500)
    report = run_smoke_tests([smoke("health", "/health")], app.url, 30)
    record = report.results[0].to_record()
    assert record["passed"] == "false" and record["status"] == "500" and record["test"] == "health"
    assert report.to_record()["failed"] == "health"
