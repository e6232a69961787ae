"""Benchmarks use the same real control plane as the tests, and keep their figures for docs/performance.md."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.results import RESULTS_ENV, BenchResults, write

pytest_plugins = ["testenv.pytest_plugin"]

_RESULTS = BenchResults()


@pytest.fixture(scope="session")
def bench_results() -> BenchResults:
    """Where each benchmark records its raw figures."""
    return _RESULTS


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write what was recorded when ``BLUEGREEN_BENCH_RESULTS`` asks for it; the page refuses an incomplete file."""
    target = os.environ.get(RESULTS_ENV)
    if target and _RESULTS.sections:
        write(Path(target), _RESULTS, int(exitstatus))
