"""Crash points: kill a step just before and just after every API write it makes, then recover.

For deploy-green, switch, rollback and the cleanup repair, the test first counts the writes the step makes, then for
each write and each side of it runs the step in a fresh service, stops it dead at that point (a BaseException, so no
handler in the step can tidy up), checks that traffic is still on an available slot, runs the recovery the pipeline
would run (the step again, the exit handler's rollback, or the repair cron), and checks the invariants of
docs/concepts.md: I1 at the crash and after recovery; I3 and I4 as a recovery that converges to the state a
clean run reaches, status and route agreeing; I6 as a record that survives and, once recovery closes the run, has an
outcome.

"Before a write" is skipped where it is the same point as "after the write before it": the step sent that write
right after the previous one, with no request in between; and where the write creates an Event, which no step and no
check here reads, so that "before" and "after" it differ in nothing a recovery sees (distinct_crash_points).
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

import bluegreen_spec as spec
from bluegreen_contract import DEPLOYMENTS
from steps import slots
from steps.kube import ApiRetryPolicy, Kube
from tests.integration.service_helpers import IMAGE_V2, ServiceFactory, ServiceUnderTest

pytestmark = pytest.mark.controlplane

WRITES = {"POST", "PUT", "PATCH", "DELETE"}
COVERED: list[str] = []


class Crash(BaseException):
    """The step's process dies here."""


class CrashingKube(Kube):
    """Counts API writes, and dies just before or just after the one it is told to."""

    def __init__(self, api: client.ApiClient, crash_at: int | None = None, when: str = "before") -> None:
        super().__init__(api, retry=ApiRetryPolicy(deadline_seconds=10.0))
        self.crash_at = crash_at
        self.when = when
        self.writes: list[str] = []
        #: For each write, whether the step sent no request at all since the previous write.
        self.follows_at_once: list[bool] = []
        self._requests_since_write = 0

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        if method not in WRITES or (kwargs.get("query") or {}).get("dryRun"):
            self._requests_since_write += 1
            return super()._send(method, path, **kwargs)
        self.follows_at_once.append(bool(self.writes) and self._requests_since_write == 0)
        self._requests_since_write = 0
        self.writes.append(f"{method} {path.split('/namespaces/')[-1]}")
        if self.crash_at == len(self.writes) and self.when == "before":
            raise Crash(self.writes[-1])
        answer = super()._send(method, path, **kwargs)
        if self.crash_at == len(self.writes) and self.when == "after":
            raise Crash(self.writes[-1])
        return answer


@dataclass
class Scenario:
    """One step under test: how to bring a service to the point before it, the step, and the recovery."""

    name: str
    prepare: Callable[[ServiceUnderTest, Path], None]
    step: Callable[[ServiceUnderTest], int]
    recover: Callable[[ServiceUnderTest], None]
    final_slot: spec.Slot
    closes_run: bool
    #: Which workflow's run the scenario is about, and anything else to check after recovery.
    extra_check: Callable[[ServiceUnderTest], None] | None = None


def assert_traffic_on_available_slot(sut: ServiceUnderTest) -> spec.Slot | None:
    """I1 at this instant; before adoption has routed anywhere, traffic still reaches the original Deployment."""
    sut.wait_settled()
    slot = sut.live_slot()
    name = slots.deployment_name(sut.name, slot) if slot is not None else sut.name
    deployment = sut.admin_kube.must_get(DEPLOYMENTS, sut.namespace, name)
    state = slots.availability(deployment)
    assert state.available, f"traffic on {name}, which has {state.ready}/{state.wanted} available (I1)"
    return slot


def wf(sut: ServiceUnderTest) -> str:
    """The run's workflow name: unique per namespace, as Argo's generated names are."""
    return f"wf-{sut.name}"


def preflight(sut: ServiceUnderTest, out: Path) -> None:
    sut.preflight(IMAGE_V2, wf(sut), out)


def deploy_green(sut: ServiceUnderTest) -> int:
    return sut.run_deploy_green(IMAGE_V2, spec.Slot.green, wf(sut))


def switch(sut: ServiceUnderTest) -> int:
    return sut.run_switch(spec.Slot.green, wf(sut))


def rollback_on_exit(sut: ServiceUnderTest) -> int:
    return sut.rollback_on_exit(wf(sut))


def cleanup(sut: ServiceUnderTest) -> int:
    return sut.run_cleanup(all_services=True)


def up_to_switch(sut: ServiceUnderTest, out: Path) -> None:
    preflight(sut, out)
    assert deploy_green(sut) == 0
    sut.prove(spec.Slot.green, wf(sut))


def switched(sut: ServiceUnderTest, out: Path) -> None:
    up_to_switch(sut, out)
    assert switch(sut) == 0


