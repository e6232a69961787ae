"""Which run a step belongs to: the workflow of its Pod, never a parameter the submitter chose."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from bluegreen_contract import RUN_WORKFLOW_ENV, ExitCode
from steps.api_transport import InClusterTransport, Transport
from steps.cli import main
from steps.context import StepContext
from steps.errors import BadInput, CheckFailed
from steps.gates import require_own_record
from steps.kube import Kube
from steps.run_identity import own_record, pod_workflow


class Unreachable:
    """A kubeconfig's transport, as outside a Pod, that must not be used: these checks read no API."""

    host = "https://127.0.0.1:6443"

    def send(self, *args: object) -> object:
        raise AssertionError("the run's identity needs no API request")


def test_a_step_belongs_to_the_workflow_its_pod_is_labelled_with(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUN_WORKFLOW_ENV, "blue-green-deploy-x7k2p")
    outside: Transport = Unreachable()  # type: ignore[assignment]
    assert pod_workflow(Kube(outside)) == "blue-green-deploy-x7k2p"
    assert own_record("blue-green-deploy-x7k2p") == "blue-green-deploy-x7k2p"


def test_outside_a_pod_there_is_no_run_to_bind_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUN_WORKFLOW_ENV, raising=False)
    outside: Transport = Unreachable()  # type: ignore[assignment]
    assert pod_workflow(Kube(outside)) is None
    assert own_record(None) is None


def test_a_pod_without_its_workflow_label_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only a Pod our templates did not make lacks the variable; its --record is not taken on trust."""
    monkeypatch.delenv(RUN_WORKFLOW_ENV, raising=False)
    in_pod = InClusterTransport("https://10.0.0.1:443", tmp_path / "ca.crt", tmp_path / "token")
    with pytest.raises(BadInput, match=f"in a Pod as its ServiceAccount but without {RUN_WORKFLOW_ENV}"):
        pod_workflow(Kube(in_pod))


def gate_context(kube: Kube, step: str) -> StepContext:
    """What the gate reads of a step's context: its client, namespace, service and step name."""
    log = SimpleNamespace(step=step)
    return cast(StepContext, SimpleNamespace(kube=kube, namespace="apps", service="cart", log=log))


def test_a_gate_refuses_every_record_but_its_own_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    outside: Transport = Unreachable()  # type: ignore[assignment]
    ctx = gate_context(Kube(outside), "switch")
    monkeypatch.setenv(RUN_WORKFLOW_ENV, "blue-green-deploy-x7k2p")
    require_own_record(ctx, "blue-green-deploy-x7k2p", "traffic stays where it is")
    for handed in ("blue-green-deploy-older", ""):
        with pytest.raises(CheckFailed) as refused:
            require_own_record(ctx, handed, "traffic stays where it is")
        assert str(refused.value) == (
            "BlueGreenDeployment apps/cart: switch runs in workflow blue-green-deploy-x7k2p and may use only its "
            f"record blue-green-deploy-x7k2p, not {handed or '(none)'}: a gate accepts only the verdicts of the run "
            "its Pod belongs to; run the blue-green-deploy pipeline from its default entrypoint; traffic stays where "
            "it is"
        )
    # Outside a Pod, with no variable, the caller's own credentials decide; the gate takes the record as named.
    monkeypatch.delenv(RUN_WORKFLOW_ENV)
    require_own_record(ctx, "blue-green-deploy-older", "traffic stays where it is")


def test_verify_image_started_with_another_run_s_record_refuses_before_any_request(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A workflow started at verify-image, handed another run's record, a made-up plan and a made-up pass.

    The whole step through its command line, as the deploy template's container calls it: it may record its verdict
    only in its own run's record, and refuses before it reads or writes anything (the transport fails any request).
    """
    monkeypatch.setenv(RUN_WORKFLOW_ENV, "blue-green-deploy-forged")
    outside: Transport = Unreachable()  # type: ignore[assignment]
    plan = json.dumps([{"check": "signature", "authority": "key cosign-keys/cosign.pub"}])
    argv = [
        "verify-image",
        "--namespace",
        "apps",
        "--service=cart",
        "--image=10.0.0.1:5000/team/app:v8@sha256:" + "ab" * 32,
        "--slot=green",
        "--record=blue-green-deploy-x7k2p",
        f"--plan={plan}",
        '--verified=[{"index":"0","verified":""}]',
        "--transient-retries=3",
    ]
    assert main(argv, kube=Kube(outside)) == ExitCode.BAD_INPUT
    assert (
        "verify-image of workflow blue-green-deploy-forged may record its verdict only in that run's record "
        "(blue-green-deploy-forged), not in blue-green-deploy-x7k2p"
    ) in capsys.readouterr().err
