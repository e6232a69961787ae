"""``bluegreen-step``: the step CLI contract the WorkflowTemplates call.

``bluegreen-step <step> --namespace NS --service NAME [step options]``. A step reads its spec from the
BlueGreenDeployment ``NAME`` in ``NS``, writes output parameters as files under ``--output-dir`` (Argo reads them
with ``valueFrom.path``), logs one JSON object per line on stdout, and exits with a
:class:`bluegreen_contract.ExitCode`, with a one-line reason on stderr when it fails (see :mod:`steps.errors`).

The parser here is the contract: a test parses every container's arguments from the rendered WorkflowTemplates with
it, so the templates and the steps cannot drift apart.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import bluegreen_spec as spec
from bluegreen_contract import (
    TERMINATION_MESSAGE_LIMIT,
    TERMINATION_MESSAGE_PATH,
    USER_COMMANDS,
    WORKFLOW_FINISHED_PHASES,
    ExitCode,
    Step,
)
from bluegreen_version import __version__
from steps import run_identity
from steps.attempts import run_with_retries
from steps.errors import StepError, Unreachable
from steps.kube import INTERACTIVE_RETRY, Kube
from steps.log import StepLog
from steps.preflight_handoff import read_handoff
from steps.set_sequence import mark_ended, wait_for


def _common(parser: argparse.ArgumentParser, *, service: bool = True, outputs: bool = False) -> None:
    parser.add_argument("--namespace", required=True, help="namespace of the BlueGreenDeployment")
    if service:
        parser.add_argument("--service", required=True, help="name of the BlueGreenDeployment (the service)")
    if outputs:
        parser.add_argument("--output-dir", type=Path, help="where output parameters are written, one file each")
    # A step retries its transient failures itself (steps.attempts); one that shares a Pod also gets its deadline here.
    parser.add_argument(
        "--deadline-seconds", type=float, help="fail the step when it runs longer, all attempts included"
    )
    parser.add_argument(
        "--transient-retries", type=int, default=0, help="retry a transient failure (exit 75) this many times"
    )
    # Steps that share a Pod keep their order themselves (steps.set_sequence).
    parser.add_argument(
        "--set-state", type=Path, help="directory the steps of one Pod share: this step leaves its exit code there"
    )
    parser.add_argument(
        "--wait-for",
        action="append",
        default=[],
        metavar="STEP",
        help="start only once STEP (of the same Pod) ended with 0; not at all if it failed; repeatable",
    )
    parser.add_argument("--wait-seconds", type=float, help="how long to wait for --wait-for at most")


def _slot_and_record(parser: argparse.ArgumentParser, *, from_preflight: bool = False) -> None:
    parser.add_argument(
        "--slot",
        required=not from_preflight,
        choices=[slot.value for slot in spec.Slot],
        help="the slot this run deploys to",
    )
    parser.add_argument("--record", required=not from_preflight, help="the DeploymentRecord of this run")
    if from_preflight:
        parser.add_argument(
            "--preflight-outputs",
            type=Path,
            help="take the slot, the record, the image and the deadline from preflight's output files here (a step "
            "that runs after preflight in the same Pod); ends at once when preflight put the release elsewhere",
        )


def _run_outcome(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workflow", required=True, help="name of the workflow running this step")
    parser.add_argument(
        "--workflow-status", choices=WORKFLOW_FINISHED_PHASES, help="{{workflow.status}} in an exit handler"
    )
    parser.add_argument("--failures", default="", help="{{workflow.failures}}: Argo's quoted JSON list, or null")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: one subcommand per step, plus ``history`` and ``status`` for people."""
    parser = argparse.ArgumentParser(
        prog="bluegreen-step",
        description="Blue-green deployment steps, as the WorkflowTemplates run them. People looking at, deploying or "
        "rolling back a service use the kubectl plugin: kubectl bluegreen --help.",
    )
    # The image's entrypoint is this program, so `docker run IMAGE --version` names the release the image holds.
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="step", required=True, metavar="STEP")

    p = sub.add_parser(Step.preflight, help="validate inputs, adopt an unmanaged service, open the record")
    _common(p, outputs=True)
    p.add_argument(
        "--image",
        required=True,
        help="image reference of the new version; empty releases the team's Deployment as it is, its image included",
    )
    p.add_argument("--workflow", required=True, help="name of the workflow running this deploy")
    p.add_argument("--triggered-by", default="", help="who or what started the deploy")
    p.add_argument("--commit", default="", help="source commit of the image")
    p.add_argument("--reason", default="", help="why this deploy happens")

    p = sub.add_parser(Step.verify_image, help="apply the image policy to cosign's verified signatures and scans")
    _common(p)
    p.add_argument("--image", required=True, help="the image verified, pinned by digest")
    _slot_and_record(p)
    p.add_argument("--plan", required=True, help="the cosign calls preflight planned (a JSON list)")
    p.add_argument("--verified", default="[]", help="outputs of the cosign calls that passed (a JSON list)")

    p = sub.add_parser(Step.deploy_green, help="bring the new version up in the idle slot")
    _common(p, outputs=True)
    p.add_argument("--image", help="image reference of the new version")
    _slot_and_record(p, from_preflight=True)

    for name, text in (
        (Step.probe, "health-check the idle slot"),
        (Step.smoke, "run the smoke tests against the idle slot"),
    ):
        p = sub.add_parser(name, help=text)
        _common(p)
        _slot_and_record(p, from_preflight=True)
        p.add_argument("--base-url", help="reach the idle slot here instead of through its preview Service")

    p = sub.add_parser(Step.await_promotion, help="record the preview URL and the wait, notify that the run waits")
    _common(p)
    _slot_and_record(p)
    p.add_argument("--timeout", type=int, required=True, help="seconds the run waits for promotion")

    p = sub.add_parser(Step.confirm_promotion, help="go on only if a person promoted the run; the timeout fails it")
    _common(p)
    p.add_argument("--record", required=True, help="the DeploymentRecord of this run")
    p.add_argument("--workflow", required=True, help="name of the workflow running this step")
    p.add_argument("--timeout", type=int, required=True, help="seconds the run waited for promotion at most")

    p = sub.add_parser(Step.switch, help="record the intent, then move all traffic to the slot")
    _common(p, outputs=True)
    _slot_and_record(p, from_preflight=True)

    for name, text in (
        (Step.verify, "post-switch analysis against Prometheus"),
        (Step.retain, "keep the previous slot warm until its retention ends; close the record"),
    ):
        p = sub.add_parser(name, help=text)
        _common(p)
        p.add_argument("--record", required=True, help="the DeploymentRecord of this run")

    p = sub.add_parser(Step.cleanup, help="remove expired previous slots and repair abandoned runs")
    _common(p, service=False, outputs=True)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--service", help="clean up one service")
    which.add_argument("--all-services", action="store_true", help="every managed service in the namespace")

    p = sub.add_parser(Step.rollback, help="restore traffic to the previous slot")
    _common(p, outputs=True)
    p.add_argument(
        "--after-verification",
        action="store_true",
        help="manual: the retained image was just verified again; refuse unless the record holds a passing verdict",
    )
    p.add_argument("--trigger", required=True, choices=("on-exit", "manual"), help="who asked for the rollback")
    _run_outcome(p)
    p.add_argument("--reason", default="", help="why, when a person rolls back")
    p.add_argument("--triggered-by", default="", help="who rolls back")

    p = sub.add_parser(Step.notify, help="send the run summary to Slack and the webhook")
    _common(p)
    _run_outcome(p)

    p = sub.add_parser(
        "history", help="show a service's deployment records (people: `kubectl bluegreen history` has more)"
    )
    p.add_argument("service", help="name of the BlueGreenDeployment")
    p.add_argument("--namespace", required=True)
    p.add_argument("--limit", type=int, default=20)

    p = sub.add_parser(
        "status",
        help="show a service's live slot, image, phase and retention (people: `kubectl bluegreen status --watch`)",
    )
    p.add_argument("service", help="name of the BlueGreenDeployment")
    p.add_argument("--namespace", required=True)
    return parser


