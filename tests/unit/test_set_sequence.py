"""Steps that share a Pod wait for the ones before them on the shared directory, and stop when one of those failed."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from bluegreen_contract import ExitCode
from kubectl_bluegreen.run_steps import NEVER_STARTED
from steps.cli import main
from steps.errors import CheckFailed
from steps.kube import Kube
from steps.set_sequence import POLL_SECONDS, DependencyFailed, exit_code, mark_ended, wait_for


class FakeTime:
    """A clock that advances only when the waiter sleeps, running ``on_sleep`` each time (what another step does)."""

    def __init__(self, on_sleep: dict[int, object] | None = None) -> None:
        self.now = 0.0
        self.sleeps = 0
        self.on_sleep = on_sleep or {}

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds
        action = self.on_sleep.get(self.sleeps)
        if callable(action):
            action()


def test_a_marker_is_whole_and_leaves_nothing_else_behind(tmp_path: Path) -> None:
    state = tmp_path / "steps"
    mark_ended(state, "preflight", 0)
    mark_ended(state, "deploy-green", ExitCode.TRANSIENT)
    assert sorted(p.name for p in state.iterdir()) == ["deploy-green", "preflight"]
    assert exit_code(state, "preflight", tmp_path / "argo") == 0
    assert exit_code(state, "deploy-green", tmp_path / "argo") == 75
    assert exit_code(state, "probe", tmp_path / "argo") is None


def test_the_wait_ends_when_the_step_before_leaves_its_marker(tmp_path: Path) -> None:
    state = tmp_path / "steps"
    time = FakeTime({3: lambda: mark_ended(state, "preflight", 0)})
    waited = wait_for(["preflight"], state, 60, executor_state=tmp_path / "argo", clock=time.clock, sleep=time.sleep)
    assert time.sleeps == 3
    assert waited == pytest.approx(3 * POLL_SECONDS)


def test_a_failed_step_before_stops_this_one_in_the_executors_words(tmp_path: Path) -> None:
    state = tmp_path / "steps"
    mark_ended(state, "probe", 0)
    mark_ended(state, "smoke", 1)
    with pytest.raises(DependencyFailed) as raised:
        wait_for(["probe", "smoke"], state, 60, executor_state=tmp_path / "argo")
    assert (raised.value.step, raised.value.code) == ("smoke", 1)
    assert raised.value.exit_code == ExitCode.FAILED
    # Readers of a run (the kubectl plugin, the tests) count it as a step that did not run.
    assert NEVER_STARTED.search(str(raised.value))


def test_a_step_killed_before_its_marker_is_known_from_argos_executor(tmp_path: Path) -> None:
    state, executor = tmp_path / "steps", tmp_path / "argo"
    (executor / "deploy-green").mkdir(parents=True)
    # The executor writes its file in place: an empty read is a step still ending, not a failure.
    (executor / "deploy-green" / "exitcode").write_text("")
    time = FakeTime({2: lambda: (executor / "deploy-green" / "exitcode").write_text("137")})
    with pytest.raises(DependencyFailed) as raised:
        wait_for(["deploy-green"], state, 60, executor_state=executor, clock=time.clock, sleep=time.sleep)
    assert raised.value.code == 137
    assert time.sleeps == 2


def test_the_wait_has_a_deadline_that_names_the_steps_still_running(tmp_path: Path) -> None:
    state = tmp_path / "steps"
    mark_ended(state, "probe", 0)
    time = FakeTime()
    with pytest.raises(CheckFailed, match="waited 2 s for smoke to end"):
        wait_for(["probe", "smoke"], state, 2, executor_state=tmp_path / "argo", clock=time.clock, sleep=time.sleep)
    assert time.now == pytest.approx(2, abs=POLL_SECONDS)


def test_the_step_after_a_failed_one_fails_at_once_and_leaves_its_own_marker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "steps"
    mark_ended(state, "smoke", 1)
    argv = ["switch", "--namespace", "apps", "--service", "cart", "--preflight-outputs", str(tmp_path / "outputs")]
    argv += ["--set-state", str(state), "--wait-for", "smoke", "--wait-seconds", "5"]
    # The client is made before the wait, and never used: the step does not run.
    assert main(argv, kube=Kube(client.ApiClient())) == ExitCode.FAILED
    assert capsys.readouterr().err.strip() == (
        'bluegreen-step switch: dependency "smoke" exited with non-zero code: 1; this step did not run'
    )
    assert exit_code(state, "switch") == ExitCode.FAILED


def test_a_step_that_fails_on_its_input_still_leaves_its_exit_code(tmp_path: Path) -> None:
    state = tmp_path / "steps"
    # preflight left no outputs here, so the handoff is bad input, before any API call.
    argv = ["probe", "--namespace", "apps", "--service", "cart", "--preflight-outputs", str(tmp_path / "none")]
    assert main([*argv, "--set-state", str(state)]) == ExitCode.BAD_INPUT
    assert exit_code(state, "probe") == ExitCode.BAD_INPUT


def test_waiting_needs_the_shared_directory_and_a_bound() -> None:
    with pytest.raises(SystemExit):
        main(["probe", "--namespace", "apps", "--service", "cart", "--wait-for", "deploy-green"])
