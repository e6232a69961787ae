"""What preflight decided, as the steps after it in the same Pod read it.

The release Pod exists before anything about the run is known: preflight, its first container, picks the slot,
opens the record, pins the image and sets this service's deadlines. Argo fixes a container's arguments when it
creates the Pod, so the later containers cannot get those values as parameters. They read preflight's output files
instead, from the volume every container of the Pod mounts: the same files Argo reads the outputs from.

Preflight also decides whether the release runs in this Pod at all. A service that verifies its images, or that
waits for a person's promotion, runs deploy-green, probe, smoke and switch as Pods of their own after the set: the
image must be verified before any slot runs it, and Argo's suspend node must sit between smoke and switch. The set's
other containers then find that decision and end at once, saying why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bluegreen_contract import DEADLINE_OUTPUTS, Output, Step
from bluegreen_spec import Slot
from steps.errors import BadInput

#: The steps that can run after preflight in its Pod and take its choices from its files.
HANDED_OFF_STEPS = (Step.deploy_green, Step.probe, Step.smoke, Step.switch)


@dataclass(frozen=True)
class Handoff:
    """Preflight's decisions for one run."""

    slot: str
    record: str
    image: str
    deadlines: Mapping[Step, int]
    #: Why the release does not run in this Pod; empty when it does.
    elsewhere_because: str


def _read(directory: Path, output: Output, step: Step) -> str:
    path = directory / output.value
    try:
        return path.read_text().strip()
    except OSError as error:
        raise BadInput(
            f"{step.value}: preflight's output {output.value} cannot be read from {path} ({error.strerror}); "
            "preflight must run before this step in the same Pod, with the same --output-dir"
        ) from None


def elsewhere_because(*, promotion_required: bool, verification_required: bool) -> str:
    """Why a service's release runs as Pods of their own after the set, or empty when it runs in the set."""
    if verification_required:
        return (
            "spec.imagePolicy.signature is set: the image is verified first, then deploy-green, probe, smoke and "
            "switch run as steps of their own"
        )
    if promotion_required:
        return (
            "spec.promotion.mode is manual: deploy-green, probe, smoke and switch run as steps of their own, with "
            "the promotion gate before the switch"
        )
    return ""


def released_elsewhere(outputs: Mapping[str, str]) -> bool:
    """Whether a release Pod with these outputs (Argo's, by name) left the release to Pods of their own."""
    return bool(
        elsewhere_because(
            promotion_required=outputs.get(Output.promotion_required.value) == "true",
            verification_required=outputs.get(Output.verification_required.value) == "true",
        )
    )


def read_handoff(directory: Path, step: Step) -> Handoff:
    """Read preflight's decisions for ``step``; a missing output is a clear error, not a guess."""
    deadlines = {}
    for deadline_step, output in DEADLINE_OUTPUTS.items():
        text = _read(directory, output, step)
        if not text.isdigit():
            raise BadInput(f"{step.value}: preflight's output {output.value} is {text!r}, not a whole number")
        deadlines[deadline_step] = int(text)
    slot = _read(directory, Output.target_slot, step)
    if slot not in {choice.value for choice in Slot}:
        raise BadInput(f"{step.value}: preflight's output {Output.target_slot.value} is {slot!r}, not blue or green")
    return Handoff(
        slot=slot,
        record=_read(directory, Output.record, step),
        image=_read(directory, Output.image, step),
        deadlines=deadlines,
        elsewhere_because=elsewhere_because(
            promotion_required=_read(directory, Output.promotion_required, step) == "true",
            verification_required=_read(directory, Output.verification_required, step) == "true",
        ),
    )


__all__ = ["HANDED_OFF_STEPS", "Handoff", "elsewhere_because", "read_handoff", "released_elsewhere"]
