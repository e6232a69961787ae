"""A step's own deadline and retries, as the steps that share the release Pod use them."""

from __future__ import annotations

import signal
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bluegreen_contract import ExitCode
from steps.attempts import DeadlineExceeded, backoff_seconds, deadline, run_with_retries
from steps.cli import build_parser
from steps.errors import CheckFailed, Transient


class Script:
    """An attempt that fails as told, one failure per call, then returns 0."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return 0


def test_a_transient_failure_is_retried_with_the_templates_backoff() -> None:
    waits: list[float] = []
    attempt = Script(Transient("API unavailable"), Transient("API unavailable"))
    assert run_with_retries("probe", attempt, retries=3, deadline_seconds=None, sleep=waits.append) == 0
    assert attempt.calls == 3
    assert waits == [5.0, 10.0]


def test_a_failed_check_is_not_retried() -> None:
    waits: list[float] = []
    attempt = Script(CheckFailed("unhealthy"), Transient("never reached"))
    with pytest.raises(CheckFailed, match="unhealthy"):
        run_with_retries("probe", attempt, retries=3, deadline_seconds=None, sleep=waits.append)
    assert attempt.calls == 1
    assert waits == []


def test_the_last_transient_failure_ends_the_step_when_the_retries_are_spent() -> None:
    attempt = Script(*(Transient(f"try {n}") for n in range(5)))
    with pytest.raises(Transient, match="try 2") as raised:
        run_with_retries("switch", attempt, retries=2, deadline_seconds=None, sleep=lambda _: None)
    assert raised.value.exit_code == ExitCode.TRANSIENT
    assert attempt.calls == 3


def test_the_deadline_interrupts_an_attempt_and_names_itself() -> None:
    def hangs() -> int:
        time.sleep(30)
        return 0

    began = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"smoke did not finish within its deadline of 0\.2 s") as raised:
        run_with_retries("smoke", hangs, retries=0, deadline_seconds=0.2)
    assert time.monotonic() - began < 10, "the sleep was interrupted, not waited out"
    assert raised.value.exit_code == ExitCode.FAILED


def test_a_timer_armed_before_is_armed_again_afterwards() -> None:
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, _frame: fired.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 600)
        with deadline("verify", 30):
            assert signal.getitimer(signal.ITIMER_REAL)[0] <= 30
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 590 < remaining <= 600
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert fired == []


def test_the_deadline_covers_the_waits_between_retries() -> None:
    attempt = Script(*(Transient("throttled") for _ in range(10)))
    with pytest.raises(DeadlineExceeded):
        run_with_retries("deploy-green", attempt, retries=10, deadline_seconds=0.3, sleep=time.sleep)
    assert attempt.calls == 1, "the first backoff (5 s) outlasts the deadline"


def test_no_deadline_leaves_the_alarm_alone() -> None:
    previous_handler, previous_timer = signal.getsignal(signal.SIGALRM), signal.getitimer(signal.ITIMER_REAL)
    with deadline("notify", None):
        assert signal.getsignal(signal.SIGALRM) is previous_handler
    assert signal.getsignal(signal.SIGALRM) is previous_handler
    assert signal.getitimer(signal.ITIMER_REAL)[0] <= previous_timer[0]


@given(st.integers(min_value=1, max_value=50))
def test_backoff_grows_and_stays_within_a_minute(retry: int) -> None:
    assert 5.0 <= backoff_seconds(retry) <= 60.0
    assert backoff_seconds(retry + 1) >= backoff_seconds(retry)


def test_every_step_takes_a_deadline_and_retries_and_defaults_to_neither() -> None:
    common = ["--namespace", "apps", "--service", "web", "--slot", "green", "--record", "r"]
    parsed = build_parser().parse_args(["probe", *common])
    assert parsed.deadline_seconds is None and parsed.transient_retries == 0
    parsed = build_parser().parse_args(["probe", *common, "--deadline-seconds=90", "--transient-retries=3"])
    assert parsed.deadline_seconds == 90.0 and parsed.transient_retries == 3
