"""Shared test configuration: the real control plane comes from the testenv plugin."""

from __future__ import annotations

pytest_plugins = ["testenv.pytest_plugin"]
