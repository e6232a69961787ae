"""``kubectl bluegreen`` without a cluster: arguments, kubeconfig handling, exit codes and the submitted object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import kubectl_bluegreen.connection as connection
from kubectl_bluegreen.cli import build_parser, main
from kubectl_bluegreen.commands import COMMANDS
from kubectl_bluegreen.connection import Target, connect
from kubectl_bluegreen.errors import NotFoundError, UsageError
from kubectl_bluegreen.exit_codes import PluginExit
from kubectl_bluegreen.submission import check_parameters, dns_friendly, pod_steps, workflow_from_template
from steps.kube import ApiRetryPolicy
from tests.unit.test_plugin_rendering import a_view

REPO = Path(__file__).resolve().parents[2]


def kubeconfig(path: Path, server: str = "https://127.0.0.1:1") -> Path:
    """Two contexts on one (unreachable) server: ``dev`` with namespace ``apps``, ``ops`` without one."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
                "users": [{"name": "alice", "user": {"token": "not-a-real-token"}}],
                "contexts": [
                    {"name": "dev", "context": {"cluster": "local", "user": "alice", "namespace": "apps"}},
                    {"name": "ops", "context": {"cluster": "local", "user": "alice"}},
                ],
                "current-context": "dev",
            }
        )
    )
    return path


def test_help_lists_every_registered_command_and_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        main(["--help"])
    assert ended.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert f"    {name} " in out, name
    for code in PluginExit:
        assert f"  {int(code)}  " in out, code
    assert "--kubeconfig" in out and "--context" in out and "-n NAMESPACE" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["-n", "apps", "--context", "dev", "status", "cart"],
        ["status", "cart", "-n", "apps", "--context", "dev"],
        ["--context", "dev", "status", "-n", "apps", "cart"],
    ],
    ids=["flags-before", "flags-after", "flags-split"],
)
def test_connection_flags_work_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.command, args.service, args.namespace, args.context, args.kubeconfig) == (
        "status",
        "cart",
        "apps",
        "dev",
        "",
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["deploy"],  # the service is required; the image is not (a template-only release)
        ["route", "cart", "--to", "purple"],
        ["status", "cart", "-o", "wide"],
        ["frobnicate"],
    ],
    ids=["deploy-without-service", "route-to-unknown-slot", "unknown-output", "unknown-command"],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        main(argv)
    assert ended.value.code == PluginExit.USAGE
    assert "usage: kubectl bluegreen" in capsys.readouterr().err


def test_a_malformed_image_is_refused_before_any_connection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    assert main(["--kubeconfig", str(missing), "deploy", "cart", "--image", "Not An Image"]) == PluginExit.USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kubectl bluegreen deploy: --image: image 'Not An Image'"), err


def test_missing_kubeconfig_is_one_line_and_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["status", "cart"]) == PluginExit.NOT_FOUND
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no kubeconfig found" in err[0] and "--kubeconfig" in err[0], err
    assert f"{tmp_path}/.kube/config (the default; KUBECONFIG is unset)" in err[0], err


def test_namespace_comes_from_the_flag_then_the_context_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = kubeconfig(tmp_path / "config")
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert connect(Target()).namespace == "apps"
    assert connect(Target()).context == "dev"
    assert connect(Target(namespace="shop")).namespace == "shop"
    ops = connect(Target(context="ops"))
    assert (ops.context, ops.namespace, ops.user) == ("ops", "default", "alice")
    monkeypatch.delenv("KUBECONFIG")
    assert connect(Target(kubeconfig=str(path), context="ops")).context == "ops"


def test_kubeconfig_lists_merge_as_in_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = kubeconfig(tmp_path / "a")
    second = tmp_path / "b"
    second.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "other", "cluster": {"server": "https://127.0.0.1:2"}}],
                "users": [{"name": "bob", "user": {"token": "t"}}],
                "contexts": [{"name": "prod", "context": {"cluster": "other", "user": "bob", "namespace": "live"}}],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    prod = connect(Target(context="prod"))
    assert (prod.namespace, prod.configuration.host) == ("live", "https://127.0.0.1:2")


def test_an_unknown_context_names_the_ones_there_are(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"context 'staging' is not in .* \(it has: dev, ops\)"):
        connect(Target(kubeconfig=str(kubeconfig(tmp_path / "config")), context="staging"))


def test_an_unreachable_cluster_is_one_line_and_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(connection, "INTERACTIVE_RETRY", ApiRetryPolicy(deadline_seconds=0.3))
    path = kubeconfig(tmp_path / "config")
    assert main(["--kubeconfig", str(path), "history", "cart"]) == PluginExit.NOT_FOUND
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the API server at https://127.0.0.1:1 could not be reached" in err[0], err


def test_the_workflow_is_the_one_argo_submit_from_builds() -> None:
    body = workflow_from_template(
        "blue-green-deploy", [("service", "cart"), ("image", "r/cart:v2")], creator="system:admin"
    )
    assert body == {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "generateName": "blue-green-deploy-",
            "labels": {
                "workflows.argoproj.io/workflow-template": "blue-green-deploy",
                "workflows.argoproj.io/creator": "system-admin",
            },
        },
        "spec": {
            "workflowTemplateRef": {"name": "blue-green-deploy"},
            "arguments": {
                "parameters": [{"name": "service", "value": "cart"}, {"name": "image", "value": "r/cart:v2"}]
            },
        },
    }
    anonymous = workflow_from_template("blue-green-rollback", [])
    assert "workflows.argoproj.io/creator" not in anonymous["metadata"]["labels"]
    assert "arguments" not in anonymous["spec"]


