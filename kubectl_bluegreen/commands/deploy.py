"""``kubectl bluegreen deploy SERVICE --image REF``: submit the blue-green-deploy template for a new version."""

from __future__ import annotations

import argparse

from bluegreen_contract import DEPLOY_TEMPLATE
from kubectl_bluegreen.connection import Cluster
from kubectl_bluegreen.workflow_runs import add_run_arguments, check_image, start

HELP = "deploy a new image: submits the blue-green-deploy workflow"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``SERVICE --image REF [--commit SHA] [--reason TEXT] [--wait [--timeout S]]``."""
    parser.add_argument("service", help="name of the BlueGreenDeployment")
    parser.add_argument("--image", required=True, help="image of the new version, ideally pinned by digest")
    parser.add_argument("--commit", default="", help="source commit of the image; kept in the deployment record")
    add_run_arguments(parser)


def run(cluster: Cluster, args: argparse.Namespace) -> int:
    """Check the image's form, then submit."""
    check_image(args.image)
    parameters = [("service", args.service), ("image", args.image)]
    if args.commit:
        parameters.append(("commit", args.commit))
    return start(cluster, args, DEPLOY_TEMPLATE, parameters)
