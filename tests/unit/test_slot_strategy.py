"""A slot Deployment replaces its pods all at once whatever rolling strategy the team's Deployment had."""

from __future__ import annotations

from typing import Any

import pytest

import bluegreen_spec as spec
from steps.slots import SLOT_STRATEGY, slot_deployment


def _team_deployment(extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "x"}]},
            },
            **extra,
        },
    }


@pytest.mark.parametrize(
    "strategy",
    [
        None,
        {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        {"type": "Recreate"},
    ],
    ids=["kubernetes-default", "percentages", "one-at-a-time", "recreate"],
)
def test_the_slot_surges_a_whole_set_and_never_drops_below_it(strategy: dict[str, Any] | None) -> None:
    source = _team_deployment({} if strategy is None else {"strategy": strategy})
    slot = slot_deployment(source, "web", spec.Slot.green, "r.example/web:v2", None, 3, "rec")
    assert slot["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0},
    }
    # The constant is copied, so a caller editing one slot's body cannot change the next one's.
    assert slot["spec"]["strategy"] is not SLOT_STRATEGY
    assert slot["spec"]["strategy"]["rollingUpdate"] is not SLOT_STRATEGY["rollingUpdate"]


def test_the_team_s_other_rollout_settings_still_carry_over() -> None:
    source = _team_deployment({"minReadySeconds": 5, "progressDeadlineSeconds": 120, "revisionHistoryLimit": 3})
    slot = slot_deployment(source, "web", spec.Slot.blue, "r.example/web:v2", None, 3, "rec")
    assert (slot["spec"]["minReadySeconds"], slot["spec"]["progressDeadlineSeconds"]) == (5, 120)
    assert slot["spec"]["revisionHistoryLimit"] == 3
