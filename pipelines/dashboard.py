"""The Grafana dashboard for blue-green deploys, built with Grafana's own typed SDK (``grafana-foundation-sdk``).

It is rendered as dashboard JSON and as a ConfigMap that Grafana's dashboard sidecar loads (label
``grafana_dashboard: "1"``), both under ``manifests/observability/``. Every query is PromQL over the names in
:mod:`pipelines.scraped_metrics`; a variable picks the Prometheus data source.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, stat, table, text, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.text import TextMode

from bluegreen_spec import SLOT_LABEL
from pipelines import scraped_metrics as m

UID = "argo-bluegreen"
TITLE = "Blue-green deploys"
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
SERVICE_FILTER = 'service=~"$service"'
CONFIGMAP_KEY = "argo-bluegreen.json"

#: How users split their own app's metrics by version, shown on the dashboard itself.
JOIN_HELP = f"""\
### Your app's metrics by version

Slot pods carry `app.kubernetes.io/version` (the image's tag, or `sha256-<digest>` for a digest-only image) and
`{SLOT_LABEL}` (`blue` or `green`). Copy both onto your app's series in the Prometheus scrape config:

```yaml
relabel_configs:
  - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_version]
    target_label: version
  - source_labels: [__meta_kubernetes_pod_label_{SLOT_LABEL.replace(".", "_").replace("/", "_").replace("-", "_")}]
    target_label: slot
```

Then, during and after a switch, each version's error ratio is
`sum by (version) (rate(http_requests_total{{code=~"5.."}}[5m])) / sum by (version) (rate(http_requests_total[5m]))`,
and the *Active version* panel above says which version took the traffic and when.
"""


def _query(expr: str, legend: str = "", instant: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).datasource(DATASOURCE)
    if legend:
        query = query.legend_format(legend)
    return query.instant() if instant else query.range()


def _series(title: str, description: str, unit: str, *queries: prometheus.Dataquery) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
    panel = panel.height(8).span(12)
    for ref, query in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(query.ref_id(ref))
    return panel


def _service_variable() -> gd.QueryVariable:
    return (
        gd.QueryVariable("service")
        .label("Service")
        .datasource(DATASOURCE)
        .query(f"label_values({m.DEPLOY_RUNS}, service)")
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def build() -> gd.Dashboard:
    """The dashboard builder, panel by panel, top to bottom."""
    deploys = f"{m.DEPLOY_RUNS}{{{SERVICE_FILTER}}}"
    rollbacks = f"{m.ROLLBACKS}{{{SERVICE_FILTER}}}"
    return (
        gd.Dashboard(TITLE)
        .uid(UID)
        .description("Blue-green deploys run by Argo Workflows: outcomes, durations, switches, rollbacks, versions.")
        .tags(["argo-bluegreen", "argo-workflows"])
        .time("now-7d", "now")
        .refresh("1m")
        .with_variable(gd.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_variable(_service_variable())
        .with_row(gd.Row("Runs"))
        .with_panel(
            stat.Panel()
            .title("Runs in progress")
            .description("Deploys past their service's lock that have not ended.")
            .datasource(DATASOURCE)
            .height(8)
            .span(6)
            .with_target(_query(f"sum({m.in_progress_by_service()})", instant=True).ref_id("A"))
        )
        .with_panel(
            table.Panel()
            .title("Active version per service")
            .description(
                "The image of each service's latest successful deploy (a later manual rollback is not shown); "
                "Value is that run's start as YYYYMMDDhhmmss."
            )
            .datasource(DATASOURCE)
            .height(8)
            .span(18)
            .with_target(
                _query(f"topk by (service) (1, {m.DEPLOYED_VERSION}{{{SERVICE_FILTER}}})", instant=True).ref_id("A")
            )
        )
        .with_panel(
            _series(
                "Deploy timeline",
                "Deploys ended per service and outcome in each interval.",
                "short",
                _query(f"sum by (service, status) (increase({deploys}[$__interval]))", "{{service}} {{status}}"),
            ).draw_style(common.GraphDrawStyle.BARS)
        )
        .with_panel(
            _series(
                "Outcome rates",
                "Deploys per hour by outcome, and rollbacks per hour by trigger and outcome.",
                "short",
                _query(f"sum by (status) (rate({deploys}[1h])) * 3600", "deploys {{status}}"),
                _query(f"sum by (trigger, status) (rate({rollbacks}[1h])) * 3600", "rollbacks {{trigger}} {{status}}"),
            )
        )
        .with_row(gd.Row("Durations"))
        .with_panel(
            _series(
                "Deploy duration percentiles",
                "Whole runs, from the workflow's start to its end.",
                "s",
                *(
                    _query(
                        m.quantile(q, m.DEPLOY_DURATION, "service", "$__rate_interval"),
                        f"p{int(q * 100)} {{{{service}}}}",
                    )
                    for q in (0.5, 0.9, 0.99)
                ),
            )
        )
        .with_panel(
            _series(
                "Switch and rollback latency (p90)",
                "Moving all traffic to the new slot, and a rollback restoring the previous one.",
                "s",
                _query(m.quantile(0.9, m.SWITCH_DURATION, "service", "$__rate_interval"), "switch {{service}}"),
                _query(m.quantile(0.9, m.ROLLBACK_DURATION, "service", "$__rate_interval"), "rollback {{service}}"),
            )
        )
        .with_panel(
            _series(
                "Last pushed run (Pushgateway)",
                "What the steps of each service's latest run pushed, when a Pushgateway URL was rendered in.",
                "s",
                _query(
                    f"{m.PUSHED_SWITCH}_sum{{{m.PUSH_JOB},{SERVICE_FILTER}}}"
                    f" / {m.PUSHED_SWITCH}_count{{{m.PUSH_JOB},{SERVICE_FILTER}}}",
                    "switch {{service}}",
                ),
                _query(
                    f"histogram_quantile(0.9, sum by (le, service) ({m.PUSHED_PROBE_LATENCY}_bucket{{{m.PUSH_JOB}}}))",
                    "probe p90 {{service}}",
                ),
                _query(
                    f"histogram_quantile(0.9, sum by (le, service, test) "
                    f"({m.PUSHED_SMOKE_LATENCY}_bucket{{{m.PUSH_JOB}}}))",
                    "smoke p90 {{service}} {{test}}",
                ),
            )
        )
        .with_panel(
            text.Panel()
            .title("Joining your app's metrics")
            .mode(TextMode.MARKDOWN)
            .content(JOIN_HELP)
            .height(10)
            .span(12)
        )
    )


def dashboard_json() -> dict[str, Any]:
    """The dashboard as Grafana imports it."""
    encoded: dict[str, Any] = json.loads(json.dumps(build().build(), cls=JSONEncoder))
    return encoded


def dashboard_text() -> str:
    """The dashboard file's exact bytes: sorted keys, so renders are stable."""
    return json.dumps(dashboard_json(), indent=2, sort_keys=True) + "\n"


def configmap() -> dict[str, Any]:
    """The ConfigMap Grafana's sidecar loads; its namespace is chosen at install time."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "argo-bluegreen-dashboard",
            "labels": {"grafana_dashboard": "1", "app.kubernetes.io/part-of": "argo-bluegreen"},
        },
        "data": {CONFIGMAP_KEY: dashboard_text()},
    }


def queries(document: dict[str, Any]) -> list[str]:
    """Every PromQL expression in a dashboard document: panel targets and query variables."""
    found = [t["expr"] for p in document.get("panels", []) for t in p.get("targets", []) if "expr" in t]
    for variable in document.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            found.append(query["query"] if isinstance(query, dict) else query)
    return found


__all__ = ["CONFIGMAP_KEY", "JOIN_HELP", "UID", "build", "configmap", "dashboard_json", "dashboard_text", "queries"]
