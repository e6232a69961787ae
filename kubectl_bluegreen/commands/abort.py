"""``kubectl bluegreen abort SERVICE --reason TEXT``: end a run that waits for promotion and roll it back.

The run must use ``spec.promotion.mode: manual`` and be suspended after smoke. The command records who aborted it,
when and why in the run's DeploymentRecord, then marks the suspended node Failed through the Kubernetes API, as
``argo stop --node-field-selector`` does: the DAG fails before any traffic moved, and the exit handler rolls back.
A recorded abort is final: should the node's update fail, the run still fails at ``confirm-promotion`` when its gate
ends, whoever resumes it.
"""

from __future__ import annotations

import argparse
import io
import json
import sys

from kubectl_bluegreen.connection import Cluster
from steps import promotion
from steps.log import StepLog

HELP = "fail a run waiting for manual promotion; its exit handler rolls the new slot back"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``SERVICE --reason TEXT [-o json]``."""
    parser.add_argument("service", help="name of the BlueGreenDeployment whose run waits")
    parser.add_argument("--reason", required=True, help="why, for the record (such as 'errors on /checkout')")
    parser.add_argument("-o", "--output", choices=("json",), help="print what was done as JSON")


def _quiet(service: str) -> StepLog:
    # The steps' JSON log lines are for Argo's log view; the command prints its own line (or JSON) instead.
    return StepLog("abort", service, stream=io.StringIO())


def run(cluster: Cluster, args: argparse.Namespace) -> int:
    """Record, then fail the suspended node."""
    user = promotion.current_user(cluster.kube) or cluster.connection.user
    result = promotion.abort(
        cluster.kube, cluster.namespace, args.service, user, args.reason, log=_quiet(args.service)
    )
    if args.output:
        sys.stdout.write(json.dumps(promotion.as_details(result)) + "\n")
    else:
        print(f"aborted {result.workflow} of {cluster.namespace}/{result.service} as {result.by}; it rolls back")
    return 0