#: The module implementing each command; imported only when that command runs, to keep start-up short.
COMMANDS: dict[str, str] = {
    **{step.value: f"steps.commands.{step.name}" for step in Step},
    **{command: f"steps.commands.{command}" for command in USER_COMMANDS},
}


def main(argv: list[str] | None = None, kube: Kube | None = None) -> int:
    """Parse the command line and run the step; returns the contract's exit code.

    ``kube`` lets tests hand in a client (for example one impersonating the workflow's ServiceAccount); in a pod
    the step uses its ServiceAccount, elsewhere the kubeconfig. A step given ``--set-state`` leaves its exit code
    there however it ends, so the steps after it in the Pod go on or stop at once.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    set_state: Path | None = getattr(args, "set_state", None)
    if getattr(args, "wait_for", None) and (set_state is None or args.wait_seconds is None):
        parser.error("--wait-for needs --set-state and --wait-seconds")
    code: int = ExitCode.FAILED  # what an exception escaping the step leaves behind
    try:
        code = _run(args, parser, kube)
        return code
    finally:
        if set_state is not None:
            mark_ended(set_state, args.step, code)


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser, kube: Kube | None) -> int:
    module = importlib.import_module(COMMANDS[args.step])
    try:
        if getattr(args, "wait_for", None):
            # Everything is loaded and the client made before this wait, so the step starts the moment it ends.
            kube = kube if kube is not None else _default_client(args.step)
            waited = wait_for(args.wait_for, args.set_state, args.wait_seconds)
            StepLog(args.step, args.service)("waited", steps=args.wait_for, seconds=round(waited, 3))
        elsewhere = take_preflight_handoff(parser, args)
        if getattr(args, "preflight_outputs", None) is not None:
            log = StepLog(args.step, args.service)
            if elsewhere:
                log("not-here", reason=elsewhere)
                return ExitCode.OK
            # What this step acts on, as preflight chose it: the parameters a Pod of its own would have shown.
            log("from-preflight", slot=args.slot, record=args.record, deadline_seconds=args.deadline_seconds)
        client = kube if kube is not None else _default_client(args.step)
        named = getattr(args, "workflow", None)
        if named:
            run_identity.require_own_workflow(client, args.step, named)
        # The people's commands (history, status) take neither option: one attempt, no deadline.
        return run_with_retries(
            args.step,
            lambda: int(module.run(client, args)),
            retries=getattr(args, "transient_retries", 0),
            deadline_seconds=getattr(args, "deadline_seconds", None),
        )
    except StepError as error:
        reason = _reason(args.step, error)
        print(f"bluegreen-step {args.step}: {reason}", file=sys.stderr)
        leave_termination_message(reason)
        return error.exit_code


def _default_client(step: str) -> Kube:
    """In a pod, the ServiceAccount; elsewhere the kubeconfig.

    A step rides out an API server restart for the whole retry deadline of the step contract before it exits 75;
    the people's commands give up as soon as ``kubectl bluegreen`` does, so a person at a terminal is not left
    waiting in silence on a cluster that does not answer.
    """
    from steps.context import api_transport

    return Kube(api_transport(), retry=INTERACTIVE_RETRY if step in USER_COMMANDS else None)


def _reason(step: str, error: StepError) -> str:
    """The one line a failed command prints: a step's own, or for a person's command, which server to check."""
    if step in USER_COMMANDS and isinstance(error, Unreachable):
        # "run the step again" is for the templates' readers; a person needs the server and where it came from.
        return (
            f"the API server at {error.host} could not be reached ({error.cause}); check that the cluster is running "
            "and that the kubeconfig's current context is the one you meant (KUBECONFIG, else ~/.kube/config; "
            "kubectl config current-context)"
        )
    return str(error)


def take_preflight_handoff(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """Fill in the slot, record, image and deadline preflight chose, for a step given ``--preflight-outputs``.

    Returns why the step has nothing to do in this Pod (preflight put the release in Pods of their own), or empty.
    A step given neither ``--preflight-outputs`` nor its own ``--slot`` and ``--record`` is a usage error.
    """
    directory = getattr(args, "preflight_outputs", None)
    if directory is None:
        missing = [f"--{name}" for name in ("image", "slot", "record") if getattr(args, name, "") is None]
        if missing:
            parser.error(f"{args.step} needs {', '.join(missing)}, or --preflight-outputs to read them from")
        return ""
    handoff = read_handoff(directory, Step(args.step))
    if handoff.elsewhere_because:
        return handoff.elsewhere_because
    args.slot, args.record = handoff.slot, handoff.record
    if hasattr(args, "image"):
        args.image = handoff.image
    if Step(args.step) in handoff.deadlines:
        args.deadline_seconds = handoff.deadlines[Step(args.step)]
    return ""


def leave_termination_message(reason: str, path: Path = Path(TERMINATION_MESSAGE_PATH)) -> bool:
    """Write the failure's reason where the kubelet reads a container's termination message.

    Argo copies that message into the step's node message, so the reason shows in the UI, in ``argo get`` and in
    ``{{workflow.failures}}``, which the exit handler's rollback writes into the record. Outside a Pod the file does
    not exist and nothing is written. Returns whether it was written.
    """
    if not path.is_file():
        return False
    try:
        path.write_text(reason[:TERMINATION_MESSAGE_LIMIT])
    except OSError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
