"""One version number: the package's, the default steps image's tag, the rendered templates' label, every CLI's.

``kubectl bluegreen version`` compares the client's number with the installed templates' label; these tests hand it a
fake cluster, so they need none.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

import kubectl_bluegreen.cli as plugin_cli
from pipelines.manifests import render_all
from pipelines.settings import DEFAULT_IMAGE, RenderSettings

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SCRIPTS: dict[str, str] = PYPROJECT["project"]["scripts"]
#: The version the installed package's metadata reports; every other number must equal it.
VERSION = importlib.metadata.version("argo-bluegreen")
LABEL = "app.kubernetes.io/version"
#: How each program names itself in its messages; kubectl runs the plugin as ``kubectl bluegreen``.
PROGRAM_NAMES = {"kubectl-bluegreen": "kubectl bluegreen"}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_console_script_prints_the_package_version(
    script: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module, _, function = SCRIPTS[script].partition(":")
    monkeypatch.setattr(sys, "argv", [script, "--version"])
    with pytest.raises(SystemExit) as ended:
        getattr(importlib.import_module(module), function)()
    assert ended.value.code == 0
    assert capsys.readouterr().out == f"{PROGRAM_NAMES.get(script, script)} {VERSION}\n"


def test_the_version_is_written_once_and_the_package_reads_it_from_there() -> None:
    """pyproject takes the number from bluegreen_version.py, so no second copy can fall behind."""
    assert PYPROJECT["project"].get("dynamic") == ["version"]
    assert "version" not in PYPROJECT["project"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "bluegreen_version.__version__"}
    assert importlib.import_module("bluegreen_version").__version__ == VERSION
    sources = [REPO / "pyproject.toml", REPO / "Makefile", *sorted((REPO / "images").rglob("*"))]
    for package in ("pipelines", "steps", "kubectl_bluegreen"):
        sources += sorted((REPO / package).rglob("*.py"))
    sources += [REPO / "bluegreen_spec.py", REPO / "bluegreen_contract.py"]
    copies = [p.relative_to(REPO).as_posix() for p in sources if p.is_file() and f'"{VERSION}"' in p.read_text()]
    copies += [p.relative_to(REPO).as_posix() for p in sources if p.is_file() and f"steps:{VERSION}" in p.read_text()]
    assert copies == [], f"the version is written out again in {copies}; read it from bluegreen_version"


def test_the_default_steps_image_is_tagged_with_the_package_version() -> None:
    assert f"ghcr.io/argo-bluegreen/steps:{VERSION}" == DEFAULT_IMAGE


def test_make_image_builds_the_tag_the_templates_run(monkeypatch: pytest.MonkeyPatch) -> None:
    planned = subprocess.run(
        ["make", "--no-print-directory", "-n", "image"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert planned.splitlines()[-1].split() == ["python3", "images/build.py"]  # no tag given: the default tag
    spec = importlib.util.spec_from_file_location("image_build", REPO / "images" / "build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, build)  # its dataclasses look their module up there
    spec.loader.exec_module(build)
    assert [r.reference for r in build.recipes() if r.name == "steps"] == [DEFAULT_IMAGE]
    tagged = subprocess.run(
        ["make", "--no-print-directory", "-n", "image", "IMAGE=registry.example.com/steps:1"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout
    assert "images/build.py --steps-tag registry.example.com/steps:1" in tagged


def test_every_rendered_workflow_template_and_cron_workflow_carries_the_version_label() -> None:
    labelled = {
        m.path: m.document["metadata"]["labels"].get(LABEL)
        for m in render_all(RenderSettings())
        if m.document.get("kind") in {"WorkflowTemplate", "CronWorkflow"}
    }
    assert len(labelled) == 4
    assert labelled == dict.fromkeys(labelled, VERSION)


# -- kubectl bluegreen version ---------------------------------------------------------------------------------------


class FakeKube:
    """Answers ``get`` from a dict of objects keyed by (resource, namespace, name)."""

    def __init__(self, objects: dict[tuple[str, str, str], dict[str, Any]]) -> None:
        self.objects = objects

    def get(self, resource: Any, namespace: str, name: str, subresource: str | None = None) -> dict[str, Any] | None:
        return self.objects.get((resource.plural, namespace, name))


class FakeCluster:
    """What a command sees of :class:`kubectl_bluegreen.connection.Cluster`: a client and a namespace."""

    def __init__(self, kube: FakeKube | None, namespace: str = "apps") -> None:
        self._kube = kube
        self.namespace_used = namespace

    @property
    def kube(self) -> FakeKube:
        assert self._kube is not None, "the command reached for the cluster"
        return self._kube

    @property
    def namespace(self) -> str:
        assert self._kube is not None, "the command reached for the cluster"
        return self.namespace_used


def installed(version: str | None, namespace: str = "apps") -> FakeKube:
    labels = {"app.kubernetes.io/part-of": "argo-bluegreen"}
    if version is not None:
        labels[LABEL] = version
    template = {"kind": "WorkflowTemplate", "metadata": {"name": "blue-green-deploy", "labels": labels}}
    return FakeKube({("workflowtemplates", namespace, "blue-green-deploy"): template})


def run_version(monkeypatch: pytest.MonkeyPatch, cluster: FakeCluster, *argv: str) -> int:
    monkeypatch.setattr(plugin_cli, "Cluster", lambda target: cluster)
    return plugin_cli.main(["version", *argv])


def test_version_shows_the_client_and_the_installed_templates(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_version(monkeypatch, FakeCluster(installed(VERSION))) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        f"Client Version: {VERSION}",
        f"Templates Version: {VERSION} (WorkflowTemplate apps/blue-green-deploy)",
    ]
    assert captured.err == ""


def test_version_warns_on_stderr_when_the_templates_are_another_release(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_version(monkeypatch, FakeCluster(installed("0.0.9"))) == 0
    captured = capsys.readouterr()
    assert "Templates Version: 0.0.9 (WorkflowTemplate apps/blue-green-deploy)" in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("kubectl bluegreen version: warning: ")
    assert "0.0.9" in err[0] and VERSION in err[0] and "bluegreen-render" in err[0]


def test_version_warns_when_the_templates_predate_the_label(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_version(monkeypatch, FakeCluster(installed(None))) == 0
    captured = capsys.readouterr()
    assert "Templates Version: unknown (WorkflowTemplate apps/blue-green-deploy)" in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "warning" in err[0] and LABEL in err[0], err


def test_version_without_installed_templates_is_one_line_and_exit_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_version(monkeypatch, FakeCluster(FakeKube({}), namespace="shop")) == 3
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [f"Client Version: {VERSION}"]
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "WorkflowTemplate shop/blue-green-deploy does not exist" in err[0], err


def test_version_client_only_never_reaches_for_the_cluster(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_version(monkeypatch, FakeCluster(None), "--client") == 0
    assert capsys.readouterr().out == f"Client Version: {VERSION}\n"


def test_version_as_json_for_scripts(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_version(monkeypatch, FakeCluster(installed("0.0.9")), "-o", "json") == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"clientVersion": VERSION, "templatesVersion": "0.0.9", "namespace": "apps"}
    assert "warning" in captured.err
