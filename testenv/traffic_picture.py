"""One picture of a load run: requests per second by answering version over time, failures marked, steps as bands.

Drawn with matplotlib's non-interactive Agg backend into a PNG, so it works without a display.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, never a window

import matplotlib.pyplot as plt

from testenv.load_client import RequestLine
from testenv.traffic_report import SKIPPED, failed
from testenv.workflow_run import WorkflowRun

# The steps worth a band; the others (preflight, notify, ...) are bookkeeping around them.
BANDED_STEPS = ("deploy-green", "probe", "smoke", "switch", "retain", "cleanup", "rollback")
BAND_COLOURS = {
    "deploy-green": "#c7e9c0",
    "probe": "#fdd0a2",
    "smoke": "#fcbba1",
    "switch": "#9ecae1",
    "retain": "#dadaeb",
    "cleanup": "#d9d9d9",
    "rollback": "#fa9fb5",
}


@dataclass(frozen=True)
class Band:
    """One step of one run, in unix seconds."""

    step: str
    start: float
    end: float


def _epoch(value: str) -> float | None:
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def step_bands(run: WorkflowRun) -> list[Band]:
    """The banded steps of ``run`` that started and finished."""
    bands = []
    for node in run.steps():
        start, end = _epoch(node.started_at), _epoch(node.finished_at)
        if node.template in BANDED_STEPS and start is not None and end is not None:
            # Argo stamps steps to the second; a step that took under a second still gets a visible band.
            bands.append(Band(node.template, start, max(end, start + 1.0)))
    return bands


def draw(lines: Sequence[RequestLine], bands: Sequence[Band], path: Path, title: str) -> Path:
    """Write the picture to ``path`` and return it."""
    sent = [line for line in lines if line.error != SKIPPED]
    origin = min((line.start for line in sent), default=0.0)
    seconds = int(max((line.start for line in sent), default=origin) - origin) + 1
    by_version: dict[str, list[int]] = {}
    failures = [0] * seconds
    for line in sent:
        second = int(line.start - origin)
        if failed(line):
            failures[second] += 1
        else:
            by_version.setdefault(line.version or "?", [0] * seconds)[second] += 1
    figure, axes = plt.subplots(figsize=(12, 5))
    labelled: set[str] = set()
    for band in bands:
        colour = BAND_COLOURS.get(band.step, "#eeeeee")
        label = band.step if band.step not in labelled else None
        labelled.add(band.step)
        axes.axvspan(band.start - origin, band.end - origin, color=colour, alpha=0.6, label=label, linewidth=0)
    xs = list(range(seconds))
    for version in sorted(by_version):
        axes.plot(xs, by_version[version], label=f"answered by {version}", linewidth=1.5)
    marked = [(x, count) for x, count in zip(xs, failures, strict=True) if count]
    if marked:
        axes.scatter([x for x, _ in marked], [c for _, c in marked], color="red", marker="x", zorder=5, label="failed")
    axes.set_xlabel("seconds since the load started")
    axes.set_ylabel("requests per second")
    total_failed = sum(failures)
    axes.set_title(f"{title}: {len(sent)} requests, {total_failed} failed")
    axes.legend(loc="upper left", fontsize="small", ncol=2)
    axes.set_ylim(bottom=0)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
