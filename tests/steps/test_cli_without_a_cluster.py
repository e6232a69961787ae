"""Run by hand outside a cluster and without a kubeconfig, a step says so in one line and exits with BAD_INPUT."""

from __future__ import annotations

from pathlib import Path

import pytest

from bluegreen_contract import ExitCode
from steps.cli import main


@pytest.mark.parametrize("argv", [["status", "cart"], ["history", "cart"]], ids=["status", "history"])
def test_no_kubeconfig_is_one_line_and_bad_input(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config there
    assert main([argv[0], "--namespace", "apps", *argv[1:]]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"bluegreen-step {argv[0]}: no kubeconfig found: looked at {tmp_path}/.kube/config"), err
    assert "not a Pod with a ServiceAccount" in err[0] and "KUBECONFIG=FILE" in err[0], err
