"""``kubectl bluegreen status SERVICE [--watch]``: phase, slots, traffic, retention, the running workflow, last runs.

``--watch`` redraws on every change the API server reports for the service's BlueGreenDeployment, its slot
Deployments and its Workflows (Kubernetes watches, not polling), until Ctrl-C. On a terminal it redraws in place;
piped, it prints each new state under a timestamp, which makes a readable log of a deploy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import signal
import sys
import threading
from datetime import UTC, datetime

from rich.console import Console
from rich.live import Live
from rich.rule import Rule

import bluegreen_spec as spec
from bluegreen_contract import BLUE_GREEN_DEPLOYMENTS, DEPLOYMENTS, WORKFLOWS, ApiResource
from kubectl_bluegreen.connection import Cluster, Connection
from kubectl_bluegreen.rendering import OUTPUT_FORMATS, as_text, status_view
from kubectl_bluegreen.service_view import ServiceView, read_service
from steps.errors import StepError

HELP = "show a service's phase, slots, traffic, retention, running workflow and last runs"
#: How long one watch request stays open before it is renewed; the server ends it, so nothing hangs.
WATCH_WINDOW_SECONDS = 300


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``SERVICE [--watch] [-o json|yaml]``."""
    parser.add_argument("service", help="name of the BlueGreenDeployment")
    parser.add_argument("-w", "--watch", action="store_true", help="keep showing the status as it changes")
    parser.add_argument("-o", "--output", choices=OUTPUT_FORMATS, help="print the status as JSON or YAML")


def run(cluster: Cluster, args: argparse.Namespace) -> int:
    """Show the status once, or follow it."""
    view = read_service(cluster.kube, cluster.namespace, args.service)
    if not args.watch:
        show_once(view, args.output)
        return 0
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a watch ends: no traceback, exit 0
        watch(cluster.connection, args.service, view, args.output)
    return 0


def show_once(view: ServiceView, output: str | None) -> None:
    """Print the view in the asked-for format."""
    if output:
        sys.stdout.write(as_text(view.to_dict(), output))
    else:
        Console().print(status_view(view))


def watch(connection: Connection, service: str, first: ServiceView, output: str | None) -> None:
    """Redraw whenever a watched object changes; returns only by Ctrl-C or an error from a watch."""
    changes: queue.Queue[StepError | None] = queue.Queue()
    for resource, selector in (
        (BLUE_GREEN_DEPLOYMENTS, f"metadata.name={service}"),
        (DEPLOYMENTS, f"{spec.SERVICE_LABEL}={service}"),
        (WORKFLOWS, f"{spec.SERVICE_LABEL}={service}"),
    ):
        threading.Thread(
            target=_watch_forever, args=(connection, resource, selector, changes), daemon=True, name=resource.plural
        ).start()
    console = Console()
    if output or not console.is_terminal:
        _print_each_change(connection, service, first, output, changes, console)
        return
    with Live(status_view(first), console=console, auto_refresh=False) as live:
        while True:
            _next_change(changes)
            live.update(status_view(read_service(connection.kube, connection.namespace, service)), refresh=True)


def _print_each_change(
    connection: Connection,
    service: str,
    view: ServiceView,
    output: str | None,
    changes: queue.Queue[StepError | None],
    console: Console,
) -> None:
    shown = None
    while True:
        current = view.to_dict()
        if current != shown:
            shown = current
            if output == "json":
                sys.stdout.write(json.dumps(current) + "\n")  # one object per line, as `kubectl get -w -o json`
                sys.stdout.flush()
            elif output == "yaml":
                sys.stdout.write("---\n" + as_text(current, output))
                sys.stdout.flush()
            else:
                console.print(Rule(datetime.now(UTC).strftime("%H:%M:%S"), align="left"))
                console.print(status_view(view))
        _next_change(changes)
        view = read_service(connection.kube, connection.namespace, service)


#: How often the main thread wakes while nothing changes, so that a Ctrl-C another thread took is acted on.
WAKE_SECONDS = 0.5


def _next_change(changes: queue.Queue[StepError | None]) -> None:
    """Block until something changed, taking every change already queued with it; a watch's error is raised."""
    while True:
        # Python runs signal handlers in the main thread only, and only once it wakes. A SIGINT the kernel handed to
        # a thread the HTTP client started (not the watchers, which block it) would not wake a bare get().
        try:
            item = changes.get(timeout=WAKE_SECONDS)
            break
        except queue.Empty:
            continue
    while True:
        if item is not None:
            raise item
        try:
            item = changes.get_nowait()
        except queue.Empty:
            return


def _watch_forever(
    connection: Connection, resource: ApiResource, selector: str, changes: queue.Queue[StepError | None]
) -> None:
    """One kind's watch, renewed whenever the server ends it; each event only says "look again"."""
    # Ctrl-C must reach the main thread, which alone can end the watch. Linux may hand a process's signal to any
    # thread that does not block it; blocking it here leaves the main thread as the only one that can take it.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    kube = connection.new_kube()
    name = selector.removeprefix("metadata.name=") if selector.startswith("metadata.name=") else None
    labels = None if name else selector
    try:
        while True:
            for _kind, _obj in kube.watch(
                resource,
                connection.namespace,
                name=name,
                label_selector=labels,
                timeout_seconds=WATCH_WINDOW_SECONDS,
            ):
                changes.put(None)
    except StepError as error:
        changes.put(error)
