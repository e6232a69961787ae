"""``make demo``: the main job. Blue-green deploys of the demo app on the local cluster, through the real Argo.

The story, each part through `argo submit --from workflowtemplate/...`, exactly as a CI job or a person would:

1. adopt v1: the first run takes over the team's existing Deployment without downtime;
2. deploy v2, which succeeds;
3. deploy v3, whose smoke test fails, so the exit handler rolls it back on its own;
4. roll back by hand to the slot that v1 still holds warm.

It prints a timeline: every step with its duration, the live slot and image after each run, and how long it took
from the failure to traffic being safe again. Throughout, the load harness sends real HTTP to the Service's ClusterIP,
directly and through HAProxy, with a live one-line summary (version mix, failures so far); at the end the demo prints
the per-run table of what the clients saw and writes a picture of it, whose path it prints. At a terminal it then
keeps the cluster up for `kubectl get bgd` and `argo list` until Ctrl-C; otherwise (CI) it exits at once, 0 only if
every part ended as expected.
"""

from __future__ import annotations

import datetime
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from testenv.demo_service import (
    DEPLOY_TEMPLATE,
    REPO,
    ROLLBACK_TEMPLATE,
    DemoService,
    apply_service_file,
    demo_image,
    install_manifests,
)
from testenv.load_harness import HarnessError, LoadHarness
from testenv.local_cluster import ClusterStartError, ClusterTuning, LocalCluster
from testenv.run_cluster import Interrupted, start_cluster
from testenv.traffic_picture import Band, draw, step_bands
from testenv.traffic_report import Phase, live_line, summarise, table
from testenv.workflow_run import WorkflowRun

SERVICE = "user-service"
LIVE_LINE_SECONDS = 1.0
EXAMPLE = REPO / "examples" / "demo" / "user-service.yaml"
EXIT_OK = 0
EXIT_STORY_FAILED = 1
EXIT_NO_CLUSTER = 2


def _parse_time(value: str) -> datetime.datetime | None:
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _seconds_between(start: str, end: str) -> float | None:
    a, b = _parse_time(start), _parse_time(end)
    if a is None or b is None:
        return None
    return (b - a).total_seconds()


@dataclass
class Chapter:
    """One part of the story: what was submitted, what was expected, and what happened."""

    title: str
    expected_phase: str
    expected_image: str
    run: WorkflowRun | None = None
    wall_seconds: float = 0.0
    live_slot: str = ""
    live_image: str = ""
    serving: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the run ended as the story expects, with the expected image live and answering."""
        return (
            self.run is not None
            and self.run.phase == self.expected_phase
            and self.live_image == self.expected_image
            and self.serving == self.expected_image.rsplit(":", 1)[-1]
        )


def _step_lines(run: WorkflowRun) -> list[str]:
    lines = []
    for node in run.steps():
        took = _seconds_between(node.started_at, node.finished_at)
        shown = f"{took:5.1f}s" if took is not None else "  ...  "
        lines.append(f"      {node.template:<14} {node.phase:<9} {shown}")
    return lines


def _failure_to_safe(run: WorkflowRun) -> float | None:
    """From the failing check's end to the end of the exit handler's rollback."""
    failed = [n for n in run.steps() if n.phase == "Failed"]
    rollback = run.runs_of("rollback")
    if not failed or not rollback:
        return None
    return _seconds_between(failed[0].finished_at, rollback[-1].finished_at)


def _observe(chapter: Chapter, service: DemoService) -> None:
    status = service.status()
    chapter.live_slot = str(status.get("activeSlot", ""))
    chapter.live_image = str(status.get("activeImage", ""))
    try:
        chapter.serving = service.serving_version()
    except AssertionError as exc:
        chapter.serving = f"(no answer: {exc})"


def _print_chapter(chapter: Chapter, say: Callable[[str], None]) -> None:
    run = chapter.run
    verdict = "as expected" if chapter.ok else "NOT as expected"
    phase = run.phase if run else "(not run)"
    say(f"  {chapter.title}: {phase} in {chapter.wall_seconds:.1f}s, {verdict}")
    if run is not None:
        for line in _step_lines(run):
            say(line)
    say(f"      live: {chapter.live_slot} {chapter.live_image}; the Service's ClusterIP answers {chapter.serving}")
    for note in chapter.notes:
        say(f"      {note}")


class LiveTraffic:
    """A thread that keeps one terminal line up to date with the harness's traffic; :meth:`say` prints above it."""

    def __init__(self, load: LoadHarness, at_terminal: bool) -> None:
        self._load = load
        self._at_terminal = at_terminal
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-traffic", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ticks = 0
        while not self._stopped.wait(LIVE_LINE_SECONDS):
            ticks += 1
            line = live_line(self._load.lines())
            with self._lock:
                if self._at_terminal:
                    sys.stdout.write("\r\x1b[K" + line)
                    sys.stdout.flush()
                elif ticks % 10 == 0:  # a log, not a terminal: one line every ten seconds is enough
                    print(line, flush=True)

    def say(self, message: str) -> None:
        """Print ``message`` on its own line, then let the live line redraw below it."""
        with self._lock:
            if self._at_terminal:
                sys.stdout.write("\r\x1b[K")
            print(message, flush=True)

    def stop(self) -> None:
        """Stop redrawing and leave the last line in place."""
        self._stopped.set()
        self._thread.join()
        if self._at_terminal:
            print(flush=True)


