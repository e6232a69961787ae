"""Exit codes of the step contract; the WorkflowTemplates retry only on ``TRANSIENT``."""

from __future__ import annotations

OK = 0
#: The step ran and what it checked failed (an unhealthy version, a breached threshold); do not retry.
FAILED = 1
#: Bad input or a spec that cannot be acted on; nothing was written.
BAD_INPUT = 2
#: A transient failure (API unavailable, throttled); running the step again may help (EX_TEMPFAIL).
TRANSIENT = 75

__all__ = ["BAD_INPUT", "FAILED", "OK", "TRANSIENT"]
