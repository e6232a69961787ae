"""The PrometheusRule (prometheus-operator) with argo-bluegreen's alerts.

It is rendered into ``manifests/observability/`` with its own kustomization, not into the main one: the
``monitoring.coreos.com`` CRDs exist only where the prometheus-operator runs, so installing it is the user's choice.
Every alert names the service (when it has one) and says what to look at; promtool unit tests under
``tests/unit/promtool/`` show each one firing and not firing.
"""

from __future__ import annotations

from typing import Any

from pipelines import scraped_metrics as m
from pipelines.settings import RenderSettings

GROUP = "argo-bluegreen"
#: How far back a finished rollback still alerts; long enough for one evaluation at any usual interval.
EVENT_WINDOW = "10m"


def _alert(name: str, expr: str, severity: str, summary: str, description: str, for_: str = "0m") -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_ != "0m":
        rule["for"] = for_
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {"summary": summary, "description": description}
    return rule


def rules(settings: RenderSettings) -> list[dict[str, Any]]:
    """The alerting rules, in the order they appear in the group."""
    rolled_back = m.raised(f'{m.ROLLBACKS}{{trigger="on-exit",status="Succeeded"}}', EVENT_WINDOW)
    rollback_failed = m.raised(f'{m.ROLLBACKS}{{status!="Succeeded"}}', EVENT_WINDOW)
    cleanup_window = f"{settings.cleanup_alert_hours}h"
    cleanup_succeeded = m.raised(f'{m.CLEANUP_RUNS}{{status="Succeeded"}}', cleanup_window)
    return [
        _alert(
            "BlueGreenDeployRolledBack",
            f"sum by (service) ({rolled_back}) > 0",
            "warning",
            "A blue-green deploy of {{ $labels.service }} failed and was rolled back",
            "Traffic is back on the previous version. The service's latest DeploymentRecord says which step failed "
            "and why.",
        ),
        _alert(
            "BlueGreenRollbackFailed",
            f"sum by (service) ({rollback_failed}) > 0",
            "critical",
            "A rollback of {{ $labels.service }} failed",
            "Traffic may still be on the failed version. Check the rollback workflow's log and the service's "
            "route; run the rollback template again or move traffic by hand.",
        ),
        _alert(
            "BlueGreenDeployTooLong",
            f"{m.in_progress_by_service()} > 0",
            "warning",
            f"A blue-green deploy of {{{{ $labels.service }}}} has run for more than {settings.deploy_alert_minutes}m",
            "A run holds the service's lock, so later deploys wait. Check the running workflow's current step; "
            "its deadline ends it, but not before every later deploy has waited.",
            for_=f"{settings.deploy_alert_minutes}m",
        ),
        _alert(
            "BlueGreenCleanupNotSucceeding",
            f"(sum({cleanup_succeeded}) or vector(0)) == 0",
            "warning",
            f"The blue-green cleanup has not succeeded for {cleanup_window}",
            "Retained previous slots stay up past their retention until a sweep succeeds. Check the "
            "blue-green-cleanup CronWorkflow's latest runs.",
            # One missed schedule is not a problem; a restarted controller also starts with no successes.
            for_="15m",
        ),
        _alert(
            "BlueGreenRetainedSlotOverdue",
            f"max by (managed_namespace) ({m.CLEANUP_OVERDUE}) > 0",
            "warning",
            "{{ $value }} previous slot(s) in {{ $labels.managed_namespace }} outlived their retention",
            "The cleanup sweep runs but leaves these slots in place, so they hold their pods and their traffic "
            "rules. The blue-green-cleanup workflow's log names them (overdue); look for a finalizer on the "
            "Deployment, a run that still holds the service, or a route the sweep cannot read.",
            # A sweep that ran while a deploy held the service skips it once; two schedules in a row is stuck.
            for_="15m",
        ),
    ]


def prometheus_rule(settings: RenderSettings) -> dict[str, Any]:
    """The PrometheusRule object; its namespace is chosen at install time (``kubectl apply -k ... -n``)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "argo-bluegreen",
            "labels": {"app.kubernetes.io/part-of": "argo-bluegreen", **settings.rule_labels},
        },
        "spec": {"groups": [{"name": GROUP, "rules": rules(settings)}]},
    }


def rule_file(settings: RenderSettings) -> dict[str, Any]:
    """The same groups as a plain Prometheus rule file, the form promtool checks."""
    return {"groups": prometheus_rule(settings)["spec"]["groups"]}


__all__ = ["EVENT_WINDOW", "GROUP", "prometheus_rule", "rule_file", "rules"]
