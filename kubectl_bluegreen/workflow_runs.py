"""What ``deploy`` and ``rollback`` share: submit a template, then say how to follow the run, or follow it."""

from __future__ import annotations

import argparse
import sys

from kubectl_bluegreen.connection import Cluster
from kubectl_bluegreen.errors import UsageError
from kubectl_bluegreen.exit_codes import PluginExit
from kubectl_bluegreen.service_view import read_service
from kubectl_bluegreen.submission import StepProgress, follow, submit, who_am_i
from steps import images
from steps.errors import BadInput

DEFAULT_WAIT_SECONDS = 1800


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every submitting command takes."""
    parser.add_argument("--reason", default="", help="why this run happens; kept in its deployment record")
    parser.add_argument("--wait", action="store_true", help="follow the run and exit with its outcome")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_WAIT_SECONDS,
        help=f"with --wait, give up following after this many seconds (default {DEFAULT_WAIT_SECONDS})",
    )


def check_image(reference: str) -> None:
    """Refuse a malformed image reference before anything is created, as preflight would."""
    try:
        images.parse(reference)
    except BadInput as error:  # already one line saying what form is expected
        raise UsageError(f"--image: {error}") from None


def start(cluster: Cluster, args: argparse.Namespace, template: str, parameters: list[tuple[str, str]]) -> int:
    """Create the run; print its name and how to follow it, or with ``--wait`` follow it to the end."""
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds, not {args.timeout}")
    kube, namespace = cluster.kube, cluster.namespace
    read_service(kube, namespace, args.service)  # the service must exist: a clear error instead of a failed run
    user = who_am_i(kube, cluster.connection.user)
    if args.reason:
        parameters.append(("reason", args.reason))
    parameters.append(("triggered-by", user))
    created = submit(kube, namespace, template, parameters, user)
    name = str(created["metadata"]["name"])
    print(f"workflow.argoproj.io/{name} created from workflowtemplate/{template} in {namespace}")
    if not args.wait:
        print(f"follow it:  kubectl bluegreen status {args.service} -n {namespace} --watch")
        print(f"      or:   argo watch {name} -n {namespace}")
        return PluginExit.OK

    def report(progress: StepProgress) -> None:
        note = f"  {progress.message}" if progress.message and progress.phase != "Running" else ""
        print(f"  {progress.step:<14} {progress.phase}{note}", flush=True)

    finished = follow(kube, namespace, name, args.timeout, report)
    status = finished.get("status") or {}
    phase = str(status.get("phase"))
    message = f": {status['message']}" if status.get("message") else ""
    print(f"workflow {name} {phase}{message}", file=sys.stdout if phase == "Succeeded" else sys.stderr)
    return PluginExit.OK if phase == "Succeeded" else PluginExit.FAILED


__all__ = ["add_run_arguments", "check_image", "start"]
