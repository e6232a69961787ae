"""``kubectl bluegreen lint FILE...``: the checks of ``bluegreen-lint``, with its options, output and exit codes.

The linters are part of the ``render`` extra (they use Hera's models and jsonschema), which a plain install of the
plugin leaves out; without it the command says how to add it (exit 3: the command line was right, the install it
runs in lacks a part) instead of failing on an import.
"""

from __future__ import annotations

import argparse

from kubectl_bluegreen.connection import Cluster
from kubectl_bluegreen.errors import NotFoundError

HELP = "lint BlueGreenDeployment files or rendered manifests (as bluegreen-lint; needs the render extra)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``PATH... [--argo-schema FILE] [--kubernetes-schema DIR]``, as bluegreen-lint takes them."""
    parser.add_argument("paths", nargs="+", help="manifest directories or YAML files")
    parser.add_argument(
        "--argo-schema", help="also validate against Argo's api/jsonschema/schema.json, rejecting unknown fields"
    )
    parser.add_argument(
        "--kubernetes-schema",
        help="also validate Kubernetes' own kinds (Deployment, Service, ...) against the api/openapi-spec/v3 "
        "directory of the k8s.io/kubernetes module",
    )


def lint_argv(args: argparse.Namespace) -> list[str]:
    """bluegreen-lint's command line for these arguments."""
    argv = list(args.paths)
    if args.argo_schema:
        argv += ["--argo-schema", args.argo_schema]
    if args.kubernetes_schema:
        argv += ["--kubernetes-schema", args.kubernetes_schema]
    return argv


def run(cluster: Cluster, args: argparse.Namespace) -> int:
    """Run bluegreen-lint; it needs no cluster, so ``cluster`` is never touched."""
    # pipelines is imported only here: the plugin's other commands must load without the render extra.
    from pipelines.console import missing_render_extra

    problem = missing_render_extra()
    if problem is not None:
        raise NotFoundError(problem)
    from pipelines.lint.cli import main as bluegreen_lint

    return bluegreen_lint(lint_argv(args))
