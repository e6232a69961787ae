"""Every way a step fails, with the contract's exit code and a one-line reason that says what failed and what to do.

``str(error)`` is the line ``bluegreen-step`` prints on stderr; ``error.exit_code`` is what it exits with (see
:class:`bluegreen_contract.ExitCode`). The hierarchy::

    StepError             1  a step cannot go on
    ├── CheckFailed       1  what the step checked is not so (unhealthy version, breached threshold, a refusal
    │                        by the API server after the step had already written something)
    ├── BadInput          2  the input or the spec cannot be acted on; raised before any write
    ├── Transient        75  the API or a dependency is unavailable for now; the templates retry only this
    │   └── Unreachable  75  no answer at all from the API server until the retry deadline; names the server
    └── ApiError          1  an API answer the step cannot work around (403, say); carries status and reason
        ├── Conflict      1  409: the object already exists, or kept changing after every fresh read
        └── NotFound      1  404: the object or its kind does not exist

A 400 or 422 from the API server becomes :class:`BadInput` while the step has written nothing, and
:class:`CheckFailed` after it has (see :mod:`steps.kube`): "nothing written" must stay true.
"""

from __future__ import annotations

from bluegreen_contract import ExitCode


class StepError(Exception):
    """A step cannot go on; ``str(error)`` is the one line printed on stderr."""

    exit_code = ExitCode.FAILED


class CheckFailed(StepError):
    """What the step checked is not so: the new version is unhealthy, a threshold was breached."""


class BadInput(StepError):
    """The input or the spec cannot be acted on; raised before any write."""

    exit_code = ExitCode.BAD_INPUT


class Transient(StepError):
    """The API or a dependency is unavailable for now; running the step again may help."""

    exit_code = ExitCode.TRANSIENT


class Unreachable(Transient):
    """The API server gave no answer at all (refused, reset, timed out, TLS failed) until the retry deadline.

    A step's text says to run it again; a person's command says which server and which kubeconfig to check instead,
    so the server's address and the cause are kept apart from the text.
    """

    def __init__(self, message: str, host: str, cause: str) -> None:
        super().__init__(message)
        self.host = host
        self.cause = cause


class ApiError(StepError):
    """An API answer the step cannot work around; carries the HTTP status and the server's reason."""

    def __init__(self, message: str, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class Conflict(ApiError):
    """409: the object already exists on create, or changed since it was read."""


class NotFound(ApiError):
    """404: the object or its kind does not exist."""


__all__ = ["ApiError", "BadInput", "CheckFailed", "Conflict", "NotFound", "StepError", "Transient", "Unreachable"]
