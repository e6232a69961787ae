"""The project's metrics as Prometheus stores them, and the PromQL the dashboard and the alerts share.

Two sources emit them. Argo's workflow-controller exposes the templates' metrics (``deploy_template``,
``exit_handler``, ``cleanup_cron``) on its own metrics endpoint with the prefix ``argo_workflows_``; its exporter keeps
counters without a ``_total`` suffix and adds no unit suffix. The steps push each run's metrics to a Pushgateway
(``steps/metrics.py``, job ``bluegreen``, grouped by ``service``), where the Python client names counters ``*_total``.
A unit test checks every name and label used here against what the templates and the steps really emit.
"""

from __future__ import annotations

#: Argo v4's namespace for every metric on the controller's endpoint, custom template metrics included.
ARGO_PREFIX = "argo_workflows_"

# Argo template metrics, as scraped from the workflow-controller.
DEPLOY_RUNS = f"{ARGO_PREFIX}bluegreen_deploy_runs"
DEPLOY_STARTED = f"{ARGO_PREFIX}bluegreen_deploy_started"
DEPLOY_DURATION = f"{ARGO_PREFIX}bluegreen_deploy_duration_seconds"
DEPLOYED_VERSION = f"{ARGO_PREFIX}bluegreen_deployed_version"
SWITCH_DURATION = f"{ARGO_PREFIX}bluegreen_switch_duration_seconds"
ROLLBACKS = f"{ARGO_PREFIX}bluegreen_rollbacks"
ROLLBACK_DURATION = f"{ARGO_PREFIX}bluegreen_rollback_duration_seconds"
CLEANUP_RUNS = f"{ARGO_PREFIX}bluegreen_cleanup_runs"
CLEANUP_OVERDUE = f"{ARGO_PREFIX}bluegreen_cleanup_overdue_slots"

# Pushgateway metrics of the last step that pushed, per service.
PUSHED_RUNS = "bluegreen_runs_total"
PUSHED_SWITCH = "bluegreen_switch_duration_seconds"
PUSHED_ROLLBACK = "bluegreen_rollback_duration_seconds"
PUSHED_PROBE_LATENCY = "bluegreen_probe_latency_seconds"
PUSHED_SMOKE_LATENCY = "bluegreen_smoke_latency_seconds"
PUSH_JOB = 'job="bluegreen"'


def raised(selector: str, window: str) -> str:
    """Series of counter ``selector`` that went up within ``window``, including ones that first appeared in it.

    Argo creates a counter series at its first increment, with the value 1; ``increase()`` needs two samples and
    so misses that first increment, which for a service's first rollback is the one that matters.
    """
    return f"(increase({selector}[{window}]) > 0 or ({selector} unless {selector} offset {window}))"


def in_progress_by_service() -> str:
    """Runs whose release Pod ended but not the run itself, per service (0 when all ended).

    A run counts as started when its release Pod (preflight to switch) ends, so this shows the runs that wait for
    promotion, verify, retain or clean up; a run still in that first Pod is not counted yet.
    """
    started = f"sum by (service) ({DEPLOY_STARTED})"
    ended = f"sum by (service) ({DEPLOY_RUNS})"
    # A service whose first run is still going has no ended series yet: count it as 0 rather than dropping it.
    return f"({started} - ({ended} or {started} * 0))"


def quantile(q: float, histogram: str, by: str, window: str) -> str:
    """The ``q`` quantile of an Argo histogram per ``by`` label(s), over ``window``."""
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({histogram}_bucket[{window}])))"


__all__ = [
    "ARGO_PREFIX",
    "CLEANUP_OVERDUE",
    "CLEANUP_RUNS",
    "DEPLOYED_VERSION",
    "DEPLOY_DURATION",
    "DEPLOY_RUNS",
    "DEPLOY_STARTED",
    "PUSHED_PROBE_LATENCY",
    "PUSHED_ROLLBACK",
    "PUSHED_RUNS",
    "PUSHED_SMOKE_LATENCY",
    "PUSHED_SWITCH",
    "PUSH_JOB",
    "ROLLBACKS",
    "ROLLBACK_DURATION",
    "SWITCH_DURATION",
    "in_progress_by_service",
    "quantile",
    "raised",
]
