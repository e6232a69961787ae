"""Reproducible renders: settings from a file, written beside the output, read back by a later render or --check."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines import render
from pipelines.lint.cli import main as lint

#: Where a render keeps the settings it used, in its output directory (documented for users).
SETTINGS_FILE = "bluegreen-render.yaml"
REPO = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com/platform/bluegreen-steps@sha256:" + "a" * 64


def settings_beside(out: Path) -> object:
    return yaml.safe_load((out / SETTINGS_FILE).read_text())


def role_binding_namespace(out: Path) -> str:
    binding = yaml.safe_load((out / "rbac" / "role-binding.yaml").read_text())
    return str(binding["subjects"][0]["namespace"])


def test_a_render_writes_the_settings_it_was_given_beside_its_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert render.main(["--out", str(out), "--namespace", "payments", "--alert-deploy-minutes", "45"]) == 0
    # Only what was chosen: a default left out follows the installed release (its steps image tag above all).
    assert settings_beside(out) == {"namespace": "payments", "alert-deploy-minutes": 45}
    text = (out / SETTINGS_FILE).read_text()
    assert "# " in text and "image: ghcr.io/argo-bluegreen/steps:" in text, "the defaults used are named, commented"


def test_check_needs_no_remembered_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert render.main(["--out", str(out), "--namespace", "payments", "--image", IMAGE]) == 0
    assert render.main(["--check", "--out", str(out)]) == 0
    assert "up to date" in capsys.readouterr().out


def test_a_render_again_keeps_the_directorys_settings_and_a_flag_overrides_one(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert render.main(["--out", str(out), "--namespace", "payments"]) == 0
    assert render.main(["--out", str(out), "--image", IMAGE]) == 0
    assert role_binding_namespace(out) == "payments"
    assert settings_beside(out) == {"namespace": "payments", "image": IMAGE}
    assert render.main(["--out", str(out), "--namespace", "shop"]) == 0
    assert role_binding_namespace(out) == "shop"
    assert settings_beside(out) == {"namespace": "shop", "image": IMAGE}


def test_a_flag_given_to_check_overrides_the_directorys_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert render.main(["--out", str(out), "--namespace", "payments"]) == 0
    capsys.readouterr()
    assert render.main(["--check", "--out", str(out), "--namespace", "apps"]) == 1
    err = capsys.readouterr().err
    assert f"stale: {out}/rbac/role-binding.yaml: differs from what the code renders" in err
    assert f"stale: {out}/{SETTINGS_FILE}: differs from what the code renders" in err


def test_settings_come_from_a_file_and_flags_override_it(tmp_path: Path) -> None:
    chosen = tmp_path / "payments.yaml"
    chosen.write_text(
        f"namespace: payments\nimage: {IMAGE}\ncleanup-schedule: '0 3 * * *'\nalert-cleanup-hours: 6\n"
        "argo-ui-url: https://argo.example.com\n"
    )
    out = tmp_path / "out"
    assert render.main(["--settings", str(chosen), "--out", str(out), "--namespace", "shop"]) == 0
    assert role_binding_namespace(out) == "shop"
    cron = yaml.safe_load((out / "workflows" / "blue-green-cleanup.yaml").read_text())
    assert cron["spec"]["schedules"] == ["0 3 * * *"]
    assert settings_beside(out) == {
        "namespace": "shop",
        "image": IMAGE,
        "cleanup-schedule": "0 3 * * *",
        "alert-cleanup-hours": 6,
        "argo-ui-url": "https://argo.example.com",
    }
    # The file written beside the output is itself a settings file: rendering from it reproduces the directory.
    again = tmp_path / "again"
    assert render.main(["--settings", str(out / SETTINGS_FILE), "--out", str(again)]) == 0
    for path in out.rglob("*"):
        if path.is_file():
            assert (again / path.relative_to(out)).read_text() == path.read_text(), path


def test_the_settings_keys_are_the_flags(tmp_path: Path) -> None:
    """Every key of a settings file is a flag of the same name, and every setting flag is a key."""
    groups = {group.title: group for group in render.parser()._action_groups}
    setting_flags = [
        option.removeprefix("--")
        for action in groups["settings"]._group_actions
        for option in action.option_strings
        if option.startswith("--")
    ]
    keys = set(render.SETTINGS_KEYS)
    assert set(setting_flags) == keys
    every = tmp_path / "every.yaml"
    every.write_text(
        yaml.safe_dump(
            {
                "namespace": "payments",
                "image": IMAGE,
                "cosign-image": "mirror.example.com/cosign@sha256:" + "b" * 64,
                "argo-ui-url": "https://argo.example.com",
                "pushgateway-url": "http://pushgateway.monitoring:9091",
                "cleanup-schedule": "@hourly",
                "alert-deploy-minutes": 45,
                "alert-cleanup-hours": 3,
                "notifications-secret": "team-hooks",
                "image-pull-secrets": ["regcred", "mirror"],
                "prometheus-rule-labels": {"release": "kube-prometheus-stack"},
                "step-cpu-request": "100m",
                "step-cpu-limit": "1",
                "step-memory-request": "128Mi",
                "step-memory-limit": "512Mi",
            }
        )
    )
    assert set(yaml.safe_load(every.read_text())) == keys
    assert render.main(["--settings", str(every), "--out", str(tmp_path / "out")]) == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("namesapce: payments\n", ["'namesapce'", "did you mean 'namespace'", "--"]),
        ("alert-deploy-minutes: thirty\n", ["alert-deploy-minutes", "whole number"]),
        ("alert-deploy-minutes: true\n", ["alert-deploy-minutes", "whole number"]),
        ("namespace: Payments\n", ["namespace", "DNS-1123"]),
        ("image: 5\n", ["image", "text"]),
        ("cleanup-schedule: */5 * * * *\n", ["line 1", "quote"]),
        ("- namespace: payments\n", ["mapping", "key: value"]),
        ("cleanup-schedule: every 5 minutes\n", ["cleanup-schedule", "a cron schedule has five"]),
        ("image-pull-secrets: [regcred, Mirror]\n", ["image-pull-secrets", "'Mirror' is not a Secret name"]),
        ("prometheus-rule-labels: {release: 3}\n", ["prometheus-rule-labels", "must be text"]),
        ("step-memory-limit: 1Gb\n", ["step-memory-limit", "'1Gb' is not a quantity", "'1Gi'"]),
        ("step-cpu-limit: '0'\n", ["step-cpu-limit", "is zero"]),
    ],
    ids=[
        "typo",
        "not-a-number",
        "boolean",
        "bad-namespace",
        "not-text",
        "not-yaml",
        "a-list",
        "bad-schedule",
        "bad-pull-secret",
        "label-not-text",
        "bad-quantity",
        "zero-limit",
    ],
)
def test_a_bad_settings_file_is_one_line_naming_file_and_key_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: list[str]
) -> None:
    chosen = tmp_path / "settings.yaml"
    chosen.write_text(content)
    out = tmp_path / "out"
    assert render.main(["--settings", str(chosen), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"bluegreen-render: {chosen}: "), err
    for fragment in expected:
        assert fragment in err[0], (fragment, err[0])
    assert not out.exists()


def test_a_missing_settings_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.yaml"
    assert render.main(["--settings", str(missing), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"bluegreen-render: {missing}: cannot read"), err
    assert not (tmp_path / "out").exists()


def test_a_broken_settings_file_in_the_directory_stops_check_and_render(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert render.main(["--out", str(out), "--namespace", "payments"]) == 0
    before = {p: p.read_text() for p in out.rglob("*") if p.is_file()}
    (out / SETTINGS_FILE).write_text("namespace: payments\nimage-tag: v2\n")
    capsys.readouterr()
    for argv in (["--check", "--out", str(out)], ["--out", str(out)]):
        assert render.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"bluegreen-render: {out / SETTINGS_FILE}: "), err
        assert "'image-tag'" in err[0]
    after = {p: p.read_text() for p in out.rglob("*") if p.is_file() and p.name != SETTINGS_FILE}
    assert after == {p: t for p, t in before.items() if p.name != SETTINGS_FILE}


def test_the_committed_manifests_carry_their_settings_and_lint_passes_over_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """manifests/ is rendered with the defaults, so its settings file chooses nothing; lint reads past it."""
    assert settings_beside(REPO / "manifests") == {}
    out = tmp_path / "out"
    assert render.main(["--out", str(out), "--namespace", "payments"]) == 0
    assert lint([str(out)]) == 0
    assert "0 problems" in capsys.readouterr().err


def test_a_request_and_its_limit_are_judged_together_wherever_each_is_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A request above the default limit is fine when the file raises the limit too; above the limit it is refused."""
    chosen = tmp_path / "settings.yaml"
    chosen.write_text("step-cpu-request: '2'\nstep-cpu-limit: '4'\n")
    assert render.main(["--settings", str(chosen), "--out", str(tmp_path / "ok")]) == 0
    assert render.main(["--settings", str(chosen), "--step-cpu-limit", "1", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "step CPU request '2' is above the limit '1'" in err and "raise the limit" in err
    assert not (tmp_path / "bad").exists()
