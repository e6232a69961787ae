"""Where a test run's time went: one line per layer of the suite, printed at the end of every run.

A layer is a part of the suite that costs differently: the unit and step tests need no
cluster, the integration tests need the API server, the crash points and the end-to-end tests need the whole cluster
and most of the time. For each layer the table gives the number of tests, the time its tests took added up, and its
wall span, from its first test's start to its last test's end. In a parallel run the sum is larger than the span by
about the number of workers that ran the layer at once; the run's own wall time is pytest's last line.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

#: Layer of a test by where it lives, most specific first.
LAYERS: tuple[tuple[str, str], ...] = (
    ("tests/integration/test_crash_points.py", "crash points"),
    ("tests/unit/", "unit"),
    ("tests/steps/", "steps"),
    ("tests/integration/", "integration"),
    ("tests/e2e/", "e2e"),
    ("tests/node_agent/", "node agent"),
    ("tests/demo_app/", "demo app"),
    ("tests/image/", "images"),
    ("benchmarks/", "benchmarks"),
)


def layer_of(nodeid: str) -> str:
    """The layer a test id belongs to; tests outside the known folders count as "other"."""
    for prefix, layer in LAYERS:
        if nodeid.startswith(prefix):
            return layer
    return "other"


@dataclass
class LayerTime:
    """What one layer cost in this run."""

    tests: int = 0
    seconds: float = 0.0
    first_start: float | None = None
    last_stop: float | None = None

    def add(self, report: pytest.TestReport) -> None:
        """Count one phase (setup, call or teardown) of one test."""
        if report.when == "call" or (report.when == "setup" and report.outcome == "skipped"):
            self.tests += 1
        self.seconds += report.duration
        self.first_start = report.start if self.first_start is None else min(self.first_start, report.start)
        self.last_stop = report.stop if self.last_stop is None else max(self.last_stop, report.stop)

    @property
    def span(self) -> float:
        """Wall seconds from the layer's first test's start to its last test's end."""
        if self.first_start is None or self.last_stop is None:
            return 0.0
        return self.last_stop - self.first_start


class SuiteReport:
    """Collects every test's phases by layer and prints the table after pytest's own summary."""

    def __init__(self) -> None:
        self.layers: dict[str, LayerTime] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Add one phase of one test to its layer."""
        # Under xdist the workers' reports arrive here, in the controller, as a plain run's would.
        self.layers.setdefault(layer_of(report.nodeid), LayerTime()).add(report)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Print the table after pytest's own summary, the slowest tests included."""
        if not self.layers:
            return
        terminalreporter.section("time per layer")
        for line in format_table(self.layers):
            terminalreporter.write_line(line)


def pytest_configure(config: pytest.Config) -> None:
    """Register the table's collector in the process that prints the summary."""
    if not hasattr(config, "workerinput"):  # a worker's reports are the controller's to add up
        config.pluginmanager.register(SuiteReport(), "argo-bluegreen-suite-report")


def format_table(layers: dict[str, LayerTime]) -> list[str]:
    """The per-layer lines, in the order of :data:`LAYERS`."""
    order = [layer for _prefix, layer in LAYERS] + ["other"]
    lines = [f"{'layer':<14}{'tests':>7}{'test time':>12}{'wall span':>12}"]
    for name in sorted(layers, key=order.index):
        cost = layers[name]
        lines.append(f"{name:<14}{cost.tests:>7}{_minutes(cost.seconds):>12}{_minutes(cost.span):>12}")
    return lines


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


#: The order in which a parallel run starts its layers: the longest first, so that no worker starts a crash-point
#: scenario of several minutes when the others have nothing left to do.
START_ORDER: tuple[str, ...] = (
    "crash points",
    "e2e",
    "integration",
    "node agent",
    "images",
    "demo app",
    "steps",
    "unit",
    "benchmarks",
    "other",
)


def deal(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """The items dealt into one pile per worker, each pile longest layers first, the piles one after another.

    xdist's work-stealing scheduler gives each worker a contiguous block of the collection, and an idle worker steals
    from the end of the longest queue. Dealt this way, every block starts with its share of the slow layers and ends
    with quick tests, which are what a steal moves. Within a layer the tests keep their files' order.
    """
    ordered = sorted(items, key=lambda item: START_ORDER.index(layer_of(item.nodeid)))
    return [item for pile in range(workers) for item in ordered[pile::workers]]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the tests for the run's workers (see :func:`deal`); a run without workers gets one pile."""
    # Every xdist worker orders its collection the same way, as the controller requires.
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    items[:] = deal(items, max(workers, 1))
