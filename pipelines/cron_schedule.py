"""Cron schedules as Argo's CronWorkflow reads them (robfig/cron's standard parser), checked before rendering.

A schedule Argo cannot parse is accepted by the API server as a plain string and only fails inside the controller, so
the cleanup would silently never run; ``bluegreen-render`` refuses it instead, naming the field that is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: robfig/cron's shorthands; ``@every <duration>`` is handled apart.
DESCRIPTORS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_EVERY = re.compile(r"^@every (?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAYS = {name: number for number, name in enumerate(_DAY_NAMES)}


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, _MONTHS),
    _Field("day of week", 0, 6, _DAYS),
)


def _value(text: str, field: _Field) -> int:
    number = field.names.get(text.lower()) if not text.isdigit() else int(text)
    if number is None or not field.low <= number <= field.high:
        raise ValueError(f"{field.name} {text!r} is not in {field.low}-{field.high}")
    return number


def _check_part(part: str, field: _Field) -> None:
    """One comma-separated part: ``*`` or ``?``, a value, or a range, each optionally ``/step``."""
    span, slash, step = part.partition("/")
    if slash and (not step.isdigit() or int(step) == 0):
        raise ValueError(f"{field.name} step {step!r} must be a positive number")
    if span in {"*", "?"}:
        return
    low, dash, high = span.partition("-")
    first = _value(low, field)
    if dash and _value(high, field) < first:
        raise ValueError(f"{field.name} range {span!r} runs backwards")


def check(schedule: str) -> None:
    """Raise ValueError naming the first field Argo's parser would refuse."""
    text = schedule.strip()
    if text.startswith("@"):
        if text in DESCRIPTORS or _EVERY.match(text):
            return
        raise ValueError(f"{text!r} is not one of {', '.join(sorted(DESCRIPTORS))} or '@every <duration>'")
    fields = text.split()
    if len(fields) != len(_FIELDS):
        raise ValueError(f"{text!r} has {len(fields)} fields; a cron schedule has five: minute hour day month weekday")
    for value, field in zip(fields, _FIELDS, strict=True):
        for part in value.split(","):
            if not part:
                raise ValueError(f"{field.name} {value!r} has an empty list item")
            _check_part(part, field)


__all__ = ["DESCRIPTORS", "check"]
