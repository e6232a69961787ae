"""A run's metrics, pushed to a Prometheus Pushgateway when the run ends.

A step container lives for seconds, far shorter than a scrape interval, so it cannot be scraped; it pushes
instead. Each push replaces the metrics of its group (job ``bluegreen``, label ``service``), so the gateway shows
the last run of every service: how it ended, how long the switch and any rollback took, the latencies the probe
and smoke tests saw, and the errors observed while traffic moved. Counters therefore count within one run; rates
over runs come from Prometheus' own series of pushes, not from the counter's value.

The registry is private, never the process-wide default, so nothing else the process imports leaks into the push,
and two RunMetrics in one process (tests) cannot collide. Like notifications, metrics are a courtesy: a failed push
is returned and logged, never raised.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Histogram, push_to_gateway

from bluegreen_contract import PUSHGATEWAY_URL_ENV

#: The Pushgateway job every run pushes under; the service is the grouping label below it.
JOB = "bluegreen"

_log = logging.getLogger(__name__)

#: Moving traffic is a patch and a wait for the routers to agree: seconds, sometimes minutes.
_SWITCH_BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
#: A rollback is a switch back, plus possibly scaling the old slot up again.
_ROLLBACK_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
#: One HTTP request to the idle slot.
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class PushResult:
    """Whether the push reached the Pushgateway, and if not, why."""

    pushed: bool
    gateway: str
    error: str = ""

    def to_record(self) -> dict[str, str]:
        """The push as string details of a DeploymentRecord entry."""
        return {"pushed": str(self.pushed).lower(), "gateway": self.gateway, "error": self.error}


def _without_credentials(url: str) -> str:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


class RunMetrics:
    """The metrics of one run of one service, in a registry of their own."""

    def __init__(self, service: str, pushgateway_url: str | None, *, timeout_seconds: float = 10.0) -> None:
        """Create the metrics; nothing is sent until :meth:`push`, and nothing at all without a URL."""
        self.service = service
        self.pushgateway_url = pushgateway_url or None
        self.timeout_seconds = timeout_seconds
        self.registry = CollectorRegistry(auto_describe=True)
        self.runs = Counter(
            "bluegreen_runs",
            "Runs that ended, by outcome (Succeeded, Failed, RolledBack, Aborted).",
            ["outcome"],
            registry=self.registry,
        )
        self.switch_duration = Histogram(
            "bluegreen_switch_duration_seconds",
            "From the record of intent to all traffic on the new slot.",
            buckets=_SWITCH_BUCKETS,
            registry=self.registry,
        )
        self.rollback_duration = Histogram(
            "bluegreen_rollback_duration_seconds",
            "From the decision to roll back to all traffic on the previous slot.",
            buckets=_ROLLBACK_BUCKETS,
            registry=self.registry,
        )
        self.probe_latency = Histogram(
            "bluegreen_probe_latency_seconds",
            "Latency of each health-check attempt against the idle slot.",
            buckets=_REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.smoke_latency = Histogram(
            "bluegreen_smoke_latency_seconds",
            "Latency of each smoke test against the idle slot, by test name.",
            ["test"],
            buckets=_REQUEST_BUCKETS,
            registry=self.registry,
        )

    @classmethod
    def from_env(
        cls, service: str, environ: Mapping[str, str] = os.environ, *, timeout_seconds: float = 10.0
    ) -> RunMetrics:
        """Metrics pushed to ``BLUEGREEN_PUSHGATEWAY_URL``; an unset or empty variable means no push."""
        return cls(service, environ.get(PUSHGATEWAY_URL_ENV, "").strip() or None, timeout_seconds=timeout_seconds)

    def record_run(self, outcome: str) -> None:
        """Count the run's end with its outcome."""
        self.runs.labels(outcome=outcome).inc()

    def observe_switch(self, seconds: float) -> None:
        """How long moving traffic took."""
        self.switch_duration.observe(seconds)

    def observe_rollback(self, seconds: float) -> None:
        """How long a rollback took to restore traffic."""
        self.rollback_duration.observe(seconds)

    def observe_probe_latency(self, seconds: float) -> None:
        """One health-check attempt's latency."""
        self.probe_latency.observe(seconds)

    def observe_smoke_latency(self, test: str, seconds: float) -> None:
        """One smoke test's latency; test names come from the spec, so the label's values stay few."""
        self.smoke_latency.labels(test=test).observe(seconds)

    def push(self) -> PushResult | None:
        """Replace this service's group on the Pushgateway with this run's metrics.

        Returns:
            None when no Pushgateway is configured (nothing was attempted); otherwise whether the push arrived.
            Never raises for what the gateway does.
        """
        if self.pushgateway_url is None:
            return None
        gateway = _without_credentials(self.pushgateway_url)
        try:
            # PUT, not POST: a metric this run did not produce must not survive from the previous run's push.
            push_to_gateway(
                self.pushgateway_url,
                job=JOB,
                registry=self.registry,
                grouping_key={"service": self.service},
                timeout=self.timeout_seconds,
            )
        except (OSError, ValueError) as error:
            message = f"PUT {gateway}/metrics/job/{JOB}/service/{self.service}: {type(error).__name__}: {error}"
            _log.warning("metrics not pushed: %s", message)
            return PushResult(False, gateway, message)
        return PushResult(True, gateway)


__all__ = ["JOB", "PushResult", "RunMetrics"]
