"""``kubectl bluegreen history SERVICE``: the service's DeploymentRecords, newest first."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from kubectl_bluegreen.connection import Cluster
from kubectl_bluegreen.errors import UsageError
from kubectl_bluegreen.rendering import OUTPUT_FORMATS, as_text, history_table
from kubectl_bluegreen.service_view import read_service
from steps.log import StepLog
from steps.records import Records

HELP = "list a service's deployment records, newest first"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``SERVICE [--limit N] [-o json|yaml]``."""
    parser.add_argument("service", help="name of the BlueGreenDeployment")
    parser.add_argument("--limit", type=int, default=20, help="show at most this many records (default 20)")
    parser.add_argument("-o", "--output", choices=OUTPUT_FORMATS, help="print the records as JSON or YAML")


def run(cluster: Cluster, args: argparse.Namespace) -> int:
    """Print the table, or the records themselves with ``-o``."""
    if args.limit < 1:
        raise UsageError(f"--limit must be at least 1, not {args.limit}")
    read_service(cluster.kube, cluster.namespace, args.service)  # a clear "not found" before an empty table
    records = Records(cluster.kube, cluster.namespace, args.service, StepLog("history", args.service)).history()
    newest_first = list(reversed(records))[: args.limit]
    if args.output:
        sys.stdout.write(as_text(newest_first, args.output))
        return 0
    Console().print(history_table(records, args.limit))
    return 0