def run_story(cluster: LocalCluster, say: Callable[[str], None]) -> tuple[list[Chapter], int]:
    """Walk the four parts of the story under load; returns each with what was observed, and the failed requests."""
    install_manifests(cluster)
    say(f"installed the manifests; applying {EXAMPLE.relative_to(REPO)}: {SERVICE} v1 as its team runs it")
    service = apply_service_file(cluster, EXAMPLE, SERVICE)
    cluster_ip = service.service()["spec"]["clusterIP"]
    say(f"load: 200 requests/s to {cluster_ip}:80, directly and through HAProxy, kept-alive and new connections")
    load = LoadHarness(cluster, cluster_ip, service.namespace, service.name)
    try:
        load.start()
    except HarnessError as exc:
        say(f"load harness could not start: {exc}")
        raise
    live = LiveTraffic(load, sys.stdout.isatty())
    try:
        chapters, phases, bands = _walk(service, live.say, load)
    finally:
        live.stop()
        load.stop()
    lines = load.lines()
    say("")
    if load.warmup_failed:
        say(f"left out: {load.warmup_failed} requests that failed before the Service first answered on every path")
    say("what the clients saw, per run (failed = connection error, timeout or a status other than 200):")
    whole = Phase("whole demo", load.started_at, load.stopped_at, "", "")
    summaries = summarise([*phases, whole], lines)
    say(table(summaries))
    picture = draw(lines, bands, Path(tempfile.gettempdir()) / "bluegreen-demo-traffic.png", "make demo")
    say(f"picture: {picture}")
    return chapters, sum(s.failed for s in summaries if s.phase == whole.name)


def _switch_between(load: LoadHarness, start: float, end: float) -> float | None:
    """When the watch saw the Service's selector change between ``start`` and ``end``, if it did."""
    changes = load.watch.changes if load.watch is not None else []
    before = [change.slot for change in changes if change.at < start]
    moved = [c.at for c in changes if start <= c.at <= end and (not before or c.slot != before[-1])]
    return moved[0] if moved else None


def _walk(
    service: DemoService, say: Callable[[str], None], load: LoadHarness
) -> tuple[list[Chapter], list[Phase], list[Band]]:
    chapters = [
        Chapter("1. adopt v1", "Succeeded", demo_image("v1")),
        Chapter("2. deploy v2", "Succeeded", demo_image("v2")),
        Chapter("3. deploy v3 (its smoke test fails)", "Failed", demo_image("v2")),
        Chapter("4. roll back by hand", "Succeeded", demo_image("v1")),
    ]
    submissions: list[tuple[str, tuple[str, ...]]] = [
        (DEPLOY_TEMPLATE, (f"image={demo_image('v1')}",)),
        (DEPLOY_TEMPLATE, (f"image={demo_image('v2')}",)),
        (DEPLOY_TEMPLATE, (f"image={demo_image('v3-fail-smoke')}",)),
        (ROLLBACK_TEMPLATE, ()),
    ]
    phases: list[Phase] = []
    bands: list[Band] = []
    for chapter, (source, params) in zip(chapters, submissions, strict=True):
        extra = "".join(f" -p {p}" for p in params)
        say(f"{chapter.title}: argo submit --from {source} -n {service.namespace} -p service={SERVICE}{extra} --wait")
        old_version = service.serving_version()
        started, began = time.monotonic(), time.time()
        chapter.run = service.submit(source, *params)
        chapter.wall_seconds = time.monotonic() - started
        ended = time.time()
        new_version = chapter.expected_image.rsplit(":", 1)[-1]
        phases.append(
            Phase(chapter.title, began, ended, old_version, new_version, _switch_between(load, began, ended))
        )
        bands.extend(step_bands(chapter.run))
        _observe(chapter, service)
        if chapter.run.phase == "Failed":
            safe = _failure_to_safe(chapter.run)
            if safe is not None:
                chapter.notes.append(f"failure to rollback done: {safe:.1f}s (traffic never left the live slot)")
        _print_chapter(chapter, say)
    return chapters, phases, bands


def main() -> int:
    """Entry point of ``python -m testenv.demo``."""

    def say(message: str) -> None:
        print(message, flush=True)

    def interrupted(signum: int, _frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    cluster: LocalCluster | None = None
    try:
        try:
            cluster = start_cluster(ClusterTuning(), progress_prefix="demo")
        except ClusterStartError as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return EXIT_NO_CLUSTER
        chapters, failed_requests = run_story(cluster, say)
        failed = [c.title for c in chapters if not c.ok]
        if failed_requests:
            failed.append(f"{failed_requests} requests failed")
        say("")
        say("demo: every part of the story ended as expected" if not failed else f"demo: unexpected: {failed}")
        if sys.stdin.isatty():
            say("# the cluster stays up until Ctrl-C; in another shell:")
            say(cluster.shell_exports())
            say("kubectl get bgd -n apps; argo list -n apps")
            while True:
                signal.pause()
        return EXIT_OK if not failed else EXIT_STORY_FAILED
    except Interrupted:
        return EXIT_OK
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
