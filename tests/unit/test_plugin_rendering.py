"""What ``status`` and ``history`` print, from views built by hand (no cluster)."""

from __future__ import annotations

import json

import yaml
from rich.console import Console

from kubectl_bluegreen.rendering import as_text, history_table, status_view
from kubectl_bluegreen.service_view import RunView, ServiceView, SlotView


def a_view(**changes: object) -> ServiceView:
    fields: dict[str, object] = {
        "namespace": "apps",
        "service": "cart",
        "router": "service",
        "route": "Service apps/cart",
        "phase": "Verifying",
        "live_slot": "green",
        "idle_slot": "blue",
        "live_image": "r/cart:v2",
        "traffic": {"blue": 0, "green": 100},
        "previous_slot": "blue",
        "previous_image": "r/cart:v1",
        "retain_until": "2026-11-26T23:00:00Z",
        "slots": [
            SlotView("blue", "cart-blue", True, "r/cart:v1", 2, 2, True, "2026-11-26T23:00:00Z"),
            SlotView("green", "cart-green", True, "r/cart:v2", 1, 2, False),
        ],
        "workflow": RunView(
            "blue-green-deploy-x7k2p", "blue-green-deploy", "Running", "2026-11-26T22:00:00Z", ["verify"]
        ),
        "recent_runs": [
            {"record": "r1", "workflow": "blue-green-deploy-a", "image": "r/cart:v1", "outcome": "Succeeded"},
        ],
    }
    fields.update(changes)
    return ServiceView(**fields)  # type: ignore[arg-type]


def rendered(renderable: object) -> str:
    console = Console(record=True, width=160, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_status_shows_every_fact_the_operator_asks_for() -> None:
    text = rendered(status_view(a_view()))
    for expected in (
        "apps/cart",
        "Verifying",
        "Live slot",
        "green",
        "Idle slot",
        "blue 0%, green 100%",
        "r/cart:v2",
        "blue (r/cart:v1)",
        "2026-11-26T23:00:00Z",
        "blue-green-deploy-x7k2p Running (blue-green-deploy)",
        "Current step",
        "verify",
        "1/2",
        "Last runs",
        "blue-green-deploy-a",
    ):
        assert expected in text, (expected, text)


def test_status_lists_what_the_latest_release_changes() -> None:
    changes = ["image: r/cart:v1 -> r/cart:v2", "container cart: env GREETING added"]
    text = rendered(status_view(a_view(changes=changes)))
    assert "Changes" in text
    assert all(line in text for line in changes), text
    assert a_view(changes=changes).to_dict()["changes"] == changes
    assert "Changes" not in rendered(status_view(a_view()))


def test_status_before_the_first_deploy() -> None:
    view = a_view(
        phase="Idle",
        live_slot=None,
        idle_slot=None,
        live_image=None,
        traffic={},
        previous_slot=None,
        previous_image=None,
        retain_until=None,
        slots=[SlotView("blue", "cart-blue", False), SlotView("green", "cart-green", False)],
        workflow=None,
        recent_runs=[],
    )
    text = rendered(status_view(view))
    assert "none (no route yet)" in text and "none running" in text and "absent" in text
    assert "Last runs" not in text


def test_json_and_yaml_carry_the_same_camel_case_data() -> None:
    data = a_view().to_dict()
    assert json.loads(as_text(data, "json")) == data == yaml.safe_load(as_text(data, "yaml"))
    assert data["workflow"]["currentSteps"] == ["verify"]
    assert data["slots"][0]["retainUntil"] == "2026-11-26T23:00:00Z"
    assert data["previousImage"] == "r/cart:v1"


def test_history_is_newest_first_and_limited() -> None:
    records: list[dict[str, object]] = [
        {
            "metadata": {"name": f"run-{i}"},
            "spec": {"startedAt": f"2026-11-2{i}T10:00:00Z", "image": f"r/cart:v{i}", "fromSlot": "blue"},
            "status": {"outcome": "Succeeded" if i != 2 else "RolledBack", "reason": "smoke failed" if i == 2 else ""},
        }
        for i in range(1, 4)
    ]
    text = rendered(history_table(records, limit=2))
    assert text.index("run-3") < text.index("run-2")
    assert "run-1" not in text
    assert "RolledBack" in text and "smoke failed" in text
