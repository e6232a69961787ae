"""Shared test configuration: the real control plane comes from the testenv plugin."""

from __future__ import annotations

from hypothesis import settings

pytest_plugins = ["testenv.pytest_plugin", "testenv.suite_report"]

# Hypothesis fails an example that runs past 200 ms by default: a timing check on machines that are shared and noisy,
# where rendering a spec and validating it against the CRD schema can take longer. Timings are the benchmarks' job.
settings.register_profile("argo-bluegreen", deadline=None)
settings.load_profile("argo-bluegreen")
