from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines import argo_controller, ci_submitter, render
from pipelines.manifests import CLUSTER, HEADER, render_all
from pipelines.settings import DEFAULT_IMAGE, RenderSettings
from pipelines.settings_file import SETTINGS_FILE

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
RENDERED = {m.path: m for m in render_all(RenderSettings())}


@pytest.mark.parametrize("path", sorted(RENDERED))
def test_committed_manifest_matches_the_code(path: str) -> None:
    """manifests/ is the golden output: regenerate with `make manifests` and review the diff."""
    assert (MANIFESTS / path).read_text() == RENDERED[path].text(), f"manifests/{path} is stale: run make manifests"


def test_no_stray_files_in_manifests() -> None:
    yaml_files = sorted(p.relative_to(MANIFESTS).as_posix() for p in MANIFESTS.rglob("*.yaml"))
    # Beside the objects, the settings the render used (the defaults: `make manifests` passes none).
    assert yaml_files == sorted([*(path for path in RENDERED if path.endswith(".yaml")), SETTINGS_FILE])
    json_files = sorted(p.relative_to(MANIFESTS).as_posix() for p in MANIFESTS.rglob("*.json"))
    assert json_files == sorted(path for path in RENDERED if path.endswith(".json"))


def test_a_render_without_out_goes_to_rendered_and_leaves_the_golden_manifests_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    golden = tmp_path / "manifests"
    golden.mkdir()
    (golden / "kustomization.yaml").write_text("golden\n")
    monkeypatch.chdir(tmp_path)
    assert render.main(["--namespace", "payments"]) == 0
    assert (golden / "kustomization.yaml").read_text() == "golden\n"
    assert sorted(golden.iterdir()) == [golden / "kustomization.yaml"]
    binding = yaml.safe_load((tmp_path / "rendered" / "rbac" / "role-binding.yaml").read_text())
    assert binding["subjects"][0]["namespace"] == "payments"
    assert "into rendered" in capsys.readouterr().out
    # --check compares the directory it is given, with the settings it was rendered with, never the golden manifests.
    assert render.main(["--namespace", "payments", "--check"]) == 0
    assert render.main(["--check"]) == 0
    assert render.main(["--check", "--namespace", "apps"]) == 1
    err = capsys.readouterr().err
    assert "stale: rendered/rbac/role-binding.yaml: differs from what the code renders" in err
    assert "bluegreen-render: rendered is stale; render it again (bluegreen-render --out rendered reads" in err


def test_rendering_is_deterministic() -> None:
    again = {m.path: m.text() for m in render_all(RenderSettings())}
    assert again == {path: m.text() for path, m in RENDERED.items()}