def expect_ok(action: Callable[[ServiceUnderTest], int]) -> Callable[[ServiceUnderTest], None]:
    def run(sut: ServiceUnderTest) -> None:
        assert action(sut) == 0

    return run


def nothing(sut: ServiceUnderTest, out: Path) -> None:
    """The service as the platform team left it: never deployed by the pipeline."""


def adopted(sut: ServiceUnderTest) -> None:
    assert sut.replicas(sut.name) == 0, "the adopted original still runs"
    blue = sut.deployment(slots.deployment_name(sut.name, spec.Slot.blue))
    assert blue is not None and slots.availability(blue).available


SCENARIOS = [
    Scenario(
        "preflight adopting the service, then preflight again",
        nothing,
        lambda sut: sut.run_preflight(IMAGE_V2, wf(sut)),
        expect_ok(lambda sut: sut.run_preflight(IMAGE_V2, wf(sut))),
        spec.Slot.blue,
        closes_run=False,
        extra_check=adopted,
    ),
    Scenario(
        "deploy-green, then the step again",
        preflight,
        deploy_green,
        expect_ok(deploy_green),
        spec.Slot.blue,
        closes_run=False,
    ),
    Scenario(
        "deploy-green, then the exit handler",
        preflight,
        deploy_green,
        expect_ok(rollback_on_exit),
        spec.Slot.blue,
        closes_run=True,
    ),
    Scenario(
        "switch, then the step again", up_to_switch, switch, expect_ok(switch), spec.Slot.green, closes_run=False
    ),
    Scenario(
        "switch, then the exit handler",
        up_to_switch,
        switch,
        expect_ok(rollback_on_exit),
        spec.Slot.blue,
        closes_run=True,
    ),
    Scenario(
        "rollback, then the rollback again",
        switched,
        rollback_on_exit,
        expect_ok(rollback_on_exit),
        spec.Slot.blue,
        closes_run=True,
    ),
    Scenario(
        "switch, then the repair cron (terminated run)",
        up_to_switch,
        switch,
        expect_ok(cleanup),
        spec.Slot.blue,
        closes_run=True,
    ),
    # `argo terminate` after the switch: the workflow is gone and no exit handler ran; the cron repairs.
    Scenario(
        "cleanup repair, then the repair again", switched, cleanup, expect_ok(cleanup), spec.Slot.blue, closes_run=True
    ),
]


@pytest.fixture(scope="module", autouse=True)
def report_total() -> Any:
    yield
    print(
        f"\ncrash points covered: {len(COVERED)} (each checked for I1 at the crash and I1, I3, I4, I6 after recovery)"
    )


@pytest.fixture
def service_in(make_service: ServiceFactory, make_namespace: Callable[..., str]) -> Callable[[str], ServiceUnderTest]:
    """Services of one namespace, each named by the test: every crash point gets a fresh one beside the others.

    One replica per slot: the invariants are about which slot the route names and whether it is available, which a
    single Pod decides as well as two, and the crash points start several hundred real Pods.
    """
    namespace = make_namespace("crash")
    return lambda name: make_service(namespace=namespace, name=name, replicas=1)


def retire(sut: ServiceUnderTest) -> None:
    """Delete a checked service's Deployments, so the node runs only the Pods of the crash point under test."""
    for name in (sut.name, *(slots.deployment_name(sut.name, slot) for slot in spec.Slot)):
        if sut.deployment(name) is not None:
            sut.admin_kube.delete(DEPLOYMENTS, sut.namespace, name)


def with_kube(sut: ServiceUnderTest, kube: Kube) -> ServiceUnderTest:
    return replace(sut, steps_kube=kube)


#: Each scenario's crash points are split across this many tests, so a parallel run spreads one scenario's points over
#: several workers instead of leaving one worker with minutes of them at the end.
SHARDS = 3


@dataclass(frozen=True)
class StepWrites:
    """The writes a clean run of the step makes, in order, and which of them it sends right after the one before."""

    writes: list[str]
    follows_at_once: list[bool]


#: Writes counted per scenario, read once per worker process from the count the whole run shares.
_WRITES: dict[str, StepWrites] = {}


