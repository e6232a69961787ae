"""A step's own deadline and its retries of transient failures.

Argo cannot give either to steps that run as the containers of one ``containerSet`` Pod: its inner retry for a
container set re-runs a container on *any* non-zero exit, which would retry a failed health check and delay the
rollback, and there is no per-container deadline. Nor does every step retry its transient exit code through its
template: Argo waits out a ``retryStrategy``'s backoff before it looks at the expression, so a failed check would
wait that long too before the exit handler rolls back. So ``bluegreen-step --transient-retries K`` retries in the
step's own process, in a Pod of its own or a shared one, and ``--deadline-seconds N`` bounds a step in a shared Pod:

* the deadline covers every attempt and the waits between them; when it passes, the attempt in progress is
  interrupted and the step fails with a reason that names the deadline;
* a :class:`~steps.errors.Transient` failure is retried up to ``K`` times, waiting 5 s, then twice as long each time,
  at most a minute, and never past the deadline. Every other failure ends the step at once.

Steps are idempotent, so an interrupted attempt is safe to abandon, as a Pod killed at its deadline is.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from steps.errors import CheckFailed, StepError, Transient

FIRST_BACKOFF_SECONDS = 5.0
BACKOFF_FACTOR = 2.0
MAX_BACKOFF_SECONDS = 60.0


class DeadlineExceeded(CheckFailed):
    """The step ran past the deadline it was given; the attempt in progress was interrupted."""


def backoff_seconds(retry: int) -> float:
    """The wait before retry number ``retry`` (1-based): 5 s, 10 s, 20 s, ... at most 60 s."""
    return float(min(FIRST_BACKOFF_SECONDS * BACKOFF_FACTOR ** (retry - 1), MAX_BACKOFF_SECONDS))


@contextmanager
def deadline(step: str, seconds: float | None) -> Iterator[None]:
    """Interrupt the block with :class:`DeadlineExceeded` once ``seconds`` pass; no deadline when None."""
    if not seconds:
        yield
        return

    def expired(_signum: int, _frame: FrameType | None) -> None:
        raise DeadlineExceeded(
            f"{step} did not finish within its deadline of {seconds:g} s; "
            "the spec's timeouts for this step set the deadline"
        )

    # Whoever armed the process's one real-time timer before (a test runner's timeout, say) gets it back after.
    previous_handler = signal.signal(signal.SIGALRM, expired)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    began = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay:
            remaining = max(previous_delay - (time.monotonic() - began), 0.001)
            signal.setitimer(signal.ITIMER_REAL, remaining, previous_interval)


def run_with_retries(
    step: str,
    attempt: Callable[[], int],
    *,
    retries: int,
    deadline_seconds: float | None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run ``attempt`` until it returns, fails for good, or the deadline passes; returns its exit code.

    Raises the last :class:`StepError` when the step fails: a non-transient one at once, a transient one when the
    retries are spent, :class:`DeadlineExceeded` when the deadline passes.
    """
    with deadline(step, deadline_seconds):
        for retry in range(retries + 1):
            try:
                return attempt()
            except Transient as error:
                if retry == retries:
                    raise
                wait = backoff_seconds(retry + 1)
                print(
                    f"bluegreen-step {step}: {error}; retry {retry + 1} of {retries} in {wait:g} s",
                    file=sys.stderr,
                    flush=True,
                )
                sleep(wait)
    raise StepError(f"{step}: no attempt ran")  # unreachable: range(retries + 1) is never empty


__all__ = ["DeadlineExceeded", "backoff_seconds", "deadline", "run_with_retries"]
