"""Every metric and label the dashboard and the alerts query is one the templates or the steps emit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import promql_parser as promql
import pytest
import yaml

from pipelines.manifests import render_all
from pipelines.settings import RenderSettings
from tests.unit.metric_catalog import emitted_series, readme_table

REPO = Path(__file__).resolve().parents[2]
OBSERVABILITY = REPO / "manifests" / "observability"
#: Grafana's interval variables, replaced by a duration so the expression parses as plain PromQL.
GRAFANA_DURATIONS = re.compile(r"\$__(rate_interval|interval|range)")
LABEL_VALUES = re.compile(r"^label_values\((?P<metric>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*(?P<label>[a-zA-Z_]\w*)\)$")


def _walk(node: Any, selectors: list[tuple[str, set[str]]], grouping: set[str]) -> None:
    """Collect each vector selector (name, matcher labels) and every label named in by/on/ignoring/group_*."""
    if isinstance(node, promql.VectorSelector):
        selectors.append((node.name or "", {matcher.name for matcher in node.matchers.matchers}))
    elif isinstance(node, promql.MatrixSelector):
        _walk(node.vector_selector, selectors, grouping)
    elif isinstance(node, promql.AggregateExpr):
        if node.modifier is not None:
            grouping.update(node.modifier.labels)
        _walk(node.expr, selectors, grouping)
        if node.param is not None:
            _walk(node.param, selectors, grouping)
    elif isinstance(node, promql.BinaryExpr):
        if node.modifier is not None:
            if node.modifier.matching is not None:
                grouping.update(node.modifier.matching.labels)
            grouping.update(node.modifier.card.labels if hasattr(node.modifier.card, "labels") else [])
        _walk(node.lhs, selectors, grouping)
        _walk(node.rhs, selectors, grouping)
    elif isinstance(node, promql.Call):
        for arg in node.args:
            _walk(arg, selectors, grouping)
    elif isinstance(node, promql.ParenExpr | promql.UnaryExpr | promql.SubqueryExpr):
        _walk(node.expr, selectors, grouping)


def problems(expr: str, emitted: dict[str, frozenset[str]]) -> list[str]:
    """What in ``expr`` no code emits: unknown metric names, and labels the queried metrics do not carry."""
    selectors: list[tuple[str, set[str]]] = []
    grouping: set[str] = set()
    match = LABEL_VALUES.fullmatch(expr.strip())
    if match:
        selectors.append((match["metric"], {match["label"]}))
    else:
        _walk(promql.parse(GRAFANA_DURATIONS.sub("5m", expr)), selectors, grouping)
    found = []
    carried: set[str] = set()
    for name, labels in selectors:
        if name not in emitted:
            found.append(f"metric {name!r} is emitted by nothing")
            continue
        carried |= emitted[name]
        found += [f"{name} has no label {label!r}" for label in sorted(labels - emitted[name] - {"__name__"})]
    found += [f"no queried metric has label {label!r}" for label in sorted(grouping - carried)]
    return found


def _dashboard_queries() -> list[str]:
    from pipelines import dashboard

    return dashboard.queries(dashboard.dashboard_json())


def _rule_queries() -> list[str]:
    rule = yaml.safe_load((OBSERVABILITY / "prometheusrule.yaml").read_text())
    return [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]


def test_every_dashboard_and_alert_query_uses_only_emitted_metrics_and_labels() -> None:
    emitted = emitted_series()
    queries = _dashboard_queries() + _rule_queries()
    assert len(queries) >= 15
    found = {expr: problems(expr, emitted) for expr in queries}
    assert {expr: p for expr, p in found.items() if p} == {}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # Argo's exporter adds no _total to counters: the Python client's name would find nothing.
        (
            "sum(rate(argo_workflows_bluegreen_deploy_runs_total[5m]))",
            "metric 'argo_workflows_bluegreen_deploy_runs_total'",
        ),
        # Without the prefix Argo's controller serves it under, the name is the template's, not the scraped one.
        ("bluegreen_deploy_runs", "metric 'bluegreen_deploy_runs' is emitted by nothing"),
        ('argo_workflows_bluegreen_deploy_runs{outcome="Failed"}', "has no label 'outcome'"),
        ("sum by (slot) (argo_workflows_bluegreen_rollbacks)", "no queried metric has label 'slot'"),
        ("label_values(argo_workflows_bluegreen_cleanup_runs, service)", "has no label 'service'"),
        (
            "histogram_quantile(0.9, sum by (le) (rate(argo_workflows_bluegreen_switch_duration_seconds[5m])))",
            "emitted by nothing",
        ),
    ],
)
def test_the_check_refuses_what_nothing_emits(expr: str, expected: str) -> None:
    assert any(expected in problem for problem in problems(expr, emitted_series()))


def test_the_rendered_dashboard_file_and_configmap_hold_the_same_dashboard() -> None:
    rendered = {m.path: m for m in render_all(RenderSettings())}
    configmap = rendered["observability/dashboard-configmap.yaml"].document
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    [(key, text)] = configmap["data"].items()
    assert key.endswith(".json")
    assert text == rendered["observability/dashboard.json"].text()
    main = rendered["kustomization.yaml"].document["resources"]
    assert not [path for path in main if path.startswith("observability/")], "monitoring objects must stay opt-in"


def test_the_metrics_reference_lists_every_emitted_metric() -> None:
    table = readme_table()
    reference = REPO / "docs" / "reference" / "metrics.md"
    assert table in reference.read_text(), f"the table of {reference} is stale; it should read:\n{table}"
