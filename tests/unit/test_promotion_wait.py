"""How a manual run's wait ended, read from the gate node as Argo leaves it: a person's resume or the timeout."""

from __future__ import annotations

from typing import Any

import pytest

import bluegreen_spec as spec
from bluegreen_contract import PROMOTION_GATE_TASK
from steps import promotion
from steps.errors import CheckFailed


def workflow(started: str, finished: str, message: str = "", labels: dict[str, str] | None = None) -> dict[str, Any]:
    gate = {
        "id": "wf-123",
        "type": "Suspend",
        "displayName": PROMOTION_GATE_TASK,
        "phase": "Succeeded",
        "startedAt": started,
        "finishedAt": finished,
        **({"message": message} if message else {}),
    }
    return {"metadata": {"name": "wf", "labels": labels or {}}, "status": {"nodes": {"wf-123": gate}}}


def test_a_node_that_ended_at_its_duration_expired() -> None:
    ended = promotion.how_the_wait_ended(workflow("2026-01-01T10:00:00Z", "2026-01-01T10:00:30Z"), 30, None)
    assert (ended.state, ended.how) == (spec.PromotionState.expired, promotion.VIA_TIMEOUT)
    assert "30s" in ended.reason


def test_a_node_that_ended_before_its_duration_was_resumed_by_someone() -> None:
    ended = promotion.how_the_wait_ended(workflow("2026-01-01T10:00:00Z", "2026-01-01T10:00:29Z"), 30, None)
    assert (ended.state, ended.how, ended.by) == (
        spec.PromotionState.promoted,
        promotion.VIA_ARGO,
        promotion.UNKNOWN_ARGO_USER,
    )
    assert ended.at == "2026-01-01T10:00:29Z"


@pytest.mark.parametrize(
    ("message", "labels", "by"),
    [
        ("Resumed by: map[User:alice]", {}, "alice"),
        ("Resumed by: map[Email:a@example.com PreferredUsername:al User:sub-1]", {}, "al"),
        ("", {"workflows.argoproj.io/action": "Resume", "workflows.argoproj.io/actor": "bob"}, "bob"),
        ("", {"workflows.argoproj.io/action": "Stop", "workflows.argoproj.io/actor": "bob"}, "someone outside"),
    ],
)
def test_the_resumer_is_whom_argo_named(message: str, labels: dict[str, str], by: str) -> None:
    ended = promotion.how_the_wait_ended(
        workflow("2026-01-01T10:00:00Z", "2026-01-01T10:00:05Z", message, labels), 30, None
    )
    assert ended.by.startswith(by)


def plugin_promotion(by: str = "carol") -> spec.PromotionRecord:
    return spec.PromotionRecord(state=spec.PromotionState.promoted, by=by, at="t", how=promotion.VIA_PLUGIN)


def test_a_promotion_in_the_record_does_not_count_when_the_node_reached_its_duration() -> None:
    # Whoever may write the record's status but not the workflow must not approve a run by waiting.
    late = workflow("2026-01-01T10:00:00Z", "2026-01-01T10:00:30Z")
    ended = promotion.how_the_wait_ended(late, 30, plugin_promotion())
    assert (ended.state, ended.how) == (spec.PromotionState.expired, promotion.VIA_TIMEOUT)
    assert "carol" in ended.reason and "30s" in ended.reason


def test_a_recorded_abort_wins_over_a_node_someone_resumed() -> None:
    aborted = spec.PromotionRecord(
        state=spec.PromotionState.aborted, by="dave", at="t", how=promotion.VIA_PLUGIN, reason="errors on /checkout"
    )
    resumed = workflow("2026-01-01T10:00:00Z", "2026-01-01T10:00:05Z", "Resumed by: map[User:erin]")
    assert promotion.how_the_wait_ended(resumed, 30, aborted) is aborted
    # Even a workflow the judge could not read otherwise: the abort is decided before the node is looked at.
    assert promotion.how_the_wait_ended({"metadata": {"name": "wf"}, "status": {}}, 30, aborted) is aborted


def test_a_plugin_promotion_counts_when_the_node_names_it() -> None:
    resumed = workflow("2026-01-01T10:00:00Z", "2026-01-01T10:00:05Z", "Promoted by carol via kubectl-bluegreen")
    decided = plugin_promotion()
    assert promotion.how_the_wait_ended(resumed, 30, decided) is decided
    # The record write after the node's was lost: the node alone says who promoted.
    ended = promotion.how_the_wait_ended(resumed, 30, None)
    assert (ended.state, ended.by, ended.how, ended.at) == (
        spec.PromotionState.promoted,
        "carol",
        promotion.VIA_PLUGIN,
        "2026-01-01T10:00:05Z",
    )


def test_a_record_that_disagrees_with_the_resumed_node_is_overruled_by_the_node() -> None:
    # The record claims mallory promoted through the plugin; the node was resumed from the Argo UI by someone else.
    resumed = workflow("2026-01-01T10:00:00Z", "2026-01-01T10:00:05Z", "Resumed by: map[User:erin]")
    ended = promotion.how_the_wait_ended(resumed, 30, plugin_promotion("mallory"))
    assert (ended.state, ended.by, ended.how) == (spec.PromotionState.promoted, "erin", promotion.VIA_ARGO)
    named = workflow("2026-01-01T10:00:00Z", "2026-01-01T10:00:05Z", "Promoted by carol via kubectl-bluegreen")
    ended = promotion.how_the_wait_ended(named, 30, plugin_promotion("mallory"))
    assert (ended.state, ended.by, ended.how) == (spec.PromotionState.promoted, "carol", promotion.VIA_PLUGIN)


def test_a_workflow_without_the_gate_or_with_offloaded_nodes_is_a_clear_error() -> None:
    with pytest.raises(CheckFailed, match="re-apply the blue-green-deploy"):
        promotion.how_the_wait_ended({"metadata": {"name": "wf"}, "status": {"nodes": {}}}, 30, None)
    with pytest.raises(CheckFailed, match="argo resume wf"):
        promotion.gate_node({"metadata": {"name": "wf"}, "status": {"offloadNodeStatusVersion": "abc"}})
