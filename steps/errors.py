"""Step failures carry the contract's exit code and a one-line reason that says what failed and what to do."""

from __future__ import annotations

from steps import exit_codes


class StepError(Exception):
    """A step cannot go on; ``str(error)`` is the one line printed on stderr."""

    exit_code = exit_codes.FAILED


class CheckFailed(StepError):
    """What the step checked is not so: the new version is unhealthy, a threshold was breached."""


class BadInput(StepError):
    """The input or the spec cannot be acted on; raised before any write."""

    exit_code = exit_codes.BAD_INPUT


class Transient(StepError):
    """The API or a dependency is unavailable for now; running the step again may help."""

    exit_code = exit_codes.TRANSIENT


__all__ = ["BadInput", "CheckFailed", "StepError", "Transient"]
