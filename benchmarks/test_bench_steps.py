"""Benchmarks against the local cluster: figures printed as medians, never asserted as timings.

Run with ``make bench``. The machines are shared and noisy, so each figure is a median over several runs, and the
API-call counts (which do not depend on noise) are printed beside the times.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

import bluegreen_spec as spec
from benchmarks.results import BenchResults
from bluegreen_contract import BLUE_GREEN_DEPLOYMENTS, DEPLOYMENTS, SERVICES, Output
from steps import slots
from steps.commands.cleanup import sweep
from steps.kube import Kube
from testenv.cluster import KubeCluster
from tests.integration.installation import install
from tests.integration.service_helpers import (
    ServiceFactory,
    ServiceUnderTest,
    app_deployment,
    app_service,
    blue_green,
    demo_app,
)
from tests.steps.http_servers import AppServer, Reply

RUNS = 5


def timed(run_step: Callable[..., int], *args: Any, **kwargs: Any) -> float:
    """Seconds one step takes, in process, as the workflow's ServiceAccount."""
    started = time.perf_counter()
    assert run_step(*args, **kwargs) == 0
    return time.perf_counter() - started


def report(title: str, samples: dict[str, list[float]]) -> None:
    """Print median, min and max of each series."""
    print(f"\n{title}")
    for name, values in samples.items():
        print(
            f"  {name:<28} median {statistics.median(values) * 1000:8.1f} ms   "
            f"min {min(values) * 1000:8.1f}   max {max(values) * 1000:8.1f}   (n={len(values)})"
        )


@pytest.fixture
def service(  # noqa: D103
    kube_cluster: KubeCluster,
    make_namespace: Callable[..., str],
    impersonating_client: Callable[[str, str], client.ApiClient],
) -> ServiceUnderTest:
    services = ServiceFactory(kube_cluster, make_namespace, impersonating_client)
    return services(
        "bench",
        healthCheck={"httpGet": {"path": "/health", "port": 8080}},
        smokeTests=[{"name": "home", "endpoint": "/"}],
    )


def _steps_section(bench_results: BenchResults) -> dict[str, Any]:
    """This module's figures: its three benchmarks each fill their part of one section."""
    if "steps" not in bench_results.sections:
        bench_results.record("steps", {})
    section: dict[str, Any] = bench_results.sections["steps"]
    return section


def test_step_overhead_per_deploy(service: ServiceUnderTest, tmp_path: Path, bench_results: BenchResults) -> None:
    """Every step of a deploy, in process, probing an app that answers at once: what the steps themselves cost.

    deploy-green includes the real Pods' start until Ready (the controllers and the node agent); the overhead line
    is every step but probe and smoke, so it includes that start too, as a deploy does.
    """
    samples: dict[str, list[float]] = {}
    requests: list[int] = []
    with AppServer() as app:
        app.route("/health", Reply(200))
        app.route("/", Reply(200))
        for run in range(RUNS + 1):
            image = demo_app(f"v{run + 2}")
            out = tmp_path / str(run)
            record = f"wf-{run}"
            before = service.steps_kube.requests
            times = {
                "preflight": timed(service.run_preflight, image, record, out=out),
            }
            slot = (out / Output.target_slot).read_text()
            times["deploy-green (incl. Pods ready)"] = timed(service.run_deploy_green, image, slot, record)
            times["probe (app time)"] = timed(service.run_probe, slot, record, app.url)
            times["smoke (app time)"] = timed(service.run_smoke, slot, record, app.url)
            times["switch"] = timed(service.run_switch, slot, record)
            times["retain"] = timed(service.run_retain, record)
            times["cleanup"] = timed(service.run_cleanup)
            if run == 0:
                continue  # the first run adopts the service; it is not a steady-state deploy
            requests.append(service.steps_kube.requests - before)
            overhead = sum(v for k, v in times.items() if "app time" not in k)
            times["overhead (all but probe/smoke)"] = overhead
            for name, value in times.items():
                samples.setdefault(name, []).append(value)
    report("step overhead per deploy (in process, real Pods, probes answered at once)", samples)
    print(f"  API requests per deploy: median {statistics.median(requests):.0f}")
    started = []
    for _ in range(RUNS):
        begin = time.perf_counter()
        subprocess.run([sys.executable, "-m", "steps.cli", "--help"], capture_output=True, check=True)
        started.append(time.perf_counter() - begin)
    report("process start of one step (python -m steps.cli --help)", {"start-up": started})
    _steps_section(bench_results).update(
        {"per_deploy_s": samples, "requests_per_deploy": requests, "process_start_s": started, "runs": RUNS}
    )


