"""``bluegreen-step history SERVICE``: the service's DeploymentRecords, newest first, as a table."""

from __future__ import annotations

import argparse

from steps.kube import Kube
from steps.log import StepLog
from steps.records import Records

COLUMNS = ("RECORD", "STARTED", "IMAGE", "FROM", "TO", "OUTCOME", "BY", "REASON")


def rows(records: list[dict[str, object]]) -> list[tuple[str, ...]]:
    """One row per record, newest first."""
    table: list[tuple[str, ...]] = []
    for record in reversed(records):
        spec = record.get("spec") or {}
        status = record.get("status") or {}
        assert isinstance(spec, dict) and isinstance(status, dict) and isinstance(record["metadata"], dict)
        table.append(
            (
                str(record["metadata"]["name"]),
                str(spec.get("startedAt", "")),
                str(spec.get("image", "")),
                str(spec.get("fromSlot", "-")),
                str(spec.get("toSlot", "-")),
                str(status.get("outcome") or status.get("phase") or "-"),
                str(spec.get("triggeredBy") or "-"),
                str(status.get("reason") or spec.get("reason") or "")[:80],
            )
        )
    return table


def run(kube: Kube, args: argparse.Namespace) -> int:
    """Print the table."""
    records = Records(kube, args.namespace, args.service, StepLog("history", args.service)).history()
    table: list[tuple[str, ...]] = [COLUMNS, *rows(records)[: args.limit]]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


__all__ = ["rows", "run"]
