"""The Helm chart: current with the code, lint-clean for the pinned Helm, the same objects as the kustomize install.

``helm template`` is held equal, object for object, to what ``bluegreen-render`` writes with the same settings: with
the chart's defaults against the committed ``manifests/``, and with other values against a render given the matching
flags. Values of the wrong shape are refused by Helm itself, naming the value, before anything is rendered.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import helm_chart
from pipelines.manifests import CLUSTER, OBSERVABILITY, render_all
from pipelines.settings import RenderSettings

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "argo-bluegreen"
Helm = Callable[..., subprocess.CompletedProcess[str]]
Key = tuple[str, str, str]


def test_the_committed_chart_is_what_the_code_generates(capsys: pytest.CaptureFixture[str]) -> None:
    assert helm_chart.main(["--check", "--out", str(CHART)]) == 0, capsys.readouterr().err


def test_argo_and_prometheus_braces_survive_helm_escaping() -> None:
    text = "a: '{{workflow.name}}'\nb: {{ $labels.service }} and }} {{\n"
    escaped = helm_chart.escape_braces(text)
    assert "{{workflow" not in escaped and escaped.count('{{ "{{" }}') == 3 and escaped.count('{{ "}}" }}') == 3


def test_every_setting_has_a_value_and_a_sentinel_no_default_shares() -> None:
    """A setting added to RenderSettings without a chart value would leave a sentinel behind; this names it."""
    defaults, sentinels = RenderSettings(), helm_chart.SENTINELS
    for field in RenderSettings.__dataclass_fields__:
        assert getattr(sentinels, field) != getattr(defaults, field), f"{field} has no sentinel of its own"
    # Every sentinel was replaced: generating raises on one left over, so generating at all is the check.
    assert helm_chart.chart_files()


def _objects(text: str) -> dict[Key, dict[str, Any]]:
    found = {}
    for document in yaml.safe_load_all(text):
        if document:
            meta = document["metadata"]
            found[(document["kind"], meta.get("namespace", ""), meta["name"])] = document
    return found


def _rendered(settings: RenderSettings, *, opt_ins: bool) -> dict[Key, dict[str, Any]]:
    """The objects of both kustomizations (and with ``opt_ins`` the CI identity and observability sets)."""
    wanted = []
    for manifest in render_all(settings):
        path = manifest.path
        if not path.endswith(".yaml") or path.endswith("kustomization.yaml") or path.startswith("argo-controller/"):
            continue
        if not opt_ins and (path.startswith("rbac/ci-submitter/") or path.startswith(OBSERVABILITY)):
            continue
        wanted.append(manifest.document)
    return _objects(yaml.safe_dump_all(wanted))


def _template(helm: Helm, *args: str) -> dict[Key, dict[str, Any]]:
    proc = helm("template", "argo-bluegreen", str(CHART), "--include-crds", *args)
    assert proc.returncode == 0, proc.stderr
    return _objects(proc.stdout)


def _assert_same(templated: dict[Key, dict[str, Any]], rendered: dict[Key, dict[str, Any]]) -> None:
    assert sorted(templated) == sorted(rendered)
    for key, document in rendered.items():
        assert templated[key] == document, key


def test_helm_lint_passes_strictly(helm: Helm) -> None:
    proc = helm("lint", "--strict", str(CHART))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


def test_helm_template_with_the_defaults_is_the_kustomize_install(helm: Helm) -> None:
    _assert_same(_template(helm, "--namespace", "apps"), _rendered(RenderSettings(), opt_ins=False))


@pytest.mark.parametrize(
    ("values", "settings"),
    [
        pytest.param(
            {
                "namespace": "payments",
                "image": "registry.example.com/platform/bluegreen-steps@sha256:" + "a" * 64,
                "cosignImage": "mirror.example.com/sigstore/cosign@sha256:" + "b" * 64,
                "imagePullSecrets": [{"name": "regcred"}, {"name": "mirror"}],
                "notificationsSecret": "team-hooks",
                "argoUiUrl": "https://argo.example.com",
                "pushgatewayUrl": "http://pushgateway.monitoring:9091",
                "cleanupSchedule": "@hourly",
                "stepResources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "1", "memory": "1Gi"},
                },
                "alerts": {"deployMinutes": 45, "cleanupHours": 3},
                "ciSubmitter": {"enabled": True},
                "prometheusRule": {
                    "enabled": True,
                    "labels": {"release": "kube-prometheus-stack", "team": "platform"},
                },
                "dashboard": {"enabled": True},
            },
            RenderSettings(
                namespace="payments",
                image="registry.example.com/platform/bluegreen-steps@sha256:" + "a" * 64,
                cosign_image="mirror.example.com/sigstore/cosign@sha256:" + "b" * 64,
                image_pull_secrets="regcred,mirror",
                notifications_secret="team-hooks",
                argo_ui_url="https://argo.example.com",
                pushgateway_url="http://pushgateway.monitoring:9091",
                cleanup_schedule="@hourly",
                step_cpu_request="100m",
                step_cpu_limit="1",
                step_memory_request="128Mi",
                step_memory_limit="1Gi",
                deploy_alert_minutes=45,
                cleanup_alert_hours=3,
                prometheus_rule_labels="release=kube-prometheus-stack,team=platform",
            ),
            id="every-value",
        ),
        pytest.param(
            {
                "argoUiUrl": "https://argo.example.com",
                "ciSubmitter": {"enabled": True},
                "prometheusRule": {"enabled": True},
                "dashboard": {"enabled": True},
            },
            RenderSettings(namespace="apps", argo_ui_url="https://argo.example.com"),
            id="one-url-only",
        ),
    ],
)
def test_helm_template_with_values_is_the_render_with_the_same_settings(
    helm: Helm, tmp_path: Path, values: dict[str, Any], settings: RenderSettings
) -> None:
    chosen = tmp_path / "values.yaml"
    chosen.write_text(yaml.safe_dump(values))
    _assert_same(_template(helm, "--namespace", "apps", "-f", str(chosen)), _rendered(settings, opt_ins=True))


def test_the_cluster_wide_policies_can_be_left_to_the_first_release(helm: Helm) -> None:
    """A second namespace's release leaves out the admission policies the first installed; the CRDs Helm skips."""
    templated = _template(helm, "--namespace", "payments", "--set", "admissionPolicies.enabled=false")
    kinds = {kind for kind, _, _ in templated}
    assert "ValidatingAdmissionPolicy" not in kinds and "ValidatingAdmissionPolicyBinding" not in kinds
    admission = [m for m in render_all(RenderSettings()) if m.path.startswith(CLUSTER + "admission/")]
    assert admission, "the render has admission policies to leave out"


