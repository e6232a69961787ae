"""The time spans the benchmarks read off Pods: readiness from creation to the last Ready condition."""

from __future__ import annotations

from typing import Any

from testenv.step_timing import readiness_span


def _pod(created: str, ready_at: str | None) -> dict[str, Any]:
    conditions = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": created}]
    if ready_at is not None:
        conditions.append({"type": "Ready", "status": "True", "lastTransitionTime": ready_at})
    return {"metadata": {"creationTimestamp": created}, "status": {"conditions": conditions}}


def test_readiness_runs_from_the_first_creation_to_the_last_ready() -> None:
    pods = [
        _pod("2026-11-27T07:00:01Z", "2026-11-27T07:00:12Z"),
        _pod("2026-11-27T07:00:00Z", "2026-11-27T07:00:11Z"),
        _pod("2026-11-27T07:00:02Z", "2026-11-27T07:00:14Z"),
    ]
    assert readiness_span(pods) == 14.0


def test_readiness_is_zero_until_every_pod_is_ready() -> None:
    pods = [_pod("2026-11-27T07:00:00Z", "2026-11-27T07:00:11Z"), _pod("2026-11-27T07:00:00Z", None)]
    assert readiness_span(pods) == 0.0
    assert readiness_span([]) == 0.0