@pytest.fixture(scope="session")
def counts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where a scenario's count is kept for the run: pytest-xdist's workers share their base temp's parent."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def count_writes(
    scenario: Scenario, make: Callable[[str], ServiceUnderTest], tmp_path: Path, counts_dir: Path
) -> StepWrites:
    """The writes of one clean run of the step, counted once for the whole run.

    Every shard of a scenario needs the same count, and its shards usually run on different workers: the first to get
    here counts under a file lock while the others wait for its answer, instead of each preparing a service and
    running the step again to count the same writes. The count also makes the shards split one list of points.
    """
    if scenario.name not in _WRITES:
        key = hashlib.sha256(scenario.name.encode()).hexdigest()[:16]
        saved = counts_dir / f"crash-writes-{key}.json"
        with (counts_dir / f"crash-writes-{key}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when counting fails
            if saved.exists():
                found = json.loads(saved.read_text())
                counted = StepWrites(found["writes"], found["follows_at_once"])
            else:
                sut = make("count")
                scenario.prepare(sut, tmp_path / "count")
                counter = CrashingKube(sut.steps_api)
                assert scenario.step(with_kube(sut, counter)) == 0
                retire(sut)
                counted = StepWrites(counter.writes, counter.follows_at_once)
                # Whole or not at all: a worker killed mid-write must not leave the others half a count to read.
                partial = saved.with_suffix(".partial")
                partial.write_text(json.dumps(asdict(counted)))
                os.replace(partial, saved)
        _WRITES[scenario.name] = counted
    return _WRITES[scenario.name]


def distinct_crash_points(counted: StepWrites) -> list[tuple[int, str]]:
    """Every (write number, side) pair at which a crash leaves the cluster and the step in a different state.

    A crash just before a write that the step sends with no API request since the previous write is the crash just
    after that previous one: the API server holds the same objects, and the step has read nothing and waited on
    nothing in between, so the recovery starts from the same point. Those are run once, as "after". Only API requests
    are counted because these steps make no other call here: their services have no notification or Pushgateway
    configured, and their waits poll the API.

    A crash just before a write that creates an Event is the crash just after it, too: the step's progress is the same
    on both sides, and the cluster differs only in that Event, which the steps only ever create (``Records.event``)
    and the checks here never read. Those are run once, as "after" as well.
    """
    return [
        (index, side)
        for index, side in itertools.product(range(1, len(counted.writes) + 1), ("before", "after"))
        if not (side == "before" and (counted.follows_at_once[index - 1] or creates_event(counted.writes[index - 1])))
    ]


def creates_event(write: str) -> bool:
    """Whether a write as CrashingKube records it (``POST <namespace>/events``) creates an Event."""
    method, path = write.split(" ", 1)
    return method == "POST" and path.split("/")[1:] == ["events"]


def crash_points(counted: StepWrites, shard: int) -> list[tuple[int, str]]:
    """This shard's (write number, side) pairs: every SHARDS-th distinct one, so the shards cover each once."""
    return distinct_crash_points(counted)[shard::SHARDS]


@pytest.mark.parametrize("shard", range(SHARDS), ids=[f"shard {n + 1} of {SHARDS}" for n in range(SHARDS)])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_crash_before_and_after_every_write(
    scenario: Scenario,
    shard: int,
    service_in: Callable[[str], ServiceUnderTest],
    tmp_path: Path,
    counts_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    counted = count_writes(scenario, service_in, tmp_path, counts_dir)
    writes = counted.writes
    assert writes, "the step made no write, so there is nothing to crash on"
    points = crash_points(counted, shard)
    for index, when in points:
        sut = service_in(f"s{index}{when[0]}")
        scenario.prepare(sut, tmp_path / f"{index}{when}")
        crashing = CrashingKube(sut.steps_api, crash_at=index, when=when)
        with pytest.raises(Crash):
            scenario.step(with_kube(sut, crashing))
        point = f"{scenario.name}: {when} write {index}/{len(writes)} ({writes[index - 1]})"
        assert_traffic_on_available_slot(sut)
        scenario.recover(sut)
        slot = assert_traffic_on_available_slot(sut)
        assert slot is scenario.final_slot, f"{point}: traffic on {slot} after recovery"
        status = sut.status()
        assert status.active_slot is slot, f"{point}: status says {status.active_slot}, route says {slot}"
        record = sut.record(wf(sut))  # I6: the run's record survived
        if scenario.closes_run:
            assert record["status"].get("outcome") in {"RolledBack", "Aborted"}, point
            assert status.workflow is None, point
            failed = sut.deployment(slots.deployment_name(sut.name, spec.Slot.green))
            assert failed is None or failed["spec"]["replicas"] == 0, f"{point}: the failed slot still runs"
        else:
            assert status.workflow == wf(sut), point
        if scenario.extra_check is not None:
            scenario.extra_check(sut)
        COVERED.append(point)
        retire(sut)
    with capsys.disabled():
        distinct = len(distinct_crash_points(counted))
        print(
            f"\n{scenario.name}: {len(points)} of {distinct} distinct crash points over {len(writes)} writes "
            f"({2 * len(writes) - distinct} 'before' points are an 'after' point: of the write sent just before, "
            "or of the Event they create)"
        )
