"""The README's walk-through on the local cluster, every command exactly as written."""

from __future__ import annotations

import pytest

from testenv.demo_service import REPO, DemoService, demo_image
from testenv.local_cluster import LocalCluster
from tests.e2e.readme_blocks import readme_block

pytestmark = [pytest.mark.cluster]


def test_readme_walkthrough_runs_as_written(installed: LocalCluster) -> None:
    commands = readme_block("walk-through")
    assert any(c.startswith("argo submit --from workflowtemplate/blue-green-deploy") for c in commands), commands
    for command in commands:
        proc = installed.run_tool(["bash", "-c", command], check=False, cwd=REPO)
        assert proc.returncode == 0, f"README command failed: {command}\n{proc.stdout}\n{proc.stderr}"
    service = DemoService(installed, "user-service")
    # The walk-through deploys v2 and then rolls back, so v1 answers again.
    assert service.status()["activeImage"] == demo_image("v1")
    assert service.serving_version() == "v1"
