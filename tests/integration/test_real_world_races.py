"""The repair cron against a run that took the service over after the sweep read it."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

import bluegreen_spec as spec
from steps.kube import Kube
from tests.integration.service_helpers import IMAGE_V2, IMAGE_V3, ServiceFactory

pytestmark = pytest.mark.controlplane


def test_repair_skips_a_service_another_run_took_over(make_service: ServiceFactory, tmp_path: Path) -> None:
    sut = make_service("rw-race")
    sut.deploy(IMAGE_V2, "wf-1", tmp_path / "1")
    target, record = sut.preflight(IMAGE_V3, "wf-dead", tmp_path / "dead")  # its workflow object is gone
    assert sut.run_deploy_green(IMAGE_V3, target, record) == 0

    # A second client, so the new run never reads the sweep's snapshots.
    other = dataclasses.replace(sut, steps_kube=Kube(sut.steps_kube.api, retry=sut.steps_kube.retry))
    sweep_kube = sut.steps_kube
    original_fresh_reads = sweep_kube.fresh_reads
    taken_over: list[str] = []

    @contextlib.contextmanager
    def fresh_reads_after_takeover() -> Iterator[None]:
        if not taken_over:  # between the sweep's judgement and its first write, a new run takes the service
            new_target, new_record = other.preflight(IMAGE_V3, "wf-new", tmp_path / "new")
            assert other.run_deploy_green(IMAGE_V3, new_target, new_record) == 0
            taken_over.append(new_target)
        with original_fresh_reads():
            yield

    sweep_kube.fresh_reads = fresh_reads_after_takeover  # type: ignore[method-assign]
    try:
        assert sut.run_cleanup(all_services=True) == 0
    finally:
        sweep_kube.fresh_reads = original_fresh_reads  # type: ignore[method-assign]

    assert taken_over == [target]
    status = sut.status()
    assert status.workflow == "wf-new"
    assert status.phase is spec.Phase.deploying
    assert sut.replicas(f"cart-{target}") == 2, "the new run's green must not be scaled down"
    assert (sut.record("wf-new").get("status") or {}).get("finishedAt") is None
