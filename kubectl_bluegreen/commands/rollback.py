"""``kubectl bluegreen rollback SERVICE``: submit the blue-green-rollback template (back to the retained version)."""

from __future__ import annotations

import argparse

from bluegreen_contract import ROLLBACK_TEMPLATE
from kubectl_bluegreen.connection import Cluster
from kubectl_bluegreen.workflow_runs import add_run_arguments, start

HELP = "move traffic back to the retained previous version: submits the blue-green-rollback workflow"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``SERVICE [--reason TEXT] [--wait [--timeout S]]``."""
    parser.add_argument("service", help="name of the BlueGreenDeployment")
    add_run_arguments(parser)


def run(cluster: Cluster, args: argparse.Namespace) -> int:
    """Submit."""
    return start(cluster, args, ROLLBACK_TEMPLATE, [("service", args.service)])
