"""The CI examples: what each pipeline must contain to build, pin, deploy and fail with the record's reason.

GitLab has no offline linter for `.gitlab-ci.yml`, so its job is checked as YAML for the parts that make it correct.
The GitHub workflows are linted with actionlint in ``test_github_workflows.py``; the script both examples run is
executed here for its argument checks and on the local cluster (``tests/e2e/test_ci_submitter.py``) for the rest.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import deploy_template

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "ci"
SCRIPT = EXAMPLES / "bluegreen-deploy.sh"
DEPLOY_CALL = 'ci/bluegreen-deploy.sh "$SERVICE" "$PINNED_IMAGE"'


def _argo_version_built_here() -> str:
    """The Argo version the local cluster runs, from the pinned module the test environment builds."""
    found = re.search(r"github\.com/argoproj/argo-workflows/v4 (v\S+)", (REPO / "testenv/argo/go.mod").read_text())
    assert found, "testenv/argo/go.mod pins no Argo module"
    return found.group(1)


def _load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((EXAMPLES / name).read_text())
    assert isinstance(document, dict)
    return document


def test_gitlab_job_builds_pins_and_deploys_the_digest() -> None:
    pipeline = _load("gitlab-ci.yml")
    build, deploy = pipeline["build-image"], pipeline["deploy"]
    assert pipeline["stages"].index(build["stage"]) < pipeline["stages"].index(deploy["stage"])
    # The digest the registry answered the push with travels to the deploy job as a dotenv artifact.
    assert any("RepoDigests" in line and "PINNED_IMAGE=" in line for line in build["script"])
    assert build["artifacts"]["reports"]["dotenv"] == "image.env"
    assert {"job": "build-image", "artifacts": True} in deploy["needs"]
    assert deploy["script"] == [DEPLOY_CALL]
    assert deploy["environment"]["name"] == "production"


def test_both_pipelines_install_the_argo_cli_the_project_is_tested_with_and_verify_downloads() -> None:
    gitlab, github = _load("gitlab-ci.yml"), _load("github-actions.yaml")
    assert gitlab["variables"]["ARGO_VERSION"] == _argo_version_built_here()
    assert github["env"]["ARGO_VERSION"] == _argo_version_built_here()
    installs = [
        "\n".join(gitlab["deploy"]["before_script"]),
        next(
            step["run"] for step in github["jobs"]["deploy"]["steps"] if "argo-linux-amd64.gz" in step.get("run", "")
        ),
    ]
    for install in installs:
        assert install.count("curl -fsSLO") == 3  # argo, its checksums, kubectl; kubectl's checksum is read inline
        assert install.count("sha256sum") == 2, "every downloaded program is checked against its published checksum"


def test_github_deploy_step_runs_the_script_with_the_pushed_digest() -> None:
    workflow = _load("github-actions.yaml")
    steps = workflow["jobs"]["deploy"]["steps"]
    deploy = next(step for step in steps if step.get("run") == DEPLOY_CALL)
    assert deploy["env"]["PINNED_IMAGE"] == "${{ env.IMAGE }}@${{ steps.build.outputs.digest }}"
    assert any(step.get("id") == "build" and step["with"]["push"] is True for step in steps)
    assert "KUBECONFIG" in next(step for step in steps if "secrets.KUBECONFIG" in str(step.get("env")))["run"]


def test_the_script_submits_the_deploy_template_and_waits() -> None:
    text = SCRIPT.read_text()
    assert f"argo submit --from workflowtemplate/{deploy_template.NAME} " in text
    assert "--wait" in text
    assert re.search(r"--log(\s|$)", text, re.MULTILINE) is None  # the Role grants no pod logs
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "usage: bluegreen-deploy.sh SERVICE IMAGE@sha256:DIGEST"),
        (["user-service", "registry.example.com/user-service:1.4.2"], "is not pinned by digest"),
    ],
)
def test_the_script_refuses_bad_arguments_before_calling_anything(args: list[str], message: str) -> None:
    # An empty PATH: had the script reached argo or kubectl it would fail differently (exit 127 or 3).
    proc = subprocess.run(
        ["/bin/bash", str(SCRIPT), *args], capture_output=True, text=True, env={"PATH": ""}, check=False
    )
    assert proc.returncode == 2
    assert message in proc.stderr
