"""When a retained slot's window has passed: the one predicate every cleanup path asks before removing a slot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from steps.clock import format_timestamp
from steps.retention import has_expired

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


@given(st.integers(min_value=1, max_value=10 * 365 * 24 * 3600))
def test_a_window_still_open_has_not_expired(seconds_left: int) -> None:
    assert not has_expired(format_timestamp(NOW + timedelta(seconds=seconds_left)), at=NOW)


@given(st.integers(min_value=0, max_value=10 * 365 * 24 * 3600))
def test_a_window_that_ended_has_expired(seconds_ago: int) -> None:
    assert has_expired(format_timestamp(NOW - timedelta(seconds=seconds_ago)), at=NOW)


def test_a_missing_or_unreadable_stamp_counts_as_expired() -> None:
    # Cleanup still re-reads the live route before removing anything: a slot without a stamp is never live.
    assert has_expired(None, at=NOW)
    assert has_expired("", at=NOW)
    assert has_expired("next tuesday", at=NOW)
