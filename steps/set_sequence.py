"""The order of the steps that share a Pod: each step waits for the ones before it to end, then runs.

Argo's executor could keep that order itself (a containerSet's ``dependencies``), but at a cost paid at every step
boundary of a deploy: it looks for a finished program once a second, it looks for a finished dependency once a
second, and only then does the next step's Python start and load its libraries. On the local cluster that came to
0.9 to 2.8 s per boundary. So every step's program starts with the Pod, loads everything it needs, and then waits
here, looking every :data:`POLL_SECONDS` for the end marker the step before it leaves in the directory all the Pod's
containers share (``--set-state``). A step writes its marker, its exit code, as the last thing it does.

A step that dies without writing one (killed for memory, say) still ends: Argo's executor writes every container's
exit code under :data:`EXECUTOR_STATE` once it has reaped the program, and the wait reads that too. Every wait has a
deadline, the sum of the earlier steps' own deadlines plus a margin, rendered into ``--wait-seconds``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from steps.errors import CheckFailed, StepError

#: How often a waiting step looks for the markers: well below the one second Argo's executor takes.
POLL_SECONDS = 0.05
#: Where Argo's executor (emissary) writes ``<container>/exitcode`` when a container's program has ended.
EXECUTOR_STATE = Path("/var/run/argo/ctr")


class DependencyFailed(StepError):
    """A step this one waits for ended with a non-zero exit code, so this one does not run."""

    def __init__(self, step: str, code: int) -> None:
        # The same words as Argo's executor uses for a container it does not start, so readers of a run treat both
        # alike: the step did not run.
        super().__init__(f'dependency "{step}" exited with non-zero code: {code}; this step did not run')
        self.step = step
        self.code = code


def mark_ended(directory: Path, step: str, code: int) -> None:
    """Leave ``step``'s exit code in ``directory``, whole or not at all (a waiting step may read it any moment)."""
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{step}.{os.getpid()}"
    partial.write_text(str(int(code)))
    partial.replace(directory / step)


def _read_code(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    # The executor writes its file in place, so a read can catch it empty; the next look finds it whole.
    return int(text) if text.lstrip("-").isdigit() else None


def exit_code(directory: Path, step: str, executor_state: Path = EXECUTOR_STATE) -> int | None:
    """``step``'s exit code once it has ended: from its own marker, else from Argo's executor; None while it runs."""
    own = _read_code(directory / step)
    if own is not None:
        return own
    return _read_code(executor_state / step / "exitcode")


def wait_for(
    steps: Sequence[str],
    directory: Path,
    deadline_seconds: float,
    *,
    executor_state: Path = EXECUTOR_STATE,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Block until every one of ``steps`` has ended with 0; returns the seconds waited.

    Raises:
        DependencyFailed: one of them ended otherwise (the first found, in the order given).
        CheckFailed: they had not all ended within ``deadline_seconds``.
    """
    started = clock()
    waiting = list(steps)
    while True:
        for step in list(waiting):
            code = exit_code(directory, step, executor_state)
            if code is None:
                continue
            if code != 0:
                raise DependencyFailed(step, code)
            waiting.remove(step)
        if not waiting:
            return clock() - started
        if clock() - started >= deadline_seconds:
            raise CheckFailed(
                f"waited {deadline_seconds:.0f} s for {', '.join(waiting)} to end, longer than their deadlines allow; "
                "the Pod's events and those steps' logs say why they did not end"
            )
        sleep(POLL_SECONDS)


__all__ = ["EXECUTOR_STATE", "POLL_SECONDS", "DependencyFailed", "exit_code", "mark_ended", "wait_for"]
