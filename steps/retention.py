"""Retention windows: until when a previous (or failed) slot is kept, stamped on the slot Deployment itself.

The stamp lives on the Deployment, not only in the BlueGreenDeployment status, so cleanup decides from the object it
is about to remove; and cleanup still re-reads the live route before removing anything (invariant I2).
"""

from __future__ import annotations

from datetime import UTC, datetime

import bluegreen_spec as spec
from steps.clock import format_timestamp, parse_timestamp
from steps.kube import Obj


def until(duration: str, start: datetime | None = None) -> str:
    """The end of a window of ``duration`` that starts now (or at ``start``)."""
    return format_timestamp((start or datetime.now(UTC)) + spec.parse_duration(duration))


def stamp_of(deployment: Obj) -> str | None:
    """The retain-until stamp on a slot Deployment."""
    return (deployment["metadata"].get("annotations") or {}).get(spec.RETAIN_UNTIL_ANNOTATION)


def has_expired(stamp: str | None, at: datetime | None = None) -> bool:
    """Whether a stamp has passed; a missing or unreadable stamp counts as passed."""
    end = parse_timestamp(stamp)
    if end is None:
        return True
    return (at or datetime.now(UTC)) >= end


__all__ = ["has_expired", "stamp_of", "until"]
