"""Watch the spec's Prometheus queries after the switch; a breach fails the run so the exit handler rolls back.

Probes and smoke tests prove the new version answers; only real traffic shows whether it answers *well*. So after
the switch, every ``interval`` for ``window``, each query is sent to Prometheus' instant-query API and its value is
compared with the query's ``max`` and ``min``. When one query's breaches reach ``failureLimit`` the analysis fails
at once: waiting out the window would only keep users on a bad version longer.

Silence must not pass for health. A query that returns no series is *no data*: inconclusive, so it is recorded but
not counted as a breach; yet a query that had no data for the whole window fails, because a misspelt metric name
would otherwise approve every deploy. Likewise, if Prometheus could not be reached at all the analysis fails and
names the URL. A connection error is retried until the next sample is due, then that sample is inconclusive.

The sampling schedule is the analysis' semantics, so time is injected (``clock``, ``sleep``) like in
:mod:`steps.probe`; tests skip the waiting without changing the schedule.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import httpx

from bluegreen_spec import Analysis, AnalysisQuery, parse_duration
from steps.clock import Clock, Sleep

#: First pause before retrying an unreachable Prometheus; doubles up to the cap, never past the next sample.
FIRST_RETRY_SECONDS = 1.0
RETRY_CAP_SECONDS = 8.0
#: How much of a non-JSON answer (a proxy's error page) an error message quotes.
EXCERPT_CHARS = 200


class SampleOutcome(StrEnum):
    """What one query's sample showed."""

    within = "Within"
    breach = "Breach"
    #: The query returned no series (or only NaN): inconclusive.
    no_data = "NoData"
    #: Prometheus answered with an error or with something that is not a usable result: inconclusive.
    query_error = "QueryError"
    #: Prometheus could not be reached until the next sample was due: inconclusive.
    unreachable = "Unreachable"


