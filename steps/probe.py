"""Health-check the idle slot the way the kubelet's readiness probe would, before any user traffic reaches it.

The pods' own readiness probe runs inside each node; this probe runs from the step container through the preview
Service, so a healthy verdict also proves the Service, its selector and the network path in between. It follows
the kubelet's rules on purpose, so a platform team reads ``healthCheck`` exactly like the probes they already write:

* wait ``initialDelaySeconds``, then one attempt every ``periodSeconds``, each bounded by ``timeoutSeconds``;
* HTTP 200-399 is success; redirects are not followed, so a 3xx counts as it is;
* HTTPS does not verify the certificate (the kubelet skips verification too: the slot's pods rarely carry a
  certificate for the preview Service's name);
* healthy after ``successThreshold`` consecutive successes, unhealthy after ``failureThreshold`` consecutive failures.

A flapping service can alternate forever without reaching either threshold, so the probe also has an overall
deadline. ``periodSeconds`` and ``initialDelaySeconds`` are the probe's semantics, not waits on state, so time is
injected (``clock``, ``sleep``): tests skip the waiting without changing what is waited for.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

import httpx

from bluegreen_spec import HealthCheck
from steps.clock import Clock, Sleep

#: Sent instead of httpx's default, so the service's access log shows who is asking (the kubelet sends kube-probe/).
USER_AGENT = "bluegreen-probe/1"


def is_success_status(status: int) -> bool:
    """Whether the kubelet would count this HTTP status as a successful probe: 200-399."""
    return 200 <= status < 400


def format_latency(milliseconds: float) -> str:
    """``12 ms`` below a second, ``2.0 s`` above: how long something took, in the unit a person reads fastest."""
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms" if milliseconds >= 10 else f"{milliseconds:.1f} ms"
    return f"{milliseconds / 1000:.1f} s"


class ProbeVerdict(StrEnum):
    """How a probe ended."""

    healthy = "Healthy"
    unhealthy = "Unhealthy"
    #: Neither threshold was reached before the overall deadline: the service flaps or answers too slowly.
    no_verdict = "NoVerdict"


@dataclass(frozen=True)
class ProbeAttempt:
    """One request of the probe: what came back (a status or an error) and how long it took."""

    number: int
    url: str
    succeeded: bool
    status: int | None
    error: str
    latency_ms: float

    def describe(self) -> str:
        """``503 after 2.0 ms`` or ``no response within 1 s``: the outcome as one phrase."""
        if self.status is not None and not self.error:
            return f"{self.status} after {format_latency(self.latency_ms)}"
        return self.error

    def to_record(self) -> dict[str, str]:
        """The attempt as string details of a DeploymentRecord entry."""
        return {
            "attempt": str(self.number),
            "url": self.url,
            "succeeded": str(self.succeeded).lower(),
            "status": "" if self.status is None else str(self.status),
            "error": self.error,
            "latencyMs": f"{self.latency_ms:.1f}",
        }


@dataclass(frozen=True)
class ProbeResult:
    """The probe's verdict, why, and every attempt that led to it, in order."""

    url: str
    verdict: ProbeVerdict
    reason: str
    attempts: tuple[ProbeAttempt, ...]
    elapsed_seconds: float

    @property
    def healthy(self) -> bool:
        """Whether the successThreshold was reached."""
        return self.verdict is ProbeVerdict.healthy

    def to_record(self) -> dict[str, str]:
        """The verdict as string details of a DeploymentRecord entry; attempts are recorded one entry each."""
        return {
            "url": self.url,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "attempts": str(len(self.attempts)),
            "elapsedSeconds": f"{self.elapsed_seconds:.1f}",
        }


def probe_url(check: HealthCheck, base_url: str) -> str:
    """The URL one attempt requests: ``base_url``'s host and port, the check's scheme, the check's path.

    A path on ``base_url`` is kept as a prefix, so a caller may point the probe below a path-routed gateway.
    """
    base = urlsplit(base_url)
    if not base.scheme or not base.netloc:
        raise ValueError(f"{base_url!r} is not a base URL; use scheme://host:port, such as http://svc.ns.svc:8080")
    return f"{check.http_get.scheme.lower()}://{base.netloc}{base.path.rstrip('/')}{check.http_get.path}"


def default_deadline_seconds(check: HealthCheck) -> float:
    """The spec's probe budget (:meth:`HealthCheck.budget_seconds`), which the spec keeps inside the step's deadline.

    Within that many attempts a service that is either up or down reaches a verdict; one that alternates does not,
    and is better reported as flapping than probed forever.
    """
    return check.budget_seconds()


