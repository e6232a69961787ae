import os
import re
import shutil
from pathlib import Path

import pytest

from testenv import paths, rollouts, tools
from testenv.cache_entry import READY_MARKER

CRD_TEMPLATE = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {name}
spec: {{}}
"""


def test_the_key_follows_the_rollouts_pins_and_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "rollouts"
    shutil.copytree(rollouts.MODULE_DIR, copy)
    monkeypatch.setattr(rollouts, "MODULE_DIR", copy)
    before = rollouts.cache_key()

    (copy / "notes.txt").write_text("not an input\n")
    assert rollouts.cache_key() == before

    go_mod = copy / "go.mod"
    original = go_mod.read_text()
    go_mod.write_text(original.replace("v1.10.1", "v1.10.0"))
    assert rollouts.cache_key() != before
    go_mod.write_text(original)
    assert rollouts.cache_key() == before

    go_sum = copy / "go.sum"
    go_sum.write_text(go_sum.read_text() + "example.com/x v1.0.0 h1:AAAA=\n")
    assert rollouts.cache_key() != before


def test_the_cluster_and_tools_keys_share_no_input_with_this_one() -> None:
    ours = set(rollouts.key_inputs())
    cluster = {paths.TESTENV_DIR / rel for rel in paths.KEY_INPUTS}
    assert not ours & cluster
    assert not ours & set(tools._key_inputs())


def test_the_cache_root_sits_beside_the_cluster_and_tools_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for env in (rollouts.CACHE_ENV, tools.CACHE_ENV, "BLUEGREEN_TESTENV_CACHE"):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    root = rollouts.cache_root()
    assert root == tmp_path / "argo-bluegreen" / "rollouts"
    assert root.parent == tools.cache_root().parent == paths.cache_root().parent
    assert root not in (tools.cache_root(), paths.cache_root())

    monkeypatch.setenv(rollouts.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert rollouts.entry_dir() == tmp_path / "elsewhere" / rollouts.cache_key()


def test_an_entry_counts_only_once_ready_and_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(rollouts.CACHE_ENV, str(tmp_path))
    for lookup in (rollouts.controller, rollouts.crd_files):
        with pytest.raises(rollouts.RolloutsNotBuilt, match=r"not built .*: run `make rollouts`"):
            lookup()

    entry = rollouts.entry_dir()
    binary = entry / "bin" / rollouts.CONTROLLER_NAME
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    os.chmod(binary, 0o755)
    # A build that stopped before its marker is not an entry, whatever it holds.
    with pytest.raises(rollouts.RolloutsNotBuilt, match="run `make rollouts`"):
        rollouts.controller()

    (entry / READY_MARKER).write_text(rollouts.cache_key() + "\n")
    assert rollouts.controller() == binary
    with pytest.raises(rollouts.RolloutsNotBuilt, match=r"incomplete \(no CRDs in .*\): run `make rollouts`"):
        rollouts.crd_files()

    (entry / "crds").mkdir()
    for name in ("rollout-crd.yaml", "analysis-run-crd.yaml"):
        (entry / "crds" / name).write_text(CRD_TEMPLATE.format(name=name))
    assert [path.name for path in rollouts.crd_files()] == ["analysis-run-crd.yaml", "rollout-crd.yaml"]


@pytest.mark.parametrize(
    ("printed", "accepted"),
    [
        ("v1.10.1+unknown\n", True),
        ("v1.10.1+0a1b2c3\n", True),
        ("v1.10.1\n", True),
        ("v1.10.10+unknown\n", False),
        # What the controller prints when the -X stamps missed their variables.
        ("v99.99.99+unknown\n", False),
        ("", False),
    ],
)
def test_the_version_check_accepts_only_the_pinned_release(printed: str, accepted: bool) -> None:
    if accepted:
        rollouts.check_reported_version(printed, "v1.10.1")
    else:
        with pytest.raises(rollouts.RolloutsBuildError, match=r"not the pinned v1\.10\.1"):
            rollouts.check_reported_version(printed, "v1.10.1")


def test_the_stamps_follow_the_proxy_record() -> None:
    stamp = f"-X {rollouts.VERSION_PACKAGE}."
    without_commit = rollouts.ldflags("v1.10.1", {"Version": "v1.10.1", "Time": "2026-10-12T11:30:54Z"})
    assert f"{stamp}version=1.10.1 " in without_commit
    assert f"{stamp}buildDate=2026-10-12T11:30:54Z" in without_commit
    assert "gitCommit" not in without_commit

    with_commit = rollouts.ldflags("v1.10.1", {"Time": "2026-10-12T11:30:54Z", "Origin": {"Hash": "0a1b2c3d4e"}})
    assert f"{stamp}gitCommit=0a1b2c3d4e" in with_commit


def test_only_crds_leave_the_module_and_the_rollout_crd_must_be_among_them(tmp_path: Path) -> None:
    module = tmp_path / "module"
    source = module / rollouts.MODULE_CRD_DIR
    source.mkdir(parents=True)
    (source / "kustomization.yaml").write_text("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n")
    (source / "experiment-crd.yaml").write_text(CRD_TEMPLATE.format(name="experiments.argoproj.io"))
    with pytest.raises(rollouts.RolloutsBuildError, match=r"no CRD named rollouts\.argoproj\.io"):
        rollouts.copy_crds(module, tmp_path / "first")

    (source / "rollout-crd.yaml").write_text(CRD_TEMPLATE.format(name="rollouts.argoproj.io"))
    assert rollouts.copy_crds(module, tmp_path / "second") == ["experiment-crd.yaml", "rollout-crd.yaml"]
    assert sorted(p.name for p in (tmp_path / "second").iterdir()) == ["experiment-crd.yaml", "rollout-crd.yaml"]


def test_every_staging_replace_follows_the_kubernetes_release_rollouts_requires() -> None:
    go_mod = (rollouts.MODULE_DIR / "go.mod").read_text()
    kubernetes = re.search(r"^\s*k8s\.io/kubernetes (v1\.(\d+\.\d+))\b", go_mod, re.MULTILINE)
    assert kubernetes is not None, "testenv/rollouts/go.mod no longer requires k8s.io/kubernetes"
    replaces = re.findall(r"^\s*(k8s\.io/[\w-]+) => (k8s\.io/[\w-]+) (\S+)$", go_mod, re.MULTILINE)
    assert len(replaces) > 20
    staging_version = f"v0.{kubernetes.group(2)}"
    assert [r for r in replaces if r[0] != r[1] or r[2] != staging_version] == []


def test_without_go_the_build_fails_with_a_message_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(rollouts.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(shutil, "which", lambda _: None)
    assert rollouts.main([]) == 1
    assert "rollouts: the Go toolchain >= 1.26 must be on PATH" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
    assert rollouts.main(["--fast"]) == 2