@dataclass(frozen=True)
class AnalysisSample:
    """One query's value (one per series) at one sampling time, and how it compared with the bounds."""

    query: str
    sample: int
    outcome: SampleOutcome
    values: tuple[float, ...]
    detail: str

    def to_record(self) -> dict[str, str]:
        """The sample as string details of a DeploymentRecord entry."""
        return {
            "query": self.query,
            "sample": str(self.sample),
            "outcome": self.outcome.value,
            "values": ",".join(f"{value:g}" for value in self.values),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class AnalysisReport:
    """The verdict, why, and every sample that led to it."""

    passed: bool
    reason: str
    samples: tuple[AnalysisSample, ...]
    breaches: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    def to_record(self) -> dict[str, str]:
        """The verdict as string details of a DeploymentRecord entry; samples are recorded one entry each."""
        return {
            "passed": str(self.passed).lower(),
            "reason": self.reason,
            "samples": str(len(self.samples)),
            "breaches": ",".join(f"{name}={count}" for name, count in self.breaches.items()),
            "elapsedSeconds": f"{self.elapsed_seconds:.1f}",
        }


@dataclass(frozen=True)
class _Answer:
    """What Prometheus said to one query: series values, or why there are none."""

    series: tuple[tuple[str, float], ...] = ()
    error: str = ""
    error_type: str = ""
    unreachable: bool = False


def _labels(metric: object) -> str:
    if not isinstance(metric, dict) or not metric:
        return "{}"
    return "{" + ",".join(f'{key}="{value}"' for key, value in sorted(metric.items())) + "}"


def _value(pair: object) -> float:
    """A Prometheus sample ``[timestamp, "value"]``'s value; raises ValueError when it is not one."""
    if not isinstance(pair, list) or len(pair) != 2:
        raise ValueError(f"{pair!r} is not a [timestamp, value] pair")
    return float(pair[1])


def _parse(response: httpx.Response) -> _Answer:
    try:
        payload = response.json()
    except ValueError:
        excerpt = response.text[:EXCERPT_CHARS]
        return _Answer(error=f"HTTP {response.status_code} with a body that is not JSON: {excerpt!r}")
    if not isinstance(payload, dict):
        return _Answer(error=f"HTTP {response.status_code} with JSON that is not an API response: {payload!r}"[:300])
    if payload.get("status") == "error":
        error_type = str(payload.get("errorType", "unknown"))
        message = f"HTTP {response.status_code}, {error_type}: {payload.get('error', 'no message')}"
        return _Answer(error=message, error_type=error_type)
    data = payload.get("data")
    if payload.get("status") != "success" or not isinstance(data, dict):
        return _Answer(error=f"HTTP {response.status_code} with neither a result nor an error: {payload!r}"[:300])
    result_type, result = data.get("resultType"), data.get("result")
    try:
        if result_type == "vector" and isinstance(result, list):
            return _Answer(series=tuple((_labels(item.get("metric")), _value(item.get("value"))) for item in result))
        if result_type == "scalar":
            return _Answer(series=(("", _value(result)),))
    except (AttributeError, TypeError, ValueError) as error:
        return _Answer(error=f"a {result_type} result Prometheus should not send: {error}")
    return _Answer(
        error=f"the query returns a {result_type}; analysis needs an instant vector or a scalar",
        error_type="bad_data",
    )


def _breach(query: AnalysisQuery, value: float) -> str:
    if query.max is not None and value > query.max:
        return f"{value:g} above max {query.max:g}"
    if query.min is not None and value < query.min:
        return f"{value:g} below min {query.min:g}"
    return ""


def _judge(query: AnalysisQuery, number: int, answer: _Answer) -> AnalysisSample:
    if answer.unreachable:
        return AnalysisSample(query.name, number, SampleOutcome.unreachable, (), answer.error)
    if answer.error:
        return AnalysisSample(query.name, number, SampleOutcome.query_error, (), answer.error)
    # NaN comes from a ratio over no traffic (0/0): it says nothing about the new version, so it is no data.
    series = [(labels, value) for labels, value in answer.series if not math.isnan(value)]
    values = tuple(value for _, value in series)
    if not series:
        return AnalysisSample(query.name, number, SampleOutcome.no_data, values, "no series")
    # A scalar has no labels; a series is named by its labels so a person can find the pod that breached.
    breaches = [
        f"{_breach(query, value)} for {labels}" if labels else _breach(query, value)
        for labels, value in series
        if _breach(query, value)
    ]
    if breaches:
        return AnalysisSample(query.name, number, SampleOutcome.breach, values, "; ".join(breaches))
    return AnalysisSample(query.name, number, SampleOutcome.within, values, "")


def _inconclusive_reason(query: AnalysisQuery, samples: list[AnalysisSample]) -> str:
    outcomes = {sample.outcome for sample in samples}
    if outcomes == {SampleOutcome.no_data}:
        return f"no data for query {query.name}; check the query: {query.query}"
    errors = [sample.detail for sample in samples if sample.outcome is SampleOutcome.query_error]
    if errors:
        return f"query {query.name} never gave a value; Prometheus answered: {errors[-1]}"
    return f"no data for query {query.name} in the samples Prometheus answered; check the query: {query.query}"


def run_analysis(
    analysis: Analysis,
    *,
    on_sample: Callable[[AnalysisSample], None] | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
    client: httpx.Client | None = None,
    query_timeout_seconds: float = 10.0,
) -> AnalysisReport:
    """Sample every query every ``interval`` for ``window``; fail early once a query's breaches reach failureLimit.

    The first sample is taken at once, the last one ``window`` later: ``window / interval + 1`` samples in all. One
    sample of a query counts at most one breach, however many of its series breach, so a query over many pods
    cannot use up failureLimit in a single look.

    Args:
        analysis: the spec's analysis: Prometheus URL, window, interval, failureLimit and queries.
        on_sample: called after every sample of every query, so the caller can log and record it as it happens.
        sleep: waits for the next sample and between retries; injected so tests can skip the waiting.
        clock: measures the schedule; must agree with ``sleep``.
        client: the HTTP client to use (its auth, TLS and proxy settings); one is made and closed when None.
        query_timeout_seconds: how long one query may take.

    Returns:
        The verdict with every sample. What Prometheus does never raises.
    """
    window = parse_duration(analysis.window).total_seconds()
    interval = parse_duration(analysis.interval).total_seconds()  # above zero: the spec refuses 0s
    endpoint = analysis.prometheus_url.rstrip("/") + "/api/v1/query"
    http = client if client is not None else httpx.Client()
    try:
        return _Run(analysis, endpoint, window, interval, http, query_timeout_seconds, on_sample, sleep, clock).run()
    finally:
        if client is None:
            http.close()


class _Run:
    """One analysis: the schedule, the samples so far and the breach counts."""

    def __init__(
        self,
        analysis: Analysis,
        endpoint: str,
        window: float,
        interval: float,
        client: httpx.Client,
        timeout: float,
        on_sample: Callable[[AnalysisSample], None] | None,
        sleep: Sleep,
        clock: Clock,
    ) -> None:
        self.analysis = analysis
        self.endpoint = endpoint
        self.window = window
        self.interval = interval
        self.client = client
        self.timeout = timeout
        self.on_sample = on_sample
        self.sleep = sleep
        self.clock = clock
        self.started = clock()
        self.samples: list[AnalysisSample] = []
        self.breaches = {query.name: 0 for query in analysis.queries}

    def report(self, passed: bool, reason: str) -> AnalysisReport:
        return AnalysisReport(passed, reason, tuple(self.samples), dict(self.breaches), self.clock() - self.started)

    def ask(self, query: AnalysisQuery, retry_until: float) -> _Answer:
        """Send one query; retry connection errors until ``retry_until``, when the next sample is due."""
        pause = FIRST_RETRY_SECONDS
        while True:
            try:
                response = self.client.get(self.endpoint, params={"query": query.query}, timeout=self.timeout)
            except httpx.TransportError as error:
                unreachable = _Answer(error=f"GET {self.endpoint}: {type(error).__name__}: {error}", unreachable=True)
                pause = min(pause, retry_until - self.clock())
                if pause <= 0:
                    return unreachable
                self.sleep(pause)
                pause = min(pause * 2, RETRY_CAP_SECONDS)
                continue
            return _parse(response)

    def run(self) -> AnalysisReport:
        ends = self.started + self.window
        due = self.started
        number = 0
        limit = self.analysis.failure_limit
        while due <= ends:
            wait = due - self.clock()
            if wait > 0:
                self.sleep(wait)
            number += 1
            # A fixed schedule from the start: a slow sample does not push the later ones past the window.
            due = self.started + number * self.interval
            for query in self.analysis.queries:
                answer = self.ask(query, retry_until=min(due, ends))
                sample = _judge(query, number, answer)
                self.samples.append(sample)
                if self.on_sample is not None:
                    self.on_sample(sample)
                if answer.error_type == "bad_data":
                    # The query itself is wrong; asking again for the rest of the window cannot change that.
                    return self.report(False, f"Prometheus rejected query {query.name}: {answer.error}")
                if sample.outcome is SampleOutcome.breach:
                    self.breaches[query.name] += 1
                    if self.breaches[query.name] >= limit:
                        return self.report(
                            False,
                            f"query {query.name} breached its bounds {self.breaches[query.name]} times, reaching "
                            f"failureLimit {limit}; last: {sample.detail}",
                        )
        return self.verdict()

    def verdict(self) -> AnalysisReport:
        """After the whole window: pass, unless Prometheus was never reached or a query never gave a value."""
        if self.samples and all(sample.outcome is SampleOutcome.unreachable for sample in self.samples):
            return self.report(
                False,
                f"Prometheus at {self.analysis.prometheus_url} was unreachable for the whole {self.analysis.window} "
                f"window; last: {self.samples[-1].detail}",
            )
        problems = []
        for query in self.analysis.queries:
            own = [sample for sample in self.samples if sample.query == query.name]
            if not any(sample.outcome in {SampleOutcome.within, SampleOutcome.breach} for sample in own):
                problems.append(_inconclusive_reason(query, own))
        if problems:
            return self.report(False, "; ".join(problems))
        samples_per_query = len(self.samples) // len(self.analysis.queries)
        breached = sum(self.breaches.values())
        return self.report(
            True,
            f"{len(self.analysis.queries)} queries stayed within bounds over {self.analysis.window} "
            f"({samples_per_query} samples each, {breached} breaches below failureLimit "
            f"{self.analysis.failure_limit})",
        )


__all__ = ["AnalysisReport", "AnalysisSample", "SampleOutcome", "run_analysis"]
