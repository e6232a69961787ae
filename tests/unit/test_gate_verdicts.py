"""Which gates a record shows unpassed: only the latest verdict for the exact slot and image counts."""

from __future__ import annotations

import bluegreen_spec as spec
from bluegreen_spec import Gate, Slot
from steps.gates import GATE_CHECKS, required, unpassed

IMAGE = "registry.example.com/shop/cart:2.0"


def record(*results: tuple[Gate, Slot, str, bool]) -> spec.DeploymentRecord:
    return spec.DeploymentRecord.model_validate(
        {
            "metadata": {"name": "wf-1"},
            "spec": {"service": "cart", "workflow": "wf-1", "image": IMAGE, "toSlot": "green", "startedAt": "t"},
            "status": {
                "gates": [
                    {"gate": gate, "slot": slot, "image": image, "passed": passed, "time": "t"}
                    for gate, slot, image, passed in results
                ]
            },
        }
    )


def test_a_fresh_record_lacks_every_gate_in_pipeline_order() -> None:
    assert unpassed(record(), Slot.green, IMAGE) == list(Gate)
    assert set(GATE_CHECKS) == set(Gate), "every gate has words for a refusal"


def test_all_four_passed_for_the_slot_and_image_is_enough() -> None:
    assert unpassed(record(*((gate, Slot.green, IMAGE, True) for gate in Gate)), Slot.green, IMAGE) == []


def test_a_pass_for_another_slot_or_image_does_not_count() -> None:
    other_slot = record(*((gate, Slot.blue, IMAGE, True) for gate in Gate))
    other_image = record(*((gate, Slot.green, IMAGE + "-rc", True) for gate in Gate))
    assert unpassed(other_slot, Slot.green, IMAGE) == list(Gate)
    assert unpassed(other_image, Slot.green, IMAGE) == list(Gate)


def test_a_failed_verdict_is_unpassed() -> None:
    results = [(gate, Slot.green, IMAGE, gate is not Gate.smoke) for gate in Gate]
    assert unpassed(record(*results), Slot.green, IMAGE) == [Gate.smoke]


def test_switch_requires_image_verification_only_when_the_policy_asks_for_it() -> None:
    assert Gate.image_verification not in required(spec.ImagePolicy())
    signed = spec.ImagePolicy.model_validate({"signature": {"keys": [{"configMap": "cosign-keys"}]}})
    assert required(signed) == list(Gate)
    without = [(gate, Slot.green, IMAGE, True) for gate in Gate if gate is not Gate.image_verification]
    assert unpassed(record(*without), Slot.green, IMAGE, required(signed)) == [Gate.image_verification]
    assert unpassed(record(*without), Slot.green, IMAGE, required(spec.ImagePolicy())) == []
