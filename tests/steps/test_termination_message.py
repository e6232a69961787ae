"""A failed step leaves its reason where the kubelet, and so Argo's node message, picks it up."""

from __future__ import annotations

from pathlib import Path

from bluegreen_contract import TERMINATION_MESSAGE_LIMIT
from steps.cli import leave_termination_message


def test_reason_is_written_when_the_kubelet_provided_the_file(tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    path.write_text("")
    assert leave_termination_message("Deployment apps/cart-green failed: ImagePullBackOff", path)
    assert path.read_text() == "Deployment apps/cart-green failed: ImagePullBackOff"


def test_nothing_is_created_outside_a_pod(tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    assert not leave_termination_message("reason", path)
    assert not path.exists()


def test_reason_is_cut_to_what_the_kubelet_keeps(tmp_path: Path) -> None:
    path = tmp_path / "termination-log"
    path.write_text("")
    leave_termination_message("x" * (TERMINATION_MESSAGE_LIMIT * 2), path)
    assert len(path.read_text()) == TERMINATION_MESSAGE_LIMIT
