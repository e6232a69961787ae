"""Waiting for an admission policy's refusal: a policy, and a param it reads, reach the API server a moment late."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from testenv.rest import KubeApiError


def refusal(action: Callable[[], None], *, settle_seconds: float, accepted: str) -> str:
    """The 403 message ``action`` gets, retried for ``settle_seconds`` until it is refused.

    Fails the test with ``accepted`` if the write keeps being accepted; any answer other than 403 is raised as is.
    """
    deadline = time.monotonic() + settle_seconds
    while True:
        try:
            action()
        except KubeApiError as exc:
            if exc.status == 403:
                return str(exc)
            raise
        if time.monotonic() > deadline:
            pytest.fail(accepted, pytrace=False)
        time.sleep(0.2)


def accepted_within(action: Callable[[], None], *, settle_seconds: float) -> None:
    """Retry ``action`` for ``settle_seconds`` until the API server accepts it (an RBAC grant reaches the authorizer
    a moment late); its last refusal is raised if it never does."""
    deadline = time.monotonic() + settle_seconds
    while True:
        try:
            action()
            return
        except KubeApiError as exc:
            if exc.status != 403 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)
