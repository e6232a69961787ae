"""Time as the steps see it: injectable clocks for waits, and the one timestamp format the API and records use.

Waits take a :data:`Clock` and a :data:`Sleep` so tests can run them on a clock that skips ahead instead of sleeping.
Timestamps are RFC 3339 in UTC with whole seconds, as the Kubernetes API writes ``metav1.Time``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

#: Returns seconds on a monotonic scale; only differences are used.
Clock = Callable[[], float]
#: Blocks for the given number of seconds.
Sleep = Callable[[float], None]

#: ``2026-01-31T09:30:00Z``.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_timestamp(moment: datetime) -> str:
    """``moment`` as the API writes a timestamp."""
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def now() -> str:
    """The current time as the API writes it."""
    return format_timestamp(datetime.now(UTC))


def parse_timestamp(stamp: str | None) -> datetime | None:
    """A timestamp the API or a step wrote; None when it is missing or unreadable."""
    if not stamp:
        return None
    try:
        return datetime.strptime(stamp, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


__all__ = ["TIMESTAMP_FORMAT", "Clock", "Sleep", "format_timestamp", "now", "parse_timestamp"]