def test_check_names_stale_missing_and_extra_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert render.main(["--out", str(tmp_path)]) == 0
    assert render.main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "rbac" / "role.yaml").write_text("changed\n")
    (tmp_path / "workflows" / "blue-green-cleanup.yaml").unlink()
    (tmp_path / "workflows" / "old.yaml").write_text(HEADER + "kind: Old\n")
    (tmp_path / "workflows" / "users-own.yaml").write_text("kind: Mine\n")
    capsys.readouterr()
    assert render.main(["--out", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert f"stale: {tmp_path}/rbac/role.yaml: differs from what the code renders" in err
    assert f"stale: {tmp_path}/workflows/blue-green-cleanup.yaml: missing" in err
    assert f"stale: {tmp_path}/workflows/old.yaml: no longer rendered" in err
    assert render.main(["--out", str(tmp_path)]) == 0
    assert not (tmp_path / "workflows" / "old.yaml").exists()
    assert (tmp_path / "workflows" / "users-own.yaml").read_text() == "kind: Mine\n", "a user's file was touched"
    assert "users-own.yaml" not in err
    assert render.main(["--out", str(tmp_path), "--check"]) == 0


def test_settings_reach_every_object(tmp_path: Path) -> None:
    image = "registry.example.com/platform/bluegreen-steps@sha256:" + "a" * 64
    cosign = "mirror.example.com/sigstore/cosign@sha256:" + "b" * 64
    assert (
        render.main(["--out", str(tmp_path), "--namespace", "payments", "--image", image, "--cosign-image", cosign])
        == 0
    )
    text = "\n".join(p.read_text() for p in tmp_path.rglob("*.yaml"))
    assert DEFAULT_IMAGE not in text
    assert "namespace: apps" not in text
    for file in (tmp_path / "workflows").glob("*.yaml"):
        document = yaml.safe_load(file.read_text())
        assert document["metadata"]["namespace"] == "payments"
        if document["kind"] == "CronWorkflow":
            continue  # it only starts the sweep's WorkflowTemplate, by name
        images = {t["container"]["image"] for t in document["spec"]["templates"] if "container" in t}
        assert images == ({image} if file.stem == "blue-green-cleanup-template" else {image, cosign})
    binding = yaml.safe_load((tmp_path / "rbac" / "role-binding.yaml").read_text())
    assert binding["subjects"][0]["namespace"] == "payments"


def test_pull_secrets_notification_secret_resources_and_rule_labels_reach_their_objects(tmp_path: Path) -> None:
    flags = {
        "--notifications-secret": "team-hooks",
        "--image-pull-secrets": "regcred,mirror",
        "--prometheus-rule-labels": "release=kube-prometheus-stack,team=platform",
        "--step-cpu-request": "100m",
        "--step-cpu-limit": "1",
        "--step-memory-request": "128Mi",
        "--step-memory-limit": "512Mi",
    }
    assert render.main(["--out", str(tmp_path), *(part for pair in flags.items() for part in pair)]) == 0
    rule = yaml.safe_load((tmp_path / "observability" / "prometheusrule.yaml").read_text())
    assert rule["metadata"]["labels"] == {
        "app.kubernetes.io/part-of": "argo-bluegreen",
        "release": "kube-prometheus-stack",
        "team": "platform",
    }
    steps = {"limits": {"cpu": "1", "memory": "512Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}
    templates = [yaml.safe_load(path.read_text()) for path in sorted((tmp_path / "workflows").glob("*.yaml"))]
    templates = [document for document in templates if document["kind"] == "WorkflowTemplate"]
    assert len(templates) == 3
    for document in templates:
        assert document["spec"]["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}], document["metadata"]
    containers = []
    for path in (tmp_path / "workflows").glob("*.yaml"):
        for template in yaml.safe_load(path.read_text())["spec"].get("templates", []):
            containers += [template["container"]] if "container" in template else []
            containers += (template.get("containerSet") or {}).get("containers", [])
    steps_containers = [c for c in containers if c.get("command") == ["bluegreen-step"]]
    assert steps_containers and all(c["resources"] == steps for c in steps_containers)
    secrets = {
        env["valueFrom"]["secretKeyRef"]["name"]
        for c in steps_containers
        for env in c.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    assert secrets == {"team-hooks"}


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--namespace", "Payments", "namespace 'Payments' is not a DNS-1123 label"),
        ("--image", "not an image", "image 'not an image' is not an image reference"),
        ("--cleanup-schedule", "every 5 minutes", "has 3 fields; a cron schedule has five"),
        ("--cleanup-schedule", "*/5 24 * * *", "hour '24' is not in 0-23"),
        ("--cleanup-schedule", "*/0 * * * *", "minute step '0' must be a positive number"),
        ("--cleanup-schedule", "0 3 * * mon-sun", "day of week range 'mon-sun' runs backwards"),
        ("--cleanup-schedule", "0 3 1,,2 * *", "day of month '1,,2' has an empty list item"),
        ("--cleanup-schedule", "@fortnightly", "'@fortnightly' is not one of @annually"),
        ("--notifications-secret", "Hooks", "notifications Secret 'Hooks' is not a Secret name"),
        ("--prometheus-rule-labels", "release", "PrometheusRule label 'release' has no '='"),
        ("--prometheus-rule-labels", "release=kube prometheus", "has value 'kube prometheus', which is not a label"),
        ("--prometheus-rule-labels", "app.kubernetes.io/part-of=mine", "is the one argo-bluegreen finds its own"),
        ("--step-memory-request", "1G", "step memory request '1G' is above the limit '256Mi'"),
        ("--step-cpu-limit", "half", "step CPU limit 'half' is not a quantity; write one such as '250m' or '1'"),
        ("--step-memory-limit", "512", "step memory limit '512' is below 64Mi (a number alone is bytes: did you mean"),
    ],
)
def test_bad_settings_fail_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    assert render.main(["--out", str(tmp_path / "out"), flag, value]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_two_kustomizations_list_every_installed_object_once_crds_first() -> None:
    """The namespace's part (the main kustomization) and the cluster's (``cluster/``) together install every object.

    test_install_scopes.py checks which objects belong to which part.
    """
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    cluster = yaml.safe_load((MANIFESTS / CLUSTER / "kustomization.yaml").read_text())
    installed = sorted(
        p
        for p in RENDERED
        if not p.endswith("kustomization.yaml")
        and not p.startswith((f"{ci_submitter.DIRECTORY}/", "observability/", f"{argo_controller.DIRECTORY}/"))
    )
    listed = [*kustomization["resources"], *(CLUSTER + path for path in cluster["resources"])]
    assert sorted(listed) == installed
    assert cluster["resources"][0].startswith("crds/")
    # The monitoring objects are opt-in (their CRD exists only with the prometheus-operator), in a kustomization of
    # their own that lists every rendered object beside it.
    observability = yaml.safe_load((MANIFESTS / "observability" / "kustomization.yaml").read_text())
    beside = sorted(
        p.removeprefix("observability/")
        for p in RENDERED
        if p.startswith("observability/") and p.endswith(".yaml") and not p.endswith("kustomization.yaml")
    )
    assert sorted(observability["resources"]) == beside == ["dashboard-configmap.yaml", "prometheusrule.yaml"]


def test_the_ci_identity_is_opt_in_with_a_kustomization_of_its_own() -> None:
    directory = MANIFESTS / ci_submitter.DIRECTORY
    own = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert sorted(own["resources"]) == sorted(
        p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml"
    )
    kinds = {yaml.safe_load((directory / path).read_text())["kind"] for path in own["resources"]}
    assert kinds == {"ServiceAccount", "Role", "RoleBinding"}


def test_the_controller_setting_is_a_patch_for_argos_configmap_outside_every_kustomization() -> None:
    """Argo's ConfigMap lives in Argo's namespace: `kubectl apply -k` of ours must neither create nor replace it."""
    patch = yaml.safe_load((MANIFESTS / argo_controller.FILE).read_text())
    assert patch["metadata"] == {"name": "workflow-controller-configmap"}, "no namespace: the patch command names it"
    assert yaml.safe_load(patch["data"]["workflowRestrictions"]) == {"templateReferencing": "Strict"}
    listed = [yaml.safe_load(path.read_text())["resources"] for path in MANIFESTS.rglob("kustomization.yaml")]
    assert not [r for resources in listed for r in resources if argo_controller.DIRECTORY in r]
    assert not (MANIFESTS / argo_controller.DIRECTORY / "kustomization.yaml").exists()


@pytest.mark.parametrize(
    "schedule", ["*/5 * * * *", "0 3 * * mon-fri", "15,45 */2 1-15 jan,jul *", "@hourly", "@every 90s"]
)
def test_schedules_argo_accepts_render(tmp_path: Path, schedule: str) -> None:
    assert render.main(["--out", str(tmp_path), "--cleanup-schedule", schedule]) == 0
    cron = yaml.safe_load((tmp_path / "workflows" / "blue-green-cleanup.yaml").read_text())
    assert cron["spec"]["schedules"] == [schedule]


def test_an_unwritable_output_is_one_line_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert render.main(["--out", str(blocker / "manifests")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bluegreen-render: cannot use "), err
    assert "choose another --out" in err[0]
