"""One JSON object per line on stdout for every action, so Argo's log view and log pipelines can both read it."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO


class StepLog:
    """A structured logger bound to one step and service."""

    def __init__(self, step: str, service: str, stream: TextIO | None = None) -> None:
        self.step = step
        self.service = service
        self._stream = stream

    def __call__(self, action: str, **fields: Any) -> None:
        """Write one line: time, step, service, action and the given fields."""
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "step": self.step,
            "service": self.service,
            "action": action,
            **fields,
        }
        stream = self._stream or sys.stdout
        stream.write(json.dumps(line, default=str, sort_keys=False) + "\n")
        stream.flush()


__all__ = ["StepLog"]
