"""Linting a user's files needs no Go: Argo's schema comes from Hera's models, generated from the Argo we run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from hera.workflows import models

REPO = Path(__file__).resolve().parents[2]


def test_heras_models_are_generated_from_the_argo_release_the_cluster_runs() -> None:
    generated_from = re.search(r"argo-workflows/(v[\d.]+)/api/openapi-spec", models.__doc__ or "")
    pinned = re.search(r"github.com/argoproj/argo-workflows/v4 (v[\d.]+)", (REPO / "testenv/crds/go.mod").read_text())
    assert generated_from and pinned, "cannot read the Argo version of Hera's models or of testenv/crds/go.mod"
    assert generated_from.group(1) == pinned.group(1), (
        f"Hera's models follow Argo {generated_from.group(1)} but the cluster runs {pinned.group(1)}: "
        "pin a Hera release generated from the same Argo"
    )


def test_the_default_lint_catches_argo_schema_errors_with_no_go_on_path(tmp_path: Path) -> None:
    clean = (REPO / "manifests/workflows/blue-green-deploy.yaml").read_text()
    wrong_type: dict[str, Any] = yaml.safe_load(clean)
    wrong_type["spec"]["parallelism"] = "three"
    misspelt: dict[str, Any] = yaml.safe_load(clean)
    probe = next(t for t in misspelt["spec"]["templates"] if t["name"] == "probe")
    probe["container"]["imagePullPolicyy"] = "Always"
    (tmp_path / "wrong-type.yaml").write_text(yaml.safe_dump(wrong_type))
    (tmp_path / "misspelt.yaml").write_text(yaml.safe_dump(misspelt))
    no_go = str(Path(sys.executable).parent)
    assert shutil.which("go", path=no_go) is None
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.lint.cli", str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "PATH": no_go},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert (
        f"{tmp_path}/wrong-type.yaml: WorkflowTemplate/blue-green-deploy: spec.parallelism: "
        "Input should be a valid integer"
    ) in result.stdout
    assert (
        f"{tmp_path}/misspelt.yaml: WorkflowTemplate/blue-green-deploy: "
        "spec.templates[probe].container.imagePullPolicyy: "
        "unknown field: Argo Workflows v4 has no such field"
    ) in result.stdout
