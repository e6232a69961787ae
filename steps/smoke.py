"""Run the spec's smoke tests against the idle slot, all at once, within one overall budget.

The smoke tests are the last gate before user traffic moves, and the switch waits on them, so they run
concurrently: the gate takes as long as the slowest test, not the sum of all of them. Each test keeps its own
``timeoutSeconds`` for the whole request, and ``smokeTestBudget`` bounds the lot: a test still running when the
budget ends fails with a reason that says so, rather than holding up the deploy.

Redirects are not followed, so a test can expect a 301 or a 302 itself. The results come back in the spec's order,
whatever order the tests finished in, so the audit record reads like the spec.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from bluegreen_spec import SmokeTest

#: How much of a body a failure reason quotes: enough to recognise an error page, short enough for a log line.
BODY_EXCERPT_CHARS = 200


def _format_ms(milliseconds: float) -> str:
    return f"{milliseconds:.0f} ms" if milliseconds < 1000 else f"{milliseconds / 1000:.1f} s"


@dataclass(frozen=True)
class SmokeResult:
    """How one smoke test went. ``reason`` is empty when it passed, and otherwise says every check that failed."""

    name: str
    passed: bool
    status: int | None
    latency_ms: float
    reason: str

    def to_record(self) -> dict[str, str]:
        """The result as string details of a DeploymentRecord entry."""
        return {
            "test": self.name,
            "passed": str(self.passed).lower(),
            "status": "" if self.status is None else str(self.status),
            "latencyMs": f"{self.latency_ms:.1f}",
            "reason": self.reason,
        }


@dataclass(frozen=True)
class SmokeReport:
    """All smoke tests of one run, in the spec's order."""

    passed: bool
    results: tuple[SmokeResult, ...]
    elapsed_seconds: float

    @property
    def failures(self) -> tuple[SmokeResult, ...]:
        """The tests that did not pass."""
        return tuple(result for result in self.results if not result.passed)

    def summary(self) -> str:
        """One line for a step's stderr: which tests failed and why, or that all passed."""
        if self.passed:
            return f"{len(self.results)} smoke tests passed in {self.elapsed_seconds:.1f} s"
        failed = "; ".join(f"{result.name}: {result.reason}" for result in self.failures)
        return f"{len(self.failures)} of {len(self.results)} smoke tests failed: {failed}"

    def to_record(self) -> dict[str, str]:
        """The report as string details of a DeploymentRecord entry; results are recorded one entry each."""
        return {
            "passed": str(self.passed).lower(),
            "tests": str(len(self.results)),
            "failed": ",".join(result.name for result in self.failures),
            "elapsedSeconds": f"{self.elapsed_seconds:.2f}",
        }


def smoke_url(test: SmokeTest, base_url: str) -> str:
    """The URL a test requests: ``base_url`` (scheme, host, port, optional path prefix) joined with the endpoint."""
    return base_url.rstrip("/") + test.endpoint


def _body_problems(test: SmokeTest, body: str) -> list[str]:
    problems = []
    excerpt = body[:BODY_EXCERPT_CHARS]
    if test.body_contains is not None and test.body_contains not in body:
        problems.append(f"body does not contain {test.body_contains!r} (body starts {excerpt!r})")
    if test.body_matches is not None and re.search(test.body_matches, body) is None:
        problems.append(f"body does not match {test.body_matches!r} (body starts {excerpt!r})")
    return problems


async def _run_one(client: httpx.AsyncClient, test: SmokeTest, base_url: str) -> SmokeResult:
    url = smoke_url(test, base_url)
    request = f"{test.method} {url}"
    started = time.perf_counter()

    def elapsed_ms() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        # httpx's timeout bounds each phase; the outer one bounds the whole request, body included, as a person
        # reading timeoutSeconds expects.
        async with asyncio.timeout(test.timeout_seconds):
            response = await client.request(
                test.method,
                url,
                headers=test.headers,
                content=None if test.body is None else test.body.encode(),
                timeout=float(test.timeout_seconds),
            )
    except (TimeoutError, httpx.TimeoutException):
        return SmokeResult(
            test.name, False, None, elapsed_ms(), f"{request}: no response within {test.timeout_seconds} s"
        )
    except httpx.HTTPError as error:
        reason = f"{request}: {type(error).__name__}: {error}"
        return SmokeResult(test.name, False, None, elapsed_ms(), reason)
    latency = elapsed_ms()
    problems = []
    if not test.accepts_status(response.status_code):
        expected = " or ".join(test.expected_status)
        problems.append(f"expected status {expected}, got {response.status_code} after {_format_ms(latency)}")
    problems.extend(_body_problems(test, response.text))
    reason = f"{request}: {'; '.join(problems)}" if problems else ""
    return SmokeResult(test.name, not problems, response.status_code, latency, reason)


async def run_smoke_tests_async(tests: Sequence[SmokeTest], base_url: str, budget_seconds: float) -> SmokeReport:
    """:func:`run_smoke_tests` for a caller that already runs an event loop."""
    started = time.perf_counter()
    if not tests:
        return SmokeReport(True, (), 0.0)
    async with httpx.AsyncClient(follow_redirects=False) as client:
        tasks = [asyncio.create_task(_run_one(client, test, base_url), name=f"smoke-{test.name}") for test in tests]
        done, pending = await asyncio.wait(tasks, timeout=max(budget_seconds, 0.0))
        budget_ended_ms = (time.perf_counter() - started) * 1000
        for task in pending:
            task.cancel()
        # Cancelled requests must finish unwinding before the client closes their connections.
        await asyncio.gather(*pending, return_exceptions=True)
    exhausted = f"smoke budget of {budget_seconds:g} s exhausted"
    results = tuple(
        task.result() if task in done else SmokeResult(test.name, False, None, budget_ended_ms, exhausted)
        for test, task in zip(tests, tasks, strict=True)
    )
    return SmokeReport(all(result.passed for result in results), results, time.perf_counter() - started)


def run_smoke_tests(tests: Sequence[SmokeTest], base_url: str, budget_seconds: float) -> SmokeReport:
    """Run every test concurrently against ``base_url``; tests unfinished after ``budget_seconds`` fail.

    Args:
        tests: the spec's smokeTests; results keep this order.
        base_url: scheme, host and port of the preview Service, such as ``http://user-service-preview.apps.svc:8080``.
        budget_seconds: the spec's smokeTestBudget in seconds; bounds the whole run.

    Returns:
        The report; it passed only if every test did. Nothing the service does raises.
    """
    return asyncio.run(run_smoke_tests_async(tests, base_url, budget_seconds))


__all__ = ["SmokeReport", "SmokeResult", "run_smoke_tests", "run_smoke_tests_async", "smoke_url"]
