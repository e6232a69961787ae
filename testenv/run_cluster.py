"""``make cluster``: build what is missing, start the local cluster, print how to reach it, stay up until Ctrl-C.

Only one ``make cluster`` runs per machine at a time: a second one names the first and its kubeconfig instead of
starting another. Ctrl-C or SIGTERM at any moment, including during start-up, stops everything started so far.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO

from testenv import build
from testenv.local_cluster import ClusterStartError, ClusterTuning, LocalCluster, describe, host_problems
from testenv.paths import Artifacts

LOCK_DIR = Path("/run/argo-bluegreen")
LOCK_FILE = LOCK_DIR / "make-cluster.lock"
EXIT_UNSUPPORTED = 2
EXIT_BUSY = 3
EXIT_FAILED = 1


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived."""


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


@contextmanager
def single_instance() -> Iterator[IO[str] | None]:
    """Hold the machine-wide lock of ``make cluster``; yields None when another instance holds it."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    handle = LOCK_FILE.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield handle
    finally:
        handle.close()


def _running_instance() -> str:
    try:
        info = json.loads(LOCK_FILE.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    pid = info.get("pid", "?")
    kubeconfig = info.get("kubeconfig", "?")
    return f"a local cluster is already running (pid {pid}); reach it with: export KUBECONFIG={kubeconfig}"


def ensure_artifacts() -> Artifacts:
    """The built components, building whatever is missing with progress on stderr."""
    return build.build()


def start_cluster(tuning: ClusterTuning, progress_prefix: str = "cluster") -> LocalCluster:
    """Build if needed and start; every problem becomes a :class:`ClusterStartError` with one line to act on."""
    problems = host_problems()
    if problems:
        raise ClusterStartError("; ".join(problems))
    try:
        artifacts = ensure_artifacts()
    except build.BuildError as exc:
        raise ClusterStartError(f"building the cluster's components failed: {exc}") from exc
    cluster = LocalCluster(artifacts, tuning=tuning)
    started = time.monotonic()

    def say(message: str) -> None:
        print(f"{progress_prefix}: [{time.monotonic() - started:5.1f}s] {message}", file=sys.stderr, flush=True)

    cluster.start(progress=say)
    say(f"ready in {cluster.start_seconds:.1f}s")
    return cluster


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m testenv.run_cluster``; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="make cluster", description=__doc__)
    parser.add_argument(
        "--requeue-time",
        help="the workflow-controller's DEFAULT_REQUEUE_TIME, such as 1s (default: Argo's own, 10s)",
    )
    args = parser.parse_args(argv)
    problems = host_problems()
    if problems:
        for line in problems:
            print(f"cluster: {line}", file=sys.stderr)
        return EXIT_UNSUPPORTED
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, _raise_interrupted)
    with single_instance() as lock:
        if lock is None:
            print(f"cluster: {_running_instance()}", file=sys.stderr)
            return EXIT_BUSY
        cluster: LocalCluster | None = None
        try:
            cluster = start_cluster(ClusterTuning(default_requeue_time=args.requeue_time))
            lock.seek(0)
            lock.truncate()
            lock.write(json.dumps({"pid": os.getpid(), "kubeconfig": str(cluster.kubeconfig_path)}))
            lock.flush()
            print(json.dumps(describe(cluster), indent=2), file=sys.stderr)
            print("# paste these two lines into your shell; Ctrl-C here stops the cluster", file=sys.stderr)
            print(cluster.shell_exports(), flush=True)
            print(
                f"# the end-to-end tests can use this cluster: BLUEGREEN_TEST_CLUSTER={cluster.write_description()}",
                file=sys.stderr,
                flush=True,
            )
            while True:
                signal.pause()
        except Interrupted as why:
            print(f"cluster: {why}, stopping", file=sys.stderr)
            return 0
        except ClusterStartError as exc:
            print(f"cluster: {exc}", file=sys.stderr)
            return EXIT_FAILED
        finally:
            # Signals are held off while stopping, so a second Ctrl-C cannot leave half the cluster running.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if cluster is not None:
                cluster.stop()
            lock.seek(0)
            lock.truncate()


if __name__ == "__main__":
    sys.exit(main())