def test_rollback_time_with_the_old_slot_warm(
    service: ServiceUnderTest, tmp_path: Path, bench_results: BenchResults
) -> None:
    """From the rollback step starting to the route restored and read back."""
    samples: dict[str, list[float]] = {"rollback (manual, old slot warm)": []}
    for run in range(RUNS):
        image = demo_app(f"v{run + 2}")
        out = tmp_path / str(run)
        target, record = service.preflight(image, f"wf-{run}", out)
        assert service.run_deploy_green(image, target, record) == 0
        service.prove(target, record)
        assert service.run_switch(target, record) == 0
        assert service.run_retain(record) == 0
        samples["rollback (manual, old slot warm)"].append(timed(service.run_manual_rollback, f"rb-{run}"))
    report("rollback time", samples)
    _steps_section(bench_results)["rollback_s"] = samples["rollback (manual, old slot warm)"]


def _make_services(admin: client.ApiClient, namespace: str, count: int, expired_every: int) -> None:
    kube = Kube(admin)

    def one(index: int) -> None:
        name = f"svc-{index:04d}"
        kube.create(SERVICES, namespace, {**app_service(name), "metadata": {"name": name}})
        service = kube.must_get(SERVICES, namespace, name)
        service["spec"]["selector"][spec.SLOT_LABEL] = "green"
        kube.replace(SERVICES, namespace, service)
        resource = blue_green(name, "service")
        kube.create(BLUE_GREEN_DEPLOYMENTS, namespace, resource)
        stamp = "2000-01-01T00:00:00Z" if index % expired_every == 0 else "2999-01-01T00:00:00Z"
        kube.merge_patch(
            BLUE_GREEN_DEPLOYMENTS,
            namespace,
            name,
            {"status": {"phase": "Succeeded", "activeSlot": "green", "previousSlot": "blue", "retainUntil": stamp}},
            "status",
        )
        source = {**app_deployment(name, demo_app("v1"), 1)}
        source["metadata"] = {**source["metadata"], "namespace": namespace}
        for slot in spec.Slot:
            # Shaped as the steps shape a slot, so the admission policies let the sweep write it.
            body = slots.slot_deployment(source, name, slot, demo_app("v1"), None, 1, f"wf-{name}")
            # Paused: the real controllers then make no ReplicaSet or Pod for these 2000 Deployments. The sweep reads
            # Deployments, specs and Services only (its API cost is the figure), and 2000 Pods would load the one
            # node for nothing.
            body["spec"]["paused"] = True
            body["metadata"]["annotations"][spec.RETAIN_UNTIL_ANNOTATION] = stamp
            kube.create(DEPLOYMENTS, namespace, body)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(count)))


@pytest.mark.parametrize("count", [1000])
def test_cleanup_across_many_services(
    kube_cluster: KubeCluster,
    make_namespace: Callable[..., str],
    impersonating_client: Callable[[str, str], client.ApiClient],
    count: int,
    bench_results: BenchResults,
) -> None:
    """The cron's sweep: list calls per namespace, a fresh read only before a removal."""
    admin = kube_cluster.admin_api_client()
    namespace = make_namespace("sweep")
    install(admin, namespace)
    started = time.perf_counter()
    _make_services(admin, namespace, count, expired_every=10)
    print(
        f"\ncreated {count} services (BGD, Service, 2 slot Deployments each) in {time.perf_counter() - started:.1f} s"
    )
    kube = Kube(impersonating_client(namespace, "bluegreen-deployer"))
    started = time.perf_counter()
    first = sweep(kube, namespace, None)
    first_seconds = time.perf_counter() - started
    first_requests = kube.requests
    started = time.perf_counter()
    second = sweep(kube, namespace, None)
    second_seconds = time.perf_counter() - started
    print(
        f"cleanup sweep over {first.services} services: removed {len(first.removed)} expired slots in "
        f"{first_seconds:.2f} s with {first_requests} API requests "
        f"({first_requests / first.services:.2f} per service)"
    )
    print(
        f"second sweep (nothing to remove): {second_seconds:.2f} s with {kube.requests - first_requests} API "
        f"requests for {second.services} services"
    )
    _steps_section(bench_results)["sweep"] = {
        "services": first.services,
        "removed": len(first.removed),
        "first_s": first_seconds,
        "first_requests": first_requests,
        "second_s": second_seconds,
        "second_requests": kube.requests - first_requests,
    }
    assert len(first.removed) == count // 10 and not second.removed
