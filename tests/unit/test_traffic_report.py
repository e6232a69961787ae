"""The per-phase summary: failures, skipped requests, percentiles and the switch as the client saw it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from testenv.load_client import RequestLine
from testenv.traffic_report import Phase, live_line, percentile, summarise, table


def _line(
    start: float, version: str, flow: str = "new", status: int = 200, error: str = "", ms: float = 1.0
) -> RequestLine:
    return RequestLine(start, "direct", flow, status, ms, version, error, False)


def test_failures_skips_and_latencies_are_counted_per_phase() -> None:
    lines = [
        _line(0.1, "v1", ms=2.0),
        _line(0.2, "v1", status=503, ms=4.0),
        _line(0.3, "", status=0, error="ConnectionRefusedError", ms=8.0),
        _line(0.4, "", status=0, error="skipped", ms=0.0),
        _line(1.5, "v1"),  # outside the phase
    ]
    (summary,) = summarise([Phase("p", 0.0, 1.0, "v1", "v1")], lines)

    assert (summary.sent, summary.failed, summary.skipped) == (3, 2, 1)
    assert summary.errors == {"HTTP 503": 1, "ConnectionRefusedError": 1}
    assert (summary.p50_ms, summary.max_ms) == (4.0, 8.0)
    assert summary.old_served_after_switch_s is None
    assert "errors:" in table([summary])


def test_the_switch_as_the_client_saw_it() -> None:
    lines = [
        _line(9.0, "v1"),
        _line(10.5, "v1", flow="keepalive", ms=1500.0),  # a kept-alive connection drains until 12.0
        _line(10.6, "v2"),
        _line(10.7, "v1"),  # a new connection back on the old version after one reached the new
        _line(10.8, "v2"),
    ]
    (summary,) = summarise([Phase("deploy", 8.0, 20.0, "v1", "v2", switch_at=10.0)], lines)

    assert summary.old_served_after_switch_s == 2.0
    assert summary.old_after_new == 1


def test_a_clean_switch_has_no_old_after_new() -> None:
    lines = [_line(9.0, "v1"), _line(10.1, "v1"), _line(10.2, "v2"), _line(10.3, "v2", flow="keepalive")]
    (summary,) = summarise([Phase("deploy", 8.0, 20.0, "v1", "v2", switch_at=10.0)], lines)

    assert summary.old_after_new == 0
    assert summary.old_served_after_switch_s is not None and abs(summary.old_served_after_switch_s - 0.101) < 1e-9


@given(
    st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1),
    st.floats(min_value=0.1, max_value=100),
)
def test_a_percentile_is_one_of_the_values_and_grows_with_q(values: list[float], q: float) -> None:
    assert percentile(values, q) in values
    assert percentile(values, q) <= percentile(values, 100) == max(values)


def test_the_live_line_names_the_mix_and_the_failures() -> None:
    lines = [_line(10.0, "v1"), _line(10.5, "v2"), _line(10.6, "", status=0, error="timeout")]
    assert live_line(lines) == "traffic: 3 req/s [FAILED:1 v1:1 v2:1] failed so far: 1 of 3"
    assert live_line([]) == "traffic: no requests yet"
