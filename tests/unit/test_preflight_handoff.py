"""Steps after preflight in the release Pod take its choices from its files, or end at once when it sent the release
elsewhere; a missing or broken file is a clear error before any work."""

from __future__ import annotations

import argparse
import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from bluegreen_contract import DEADLINE_OUTPUTS, Output, Step
from steps.cli import build_parser, main, take_preflight_handoff
from steps.context import write_outputs
from steps.errors import BadInput
from steps.preflight_handoff import HANDED_OFF_STEPS, read_handoff, released_elsewhere


def _preflight_wrote(directory: Path, *, promotion: str = "false", verification: str = "false") -> None:
    write_outputs(
        directory,
        {
            Output.record: "run-abc12",
            Output.target_slot: "green",
            Output.image: "registry.local/demo@sha256:" + "a" * 64,
            Output.promotion_required: promotion,
            Output.verification_required: verification,
            **{output: str(100 + index) for index, output in enumerate(DEADLINE_OUTPUTS.values())},
        },
    )


def test_a_step_in_the_release_pod_takes_slot_record_image_and_its_deadline_from_preflight(tmp_path: Path) -> None:
    _preflight_wrote(tmp_path)
    parser = build_parser()
    handoff = f"--preflight-outputs={tmp_path}"
    args = parser.parse_args(
        ["deploy-green", "--namespace", "ns", "--service", "demo", handoff, "--deadline-seconds=1200"]
    )
    assert take_preflight_handoff(parser, args) == ""
    assert (args.slot, args.record) == ("green", "run-abc12")
    assert args.image.endswith("a" * 64), "the image preflight pinned, not the one submitted"
    assert args.deadline_seconds == 100, "preflight's per-run deadline replaces the cap"


def test_a_step_without_a_per_run_deadline_keeps_its_cap(tmp_path: Path) -> None:
    _preflight_wrote(tmp_path)
    parser = build_parser()
    args = parser.parse_args(["switch", "--namespace", "ns", "--service", "demo", f"--preflight-outputs={tmp_path}"])
    args.deadline_seconds = 300.0
    take_preflight_handoff(parser, args)
    assert args.deadline_seconds == 300.0 and args.slot == "green"


@pytest.mark.parametrize(
    ("promotion", "verification", "because"),
    [("true", "false", "spec.promotion.mode is manual"), ("false", "true", "spec.imagePolicy.signature is set")],
)
def test_the_steps_end_at_once_when_preflight_left_the_release_to_pods_of_their_own(
    tmp_path: Path, promotion: str, verification: str, because: str
) -> None:
    _preflight_wrote(tmp_path, promotion=promotion, verification=verification)
    for step in HANDED_OFF_STEPS:
        out = io.StringIO()
        # No Kubernetes client and no kubeconfig: the step must end before it would need one.
        with redirect_stdout(out):
            code = main([step.value, "--namespace", "ns", "--service", "demo", f"--preflight-outputs={tmp_path}"])
        assert code == 0
        assert '"action": "not-here"' in out.getvalue() and because in out.getvalue()
    assert released_elsewhere({Output.promotion_required.value: promotion, "verification-required": verification})
    assert not released_elsewhere({Output.promotion_required.value: "false"})


def test_a_missing_output_names_itself_its_file_and_what_to_do(tmp_path: Path) -> None:
    _preflight_wrote(tmp_path)
    (tmp_path / Output.target_slot.value).unlink()
    with pytest.raises(BadInput, match=r"probe: preflight's output target-slot cannot be read from .*target-slot"):
        read_handoff(tmp_path, Step.probe)
    (tmp_path / Output.target_slot.value).write_text("purple")
    with pytest.raises(BadInput, match="target-slot is 'purple', not blue or green"):
        read_handoff(tmp_path, Step.probe)
    (tmp_path / Output.target_slot.value).write_text("blue")
    (tmp_path / Output.probe_deadline.value).write_text("soon")
    with pytest.raises(BadInput, match="probe-deadline is 'soon', not a whole number"):
        read_handoff(tmp_path, Step.probe)


def test_a_step_given_neither_its_values_nor_preflights_files_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    args = parser.parse_args(["probe", "--namespace", "ns", "--service", "demo", "--slot", "blue"])
    with pytest.raises(SystemExit) as exited:
        take_preflight_handoff(parser, args)
    assert exited.value.code == 2
    assert "probe needs --record, or --preflight-outputs to read them from" in capsys.readouterr().err


def test_exactly_the_handed_off_steps_accept_preflights_files() -> None:
    parser = build_parser()
    (subcommands,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    choices: dict[str, argparse.ArgumentParser] = subcommands.choices
    accepting = {name for name, sub in choices.items() if "--preflight-outputs" in sub._option_string_actions}
    assert accepting == {step.value for step in HANDED_OFF_STEPS}
