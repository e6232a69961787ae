"""``kubectl bluegreen promote SERVICE``: let a run that waits for promotion switch traffic.

The run must use ``spec.promotion.mode: manual`` and be suspended after smoke. The command resumes the suspended node
through the Kubernetes API, as ``argo resume`` does (no Argo server is needed), then records who promoted it (the
name the API server knows you by) and when in the run's DeploymentRecord. The node is what counts: when its update is
refused, nothing is recorded and the run is not promoted.
"""

from __future__ import annotations

import argparse
import io
import json
import sys

from kubectl_bluegreen.connection import Cluster
from steps import promotion
from steps.log import StepLog

HELP = "switch traffic for a run waiting for manual promotion (spec.promotion.mode: manual)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``SERVICE [-o json]``."""
    parser.add_argument("service", help="name of the BlueGreenDeployment whose run waits")
    parser.add_argument("-o", "--output", choices=("json",), help="print what was done as JSON")


def _quiet(service: str) -> StepLog:
    # The steps' JSON log lines are for Argo's log view; the command prints its own line (or JSON) instead.
    return StepLog("promote", service, stream=io.StringIO())


def run(cluster: Cluster, args: argparse.Namespace) -> int:
    """Resume, then record."""
    user = promotion.current_user(cluster.kube) or cluster.connection.user
    result = promotion.promote(cluster.kube, cluster.namespace, args.service, user, log=_quiet(args.service))
    if args.output:
        sys.stdout.write(json.dumps(promotion.as_details(result)) + "\n")
    else:
        print(
            f"promoted {result.workflow} of {cluster.namespace}/{result.service} as {result.by}; traffic switches next"
        )
    return 0
