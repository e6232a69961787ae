"""The benchmarks' figures kept as data, so that docs/performance.md is written from what a run measured.

Each benchmark records its raw samples under a section of its own; at the end of the session they are written, with
the machine, the revision and the session's exit status, to the file ``BLUEGREEN_BENCH_RESULTS`` names (``make bench``
sets it). Raw samples, not medians, are kept: the page computes its own medians and spreads from them.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_ENV = "BLUEGREEN_BENCH_RESULTS"

#: Every section a complete run records, in the page's order, with the figures each must hold.
SECTIONS: dict[str, tuple[str, ...]] = {
    "end_to_end": ("runs", "default", "tuned"),
    "vs_rollouts": ("runs", "replicas", "tuned_requeue", "settings"),
    "under_load": (
        "deploys",
        "services",
        "failing_every",
        "requeue",
        "rate_per_second",
        "runs",
        "sweeps",
        "deploy_s",
        "total_s",
        "paths",
    ),
    "steps": ("runs", "per_deploy_s", "requests_per_deploy", "process_start_s", "rollback_s", "sweep"),
}


@dataclass
class BenchResults:
    """The figures one benchmark session recorded, by section."""

    sections: dict[str, Any] = field(default_factory=dict)
    #: Taken when the session starts: the revision measured, before anyone edits the tree during a long run.
    measured: dict[str, Any] = field(default_factory=lambda: machine())

    def record(self, section: str, figures: Any) -> None:
        """Keep ``figures`` (JSON-shaped) under ``section``; a section is recorded once per session."""
        if section not in SECTIONS:
            raise ValueError(f"unknown benchmark section {section!r}; known: {', '.join(SECTIONS)}")
        if section in self.sections:
            raise ValueError(f"benchmark section {section!r} recorded twice in one session")
        self.sections[section] = figures

    def document(self, exit_status: int) -> dict[str, Any]:
        """The results file's content: the machine, the revision, how the session ended, and every section."""
        return {"measured": self.measured, "exit_status": exit_status, "sections": self.sections}


def machine() -> dict[str, Any]:
    """What the figures depend on besides the code: the day, the revision (``-dirty`` for local changes), the cores."""
    revision = subprocess.run(
        ["git", "describe", "--always", "--dirty", "--abbrev=7"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).date().isoformat(),
        "revision": revision or "unknown",
        "cpus": os.cpu_count() or 0,
        "python": platform.python_version(),
    }


def write(path: Path, results: BenchResults, exit_status: int) -> None:
    """Write ``results`` to ``path``, stable and readable (it is committed beside the page)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results.document(exit_status), indent=2, sort_keys=True) + "\n")


def load(path: Path) -> dict[str, Any]:
    """A results file, refused with the reason when it is not a complete, passing run's."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such results file; make bench writes it") from None
    if not isinstance(document, dict) or not isinstance(document.get("sections"), dict):
        raise ValueError(f"{path}: not a benchmark results file (no 'sections' object)")
    if document.get("exit_status") != 0:
        raise ValueError(
            f"{path}: the benchmark session ended with status {document.get('exit_status')!r}, not 0; its figures "
            "are not a page's"
        )
    sections = document["sections"]
    missing = [name for name in SECTIONS if name not in sections]
    if missing:
        raise ValueError(
            f"{path}: the run recorded no figures for {', '.join(missing)}; run every benchmark (make bench) on a "
            "cluster of its own (an attached cluster cannot be retuned) before writing the page"
        )
    for name, keys in SECTIONS.items():
        absent = [key for key in keys if key not in sections[name]]
        if absent:
            raise ValueError(
                f"{path}: section {name} lacks {', '.join(absent)}: one of its benchmarks did not run; run them all"
            )
    return document
