"""Benchmarks use the same real control plane as the tests."""

from __future__ import annotations

pytest_plugins = ["testenv.pytest_plugin"]
