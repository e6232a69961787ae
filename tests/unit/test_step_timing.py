"""The time spans the benchmarks read off Pods and step logs: readiness, and a step's own work from its log."""

from __future__ import annotations

import json
from typing import Any

from testenv.step_timing import logged_work, readiness_span


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


def _line(time: str, action: str, **fields: Any) -> str:
    return json.dumps({"time": time, "step": "smoke", "service": "cart", "action": action, **fields})


def test_a_steps_work_runs_from_its_waited_line_to_its_last_line() -> None:
    log = "\n".join(
        [
            _line("2026-12-06T23:00:01.100+00:00", "waited", steps=["probe"], seconds=11.4),
            _line("2026-12-06T23:00:01.101+00:00", "from-preflight", slot="blue"),
            "a line some library printed",
            _line("2026-12-06T23:00:01.183+00:00", "smoke-result", test="api", passed="true"),
            _line("2026-12-06T23:00:01.190+00:00", "smoke-result", test="db", passed="true"),
        ]
    )
    assert logged_work(log) == 0.09


def test_a_step_that_waited_for_nothing_works_from_its_first_line() -> None:
    log = "\n".join(
        [_line("2026-12-06T23:00:00.500+00:00", "record-opened"), _line("2026-12-06T23:00:00.750+00:00", "passed")]
    )
    assert logged_work(log) == 0.25
    assert logged_work("Traceback (most recent call last):\n  nothing stamped") is None