@pytest.mark.parametrize(
    ("user", "label"),
    [
        ("system:serviceaccount:ci:deployer", "system-serviceaccount-ci-deployer"),
        ("alice@example.com", "alice-example.com"),
        ("--x--", "x"),
        ("a" * 70 + "b", "a" * 62 + "b"),
        (":::", ""),
    ],
)
def test_creator_labels_are_made_safe_as_argo_makes_them(user: str, label: str) -> None:
    assert dns_friendly(user) == label


def test_parameters_are_checked_against_the_template_before_anything_is_created() -> None:
    template = yaml.safe_load((REPO / "manifests/workflows/blue-green-deploy.yaml").read_text())
    check_parameters(template, [("service", "cart"), ("image", "r/cart:v2"), ("triggered-by", "alice")])
    with pytest.raises(UsageError, match="declares no parameter colour"):
        check_parameters(template, [("service", "cart"), ("image", "r/cart:v2"), ("colour", "blue")])
    check_parameters(template, [("service", "cart")])  # a template-only release
    with pytest.raises(UsageError, match="needs parameter\\(s\\) service"):
        check_parameters(template, [("image", "r/cart:v2")])


def test_lint_is_bluegreen_lint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(REPO / "examples/user-service.yaml")]) == 0
    broken = tmp_path / "broken.yaml"
    spec = yaml.safe_load((REPO / "examples/user-service.yaml").read_text())
    spec["spec"]["replicas"] = -1
    broken.write_text(yaml.safe_dump(spec))
    assert main(["lint", str(broken)]) == PluginExit.FAILED
    out = capsys.readouterr().out
    assert "broken.yaml" in out and "replicas" in out
    assert main(["lint", str(tmp_path / "missing.yaml")]) == PluginExit.USAGE


def test_lint_passes_the_kubernetes_schema_through(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--kubernetes-schema DIR`` reaches bluegreen-lint, which names the directory it cannot read."""
    missing = tmp_path / "no-schema"
    assert main(["lint", str(REPO / "examples/user-service.yaml"), "--kubernetes-schema", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"bluegreen-lint: cannot read Kubernetes' schema {missing}" in err, err


def test_lint_checks_kubernetes_objects_against_the_schema_it_is_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.unit.test_lint_kubernetes_schema import pinned_kubernetes_schema

    schema = pinned_kubernetes_schema()
    if not schema.is_dir():
        pytest.skip(f"{schema} is missing: `make testenv` (or `make manifests`) has Go fetch k8s.io/kubernetes")
    deployment = tmp_path / "deployment.yaml"
    deployment.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: '3'\n"
        "  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n"
        "    spec:\n      containers: [{name: web, image: r/web:v1}]\n"
    )
    assert main(["lint", str(deployment)]) == 0
    assert main(["lint", str(deployment), "--kubernetes-schema", str(schema)]) == PluginExit.FAILED
    assert "spec.replicas" in capsys.readouterr().out


def test_status_json_is_plain_data() -> None:
    data = json.loads(json.dumps(a_view().to_dict()))
    assert data["liveSlot"] == "green" and data["traffic"] == {"blue": 0, "green": 100}


def test_steps_are_named_by_task_without_the_retry_attempt() -> None:
    workflow = {
        "status": {
            "nodes": {
                "a": {
                    "type": "Pod",
                    "displayName": "switch(0)",
                    "phase": "Running",
                    "startedAt": "2026-11-26T10:00:02Z",
                },
                "b": {
                    "type": "Pod",
                    "displayName": "preflight(1)",
                    "phase": "Succeeded",
                    "startedAt": "2026-11-26T10:00:01Z",
                },
                "c": {
                    "type": "Retry",
                    "displayName": "switch",
                    "phase": "Running",
                    "startedAt": "2026-11-26T10:00:02Z",
                },
                "d": {"type": "Pod", "displayName": "onExit", "phase": "Pending"},
            }
        }
    }
    assert [(p.step, p.phase) for p in pod_steps(workflow)] == [
        ("preflight", "Succeeded"),
        ("switch", "Running"),
        ("onExit", "Pending"),
    ]


def test_the_release_pod_shows_as_its_steps() -> None:
    pod = {"id": "r", "type": "Pod", "displayName": "release", "phase": "Running", "startedAt": "2026-11-26T10:00:05Z"}

    def container(name: str, phase: str, finished: str | None = None, then: str = "") -> dict[str, Any]:
        node: dict[str, Any] = {"id": name, "type": "Container", "displayName": name, "phase": phase}
        node.update(boundaryID="r", children=[then] if then else [])
        node["startedAt"] = "2026-11-26T10:00:05Z"
        if finished:
            node["finishedAt"] = finished
        return node

    workflow = {
        "status": {
            "nodes": {
                "p": {
                    "id": "p",
                    "type": "Pod",
                    "displayName": "preflight",
                    "phase": "Succeeded",
                    "startedAt": "2026-11-26T10:00:01Z",
                },
                "r": pod,
                # The controller may mark several containers finished at once: the graph orders them.
                "smoke": container("smoke", "Failed", "2026-11-26T10:00:19Z", then="switch"),
                "deploy-green": container("deploy-green", "Succeeded", "2026-11-26T10:00:19Z", then="probe"),
                "main": container("main", "Pending"),
                "probe": container("probe", "Succeeded", "2026-11-26T10:00:19Z", then="smoke"),
                # Argo keys the nodes by id, and children name ids.
                "switch": {
                    **container("switch", "Error", "2026-11-26T10:00:19Z"),
                    "message": 'switch: Error (exit code 64): dependency "smoke" exited with non-zero code: 1',
                },
            }
        }
    }
    assert [(p.step, p.phase) for p in pod_steps(workflow)] == [
        ("preflight", "Succeeded"),
        ("deploy-green", "Succeeded"),
        ("probe", "Succeeded"),
        ("smoke", "Failed"),
    ]
