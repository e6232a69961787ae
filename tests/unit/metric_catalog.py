"""What the code really emits, as Prometheus stores it: read from the rendered templates and the steps' registry.

Shared by the cross-check of every dashboard and alert query and by the metrics table of docs/reference/metrics.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from pipelines.manifests import render_all
from pipelines.scraped_metrics import ARGO_PREFIX
from pipelines.settings import RenderSettings
from steps.metrics import JOB, RunMetrics

#: Labels the Pushgateway adds to every pushed series: the job, the grouping key, and an empty instance.
PUSH_LABELS = frozenset({"job", "service", "instance"})


@dataclass(frozen=True)
class Emitted:
    """One metric family: its name as scraped, its type, its labels, what emits it and what it is for."""

    name: str
    kind: str
    labels: frozenset[str]
    source: str
    help: str

    def series(self) -> dict[str, frozenset[str]]:
        """Series names as stored (histograms: _bucket with le, _sum, _count) and each one's labels."""
        if self.kind != "histogram":
            return {self.name: self.labels}
        return {
            f"{self.name}_bucket": self.labels | {"le"},
            f"{self.name}_sum": self.labels,
            f"{self.name}_count": self.labels,
        }


def _argo_metrics(owner: str, spec: dict[str, Any]) -> list[Emitted]:
    found = []
    for metric in (spec.get("metrics") or {}).get("prometheus", []):
        kind = next(k for k in ("counter", "gauge", "histogram") if k in metric)
        labels = frozenset(label["key"] for label in metric.get("labels", []))
        name = ARGO_PREFIX + metric["name"]
        found.append(Emitted(name, kind, labels, f"Argo, {owner}", metric["help"]))
    return found


def argo_emitted() -> list[Emitted]:
    """Every template metric in the rendered WorkflowTemplates and CronWorkflow, named as the controller serves it."""
    found: list[Emitted] = []
    for manifest in render_all(RenderSettings()):
        document = manifest.document
        if not manifest.path.startswith("workflows/"):
            continue
        name = document["metadata"]["name"]
        spec = document["spec"].get("workflowSpec", document["spec"])
        found += _argo_metrics(f"{name} workflow", spec)
        for template in spec.get("templates", []):
            found += _argo_metrics(f"{name} `{template['name']}` step", template)
    merged: dict[str, Emitted] = {}
    for metric in found:
        seen = merged.get(metric.name)
        if seen is None:
            merged[metric.name] = metric
            continue
        # The same metric from two templates (the rollback step of the deploy's exit handler and of the one-click
        # rollback) is one family to Prometheus: it must agree on type and labels.
        assert (seen.kind, seen.labels) == (metric.kind, metric.labels), f"{metric.name} is emitted two ways"
        if metric.source not in seen.source:
            merged[metric.name] = Emitted(
                seen.name, seen.kind, seen.labels, f"{seen.source}; {metric.source}", seen.help
            )
    return sorted(merged.values(), key=lambda e: e.name)


def pushed_emitted() -> list[Emitted]:
    """Every metric the steps push, from the steps' own registry."""
    run = RunMetrics("example", None)
    found = []
    for metric in vars(run).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        # A labelled metric has no samples until a label value is used, so its label names come from the metric.
        labelnames = frozenset(metric._labelnames)
        [family] = metric.describe()
        name = f"{family.name}_total" if family.type == "counter" else family.name
        source = f"steps, Pushgateway job `{JOB}`"
        found.append(Emitted(name, family.type, labelnames | PUSH_LABELS, source, family.documentation))
    assert found, "no metrics found on RunMetrics"
    return sorted(found, key=lambda e: e.name)


def emitted_series() -> dict[str, frozenset[str]]:
    """Every stored series name of every emitted metric, with its labels."""
    series: dict[str, frozenset[str]] = {}
    for metric in argo_emitted() + pushed_emitted():
        for name, labels in metric.series().items():
            series[name] = series.get(name, frozenset()) | labels
    return series


def readme_table() -> str:
    """The metrics table of docs/reference/metrics.md."""
    rows = ["| metric | type | labels | emitted by | what it is for |", "|---|---|---|---|---|"]
    for metric in argo_emitted() + pushed_emitted():
        labels = ", ".join(f"`{label}`" for label in sorted(metric.labels))
        rows.append(f"| `{metric.name}` | {metric.kind} | {labels} | {metric.source} | {metric.help} |")
    return "\n".join(rows) + "\n"