@pytest.mark.parametrize(
    ("flag", "named"),
    [
        ("stepResources.requests.cpu=half", "stepResources.requests.cpu"),
        ("namespace=Payments", "namespace"),
        ("notificationsSecret=Team_Hooks", "notificationsSecret"),
        ("alerts.deployMinutes=0", "alerts.deployMinutes"),
        ("imagePullSecrets=regcred", "imagePullSecrets"),
        ("pushgatewayUrl=pushgateway:9091", "pushgatewayUrl"),
        ("replicas=2", "replicas"),
        ("image=not an image", "image"),
        ("cleanupSchedule=every 5 minutes", "cleanupSchedule"),
        ("prometheusRule.labels.app\\.kubernetes\\.io/part-of=mine", "app.kubernetes.io/part-of"),
        ("prometheusRule.labels.release=kube prometheus", "release"),
        ("prometheusRule.labels.bad key!=x", "bad key!"),
        ("image=null", "image"),
        ("alerts.deployMinutes=null", "deployMinutes"),
        ("stepResources.limits.cpu=0", "stepResources"),
        ("stepResources.requests.memory=0Mi", "stepResources"),
    ],
)
def test_a_value_of_the_wrong_shape_is_refused_naming_it(helm: Helm, flag: str, named: str) -> None:
    proc = helm("template", "argo-bluegreen", str(CHART), "--set", flag)
    assert proc.returncode != 0, proc.stdout[:500]
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert named.rsplit(".", 1)[-1] in proc.stderr, proc.stderr


def test_a_whole_number_of_cpus_may_be_given_as_a_number(helm: Helm) -> None:
    """``--set stepResources.limits.cpu=2`` is a number to Helm; it is a valid CPU quantity all the same."""
    templated = _template(helm, "--namespace", "apps", "--set", "stepResources.limits.cpu=2")
    deploy = templated[("WorkflowTemplate", "apps", "blue-green-deploy")]
    limits = [t["container"]["resources"]["limits"]["cpu"] for t in deploy["spec"]["templates"] if "container" in t]
    assert "2" in limits
