"""``kubectl bluegreen deploy SERVICE [--image REF]``: submit the blue-green-deploy template for a new version.

Without ``--image`` the run releases the team's Deployment exactly as it is (as git last wrote it): a template-only
release of new env, resources, probes or sidecars, or of an image the team committed.
"""

from __future__ import annotations

import argparse

from bluegreen_contract import DEPLOY_TEMPLATE
from kubectl_bluegreen.connection import Cluster
from kubectl_bluegreen.workflow_runs import add_run_arguments, check_image, start

HELP = "deploy a new image, or the team's Deployment as it is: submits the blue-green-deploy workflow"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``SERVICE [--image REF] [--commit SHA] [--reason TEXT] [--wait [--timeout S]]``."""
    parser.add_argument("service", help="name of the BlueGreenDeployment")
    parser.add_argument(
        "--image",
        default="",
        help="image of the new version, ideally pinned by digest; without it, the team's Deployment as it is",
    )
    parser.add_argument("--commit", default="", help="source commit of the image; kept in the deployment record")
    add_run_arguments(parser)


def run(cluster: Cluster, args: argparse.Namespace) -> int:
    """Check the image's form, then submit."""
    parameters = [("service", args.service)]
    if args.image:
        check_image(args.image)
        parameters.append(("image", args.image))
    if args.commit:
        parameters.append(("commit", args.commit))
    return start(cluster, args, DEPLOY_TEMPLATE, parameters)
