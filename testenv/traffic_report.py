"""What the load harness saw, per phase of a run: counts, latencies, and how the switch looked from the client.

A phase is a window of wall-clock time (a workflow run, from submit to end) with the version that answered before it
and the version that should answer after it. For each path (``direct`` through kube-proxy, ``haproxy`` through the
ingress hop) :func:`summarise` counts:

- requests sent, and requests that failed: a connection error, a timeout or a status other than 200;
- requests the client had to skip because too many were waiting (the rate was not kept);
- p50, p99 and max latency of the requests sent;
- from the switch (the Service's selector change, as the watch saw it) to the end of the last request that the old
  version answered;
- old-after-new: requests on new connections that started after a new connection had already reached the new
  version and were still answered by the old one. Kept-alive connections may stay on the old Pods until those close
  them, which is how draining works; a new connection must never go back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from testenv.load_client import RequestLine

SKIPPED = "skipped"


@dataclass(frozen=True)
class Phase:
    """One window of the run, and what it should look like from the client."""

    name: str
    start: float
    end: float
    old_version: str
    new_version: str
    switch_at: float | None = None


@dataclass(frozen=True)
class PathSummary:
    """One path's requests in one phase."""

    phase: str
    target: str
    sent: int
    failed: int
    skipped: int
    retried: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    rate: float
    old_served_after_switch_s: float | None
    old_after_new: int
    errors: dict[str, int]

    @property
    def kept_rate(self) -> bool:
        """Whether every due request was sent."""
        return self.skipped == 0


def failed(line: RequestLine) -> bool:
    """A request that was sent and did not get a 200."""
    return line.error != SKIPPED and (bool(line.error) or line.status != 200)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def _summary(phase: Phase, target: str, lines: list[RequestLine], after_switch: list[RequestLine]) -> PathSummary:
    sent = [line for line in lines if line.error != SKIPPED]
    latencies = [line.latency_ms for line in sent]
    errors: dict[str, int] = {}
    for line in sent:
        if failed(line):
            key = line.error or f"HTTP {line.status}"
            errors[key] = errors.get(key, 0) + 1
    old_served: float | None = None
    old_after_new = 0
    if phase.switch_at is not None and phase.old_version != phase.new_version:
        switch = phase.switch_at
        old_ends = [
            line.start + line.latency_ms / 1000.0
            for line in after_switch
            if line.version == phase.old_version and line.start + line.latency_ms / 1000.0 >= switch
        ]
        old_served = max(old_ends) - switch if old_ends else 0.0
        fresh = sorted((line for line in after_switch if line.flow == "new"), key=lambda x: x.start)
        first_new = next((line.start for line in fresh if line.version == phase.new_version), None)
        if first_new is not None:
            old_after_new = sum(1 for line in fresh if line.start > first_new and line.version == phase.old_version)
    span = max(phase.end - phase.start, 1e-9)
    return PathSummary(
        phase=phase.name,
        target=target,
        sent=len(sent),
        failed=sum(1 for line in sent if failed(line)),
        skipped=len(lines) - len(sent),
        retried=sum(1 for line in sent if line.retried),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies, default=0.0),
        rate=len(sent) / span,
        old_served_after_switch_s=old_served,
        old_after_new=old_after_new,
        errors=errors,
    )


def summarise(phases: Sequence[Phase], lines: Sequence[RequestLine]) -> list[PathSummary]:
    """Each phase's summary for each path, in phase order then path name.

    Counts and latencies take the requests that started inside the phase. The switch's effects may outlast the run
    that made it (kept-alive connections stay on the old Pods), so the switch figures take every request from the
    phase's switch up to the next phase's switch.
    """
    targets = sorted({line.target for line in lines})
    switches = sorted(phase.switch_at for phase in phases if phase.switch_at is not None)
    summaries = []
    for phase in phases:
        inside = [line for line in lines if phase.start <= line.start < phase.end]
        after: list[RequestLine] = []
        if phase.switch_at is not None:
            until = next((at for at in switches if at > phase.switch_at), math.inf)
            after = [line for line in lines if phase.switch_at <= line.start < until and line.error != SKIPPED]
        for target in targets:
            summaries.append(
                _summary(
                    phase,
                    target,
                    [line for line in inside if line.target == target],
                    [line for line in after if line.target == target],
                )
            )
    return summaries


def table(summaries: Sequence[PathSummary]) -> str:
    """The per-phase table, one row per phase and path."""
    header = (
        f"{'phase':<34} {'path':<8} {'sent':>6} {'failed':>6} {'skipped':>7} {'retried':>7} {'req/s':>6} "
        f"{'p50ms':>7} {'p99ms':>7} {'maxms':>8} {'old<-switch s':>13} {'old-after-new':>13}"
    )
    rows = [header, "-" * len(header)]
    for s in summaries:
        old = "-" if s.old_served_after_switch_s is None else f"{s.old_served_after_switch_s:.2f}"
        rows.append(
            f"{s.phase[:34]:<34} {s.target:<8} {s.sent:>6} {s.failed:>6} {s.skipped:>7} {s.retried:>7} {s.rate:>6.1f} "
            f"{s.p50_ms:>7.1f} {s.p99_ms:>7.1f} {s.max_ms:>8.1f} {old:>13} {s.old_after_new:>13}"
        )
        if s.errors:
            rows.append(f"{'':<34} {'':<8} errors: {s.errors}")
    return "\n".join(rows)


def live_line(lines: Sequence[RequestLine], window: float = 1.0) -> str:
    """One line for a terminal: the version mix of the last ``window`` seconds and the failures so far."""
    if not lines:
        return "traffic: no requests yet"
    newest = max(line.start for line in lines)
    recent = [line for line in lines if line.start > newest - window and line.error != SKIPPED]
    mix: dict[str, int] = {}
    for line in recent:
        key = line.version if not failed(line) else "FAILED"
        mix[key] = mix.get(key, 0) + 1
    shown = " ".join(f"{version}:{count}" for version, count in sorted(mix.items()))
    total_failed = sum(1 for line in lines if failed(line))
    return f"traffic: {len(recent) / window:.0f} req/s [{shown}] failed so far: {total_failed} of {len(lines)}"
