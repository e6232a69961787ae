"""The load run's picture: a PNG with a line per answering version, failures marked and steps as bands."""

from __future__ import annotations

from pathlib import Path

from testenv.load_client import RequestLine
from testenv.traffic_picture import Band, draw, step_bands
from testenv.workflow_run import WorkflowRun

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_picture_is_a_png(tmp_path: Path) -> None:
    lines = [
        RequestLine(100.0 + i / 10, "direct", "new", 200, 2.0, "v1" if i < 30 else "v2", "", False) for i in range(60)
    ]
    lines.append(RequestLine(103.05, "direct", "new", 0, 5.0, "", "ConnectionRefusedError", False))

    path = draw(lines, [Band("switch", 102.5, 103.5), Band("cleanup", 104.0, 105.0)], tmp_path / "p" / "t.png", "t")

    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_bands_come_from_the_steps_that_matter() -> None:
    def node(template: str, start: str, end: str) -> dict[str, object]:
        return {"type": "Pod", "templateName": template, "startedAt": start, "finishedAt": end}

    run = WorkflowRun(
        {
            "metadata": {"name": "w"},
            "status": {
                "nodes": {
                    "a": node("preflight", "2026-01-01T00:00:00Z", "2026-01-01T00:00:02Z"),
                    "b": node("switch", "2026-01-01T00:00:05Z", "2026-01-01T00:00:05Z"),
                    "c": node("smoke", "2026-01-01T00:00:03Z", ""),
                }
            },
        }
    )

    (band,) = step_bands(run)
    assert band.step == "switch" and band.end - band.start == 1.0
