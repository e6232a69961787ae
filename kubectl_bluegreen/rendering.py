"""How ``status`` and ``history`` look: rich tables for people, JSON or YAML for scripts.

Rich (https://rich.readthedocs.io) draws the tables and the live view; nothing here talks to the cluster.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from kubectl_bluegreen.service_view import ServiceView
from steps.commands.history import COLUMNS as HISTORY_COLUMNS
from steps.commands.history import rows as history_rows

OUTPUT_FORMATS = ("json", "yaml")

PHASE_STYLES = {
    "Succeeded": "green",
    "Idle": "dim",
    "Failed": "bold red",
    "RolledBack": "yellow",
    "RollingBack": "yellow",
    "Aborted": "red",
}


def as_text(data: Any, output: str) -> str:
    """``data`` as JSON or YAML text, ending in a newline."""
    if output == "json":
        return json.dumps(data, indent=2, sort_keys=False) + "\n"
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def _phase(phase: str) -> Text:
    return Text(phase, style=PHASE_STYLES.get(phase, "bold cyan"))


def status_view(view: ServiceView) -> RenderableType:
    """The status screen: the facts, the two slots, the running workflow and the last runs."""
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("Service", f"{view.namespace}/{view.service}")
    facts.add_row("Phase", _phase(view.phase))
    facts.add_row("Router", f"{view.router} ({view.route})")
    facts.add_row("Live slot", view.live_slot or "none (no route yet)")
    facts.add_row("Live image", view.live_image or "-")
    facts.add_row("Idle slot", view.idle_slot or "-")
    traffic = ", ".join(f"{slot} {weight}%" for slot, weight in view.traffic.items()) or "-"
    facts.add_row("Traffic", traffic)
    previous = f"{view.previous_slot} ({view.previous_image or '?'})" if view.previous_slot else "-"
    facts.add_row("Previous", previous)
    facts.add_row("Retain until", view.retain_until or "-")
    if view.changes:
        facts.add_row("Changes", "\n".join(view.changes))
    if view.workflow is None:
        facts.add_row("Workflow", "none running")
    else:
        run = view.workflow
        steps = ", ".join(run.current_steps) or "-"
        facts.add_row("Workflow", Text.assemble(f"{run.name} ", _phase(run.phase), f" ({run.template or '?'})"))
        facts.add_row("Current step", steps)

    slots = Table(title="Slots", title_justify="left", expand=False)
    for column in ("SLOT", "DEPLOYMENT", "IMAGE", "READY", "TRAFFIC", "RETAIN UNTIL"):
        slots.add_column(column)
    for slot in view.slots:
        if not slot.exists:
            slots.add_row(slot.slot, slot.deployment, Text("absent", style="dim"), "-", "-", "-")
            continue
        ready = Text(f"{slot.ready}/{slot.wanted}", style="green" if slot.available else "yellow")
        weight = view.traffic.get(slot.slot)
        slots.add_row(
            slot.slot,
            slot.deployment,
            slot.image,
            ready,
            f"{weight}%" if weight is not None else "-",
            slot.retain_until or "-",
        )

    runs = Table(title="Last runs", title_justify="left")
    for column in ("FINISHED", "WORKFLOW", "IMAGE", "OUTCOME", "REASON"):
        runs.add_column(column)
    for run_entry in view.recent_runs:
        outcome = str(run_entry.get("outcome", ""))
        runs.add_row(
            str(run_entry.get("finishedAt", "")),
            str(run_entry.get("workflow", "")),
            str(run_entry.get("image", "")),
            _phase(outcome),
            str(run_entry.get("reason", ""))[:60],
        )
    parts: list[RenderableType] = [facts, Text(""), slots]
    if view.recent_runs:
        parts += [Text(""), runs]
    return Group(*parts)


def history_table(records: list[dict[str, object]], limit: int) -> Table:
    """The service's DeploymentRecords, newest first: the same columns as ``bluegreen-step history``."""
    table = Table()
    for column in HISTORY_COLUMNS:
        table.add_column(column)
    for row in history_rows(records)[:limit]:
        outcome_index = HISTORY_COLUMNS.index("OUTCOME")
        table.add_row(*row[:outcome_index], _phase(row[outcome_index]), *row[outcome_index + 1 :])
    return table


__all__ = ["OUTPUT_FORMATS", "as_text", "history_table", "status_view"]