def _attempt(client: httpx.Client, url: str, number: int, timeout: float, clock: Clock) -> ProbeAttempt:
    started = clock()
    try:
        response = client.get(url, timeout=timeout)
    except httpx.TimeoutException:
        latency_ms = (clock() - started) * 1000
        return ProbeAttempt(number, url, False, None, f"no response within {timeout:g} s", latency_ms)
    except httpx.HTTPError as error:
        latency_ms = (clock() - started) * 1000
        return ProbeAttempt(number, url, False, None, f"{type(error).__name__}: {error}", latency_ms)
    latency_ms = (clock() - started) * 1000
    # httpx bounds each phase (connect, each read) by the timeout; the kubelet bounds the whole request. A response
    # that arrived, but later than timeoutSeconds, is a failure as the kubelet would have given up on it.
    if latency_ms > timeout * 1000:
        late = f"{response.status_code} after {format_latency(latency_ms)}, later than the {timeout:g} s timeout"
        return ProbeAttempt(number, url, False, response.status_code, late, latency_ms)
    return ProbeAttempt(number, url, is_success_status(response.status_code), response.status_code, "", latency_ms)


def run_probe(
    check: HealthCheck,
    base_url: str,
    *,
    on_attempt: Callable[[ProbeAttempt], None] | None = None,
    deadline_seconds: float | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
) -> ProbeResult:
    """Probe ``base_url`` with ``check``'s readiness-probe semantics until a threshold is reached or time runs out.

    Args:
        check: the spec's healthCheck: path, scheme, delays and thresholds.
        base_url: scheme, host and port of the preview Service, such as ``http://user-service-preview.apps.svc:8080``;
            the scheme is replaced by the check's.
        on_attempt: called after every attempt, in order, so the caller can log and record it as it happens.
        deadline_seconds: no attempt starts later than this after the call; an attempt under way still ends within
            its timeout. Defaults to :func:`default_deadline_seconds`.
        sleep: waits between attempts; injected so tests can skip the waiting.
        clock: measures the schedule, the deadline and each attempt's latency; must agree with ``sleep``.

    Returns:
        The verdict with every attempt. Never raises for what the service does; a bad ``base_url`` is a ValueError.
    """
    url = probe_url(check, base_url)
    budget = default_deadline_seconds(check) if deadline_seconds is None else deadline_seconds
    started = clock()
    deadline = started + budget
    attempts: list[ProbeAttempt] = []
    consecutive_successes = 0
    consecutive_failures = 0
    next_attempt_at = started + check.initial_delay_seconds

    def result(verdict: ProbeVerdict, reason: str) -> ProbeResult:
        return ProbeResult(url, verdict, f"GET {url}: {reason}", tuple(attempts), clock() - started)

    with httpx.Client(verify=False, follow_redirects=False, headers={"User-Agent": USER_AGENT}) as client:
        while next_attempt_at <= deadline:
            wait = next_attempt_at - clock()
            if wait > 0:
                sleep(wait)
            attempt = _attempt(client, url, len(attempts) + 1, float(check.timeout_seconds), clock)
            # Like the kubelet's ticker, attempts keep a fixed schedule from the first one, so small delays do not
            # add up; an attempt that overran its period waits for the next tick, as a Go ticker drops the missed.
            next_attempt_at += check.period_seconds
            overran = clock() - next_attempt_at
            if overran > 0:
                next_attempt_at += math.ceil(overran / check.period_seconds) * check.period_seconds
            attempts.append(attempt)
            if on_attempt is not None:
                on_attempt(attempt)
            if attempt.succeeded:
                consecutive_successes, consecutive_failures = consecutive_successes + 1, 0
            else:
                consecutive_successes, consecutive_failures = 0, consecutive_failures + 1
            if consecutive_successes >= check.success_threshold:
                return result(
                    ProbeVerdict.healthy,
                    f"healthy: {attempt.describe()}, {consecutive_successes} consecutive successes "
                    f"reached successThreshold {check.success_threshold} at attempt {attempt.number}",
                )
            if consecutive_failures >= check.failure_threshold:
                return result(
                    ProbeVerdict.unhealthy,
                    f"unhealthy: {attempt.describe()}; {consecutive_failures} consecutive failures "
                    f"reached failureThreshold {check.failure_threshold} at attempt {attempt.number}",
                )
    last = f"; last: {attempts[-1].describe()}" if attempts else ""
    return result(
        ProbeVerdict.no_verdict,
        f"no verdict within {budget:g} s: {len(attempts)} attempts reached neither successThreshold "
        f"{check.success_threshold} nor failureThreshold {check.failure_threshold}{last}",
    )


__all__ = [
    "ProbeAttempt",
    "ProbeResult",
    "ProbeVerdict",
    "default_deadline_seconds",
    "format_latency",
    "is_success_status",
    "probe_url",
    "run_probe",
]
