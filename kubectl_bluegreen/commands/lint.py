"""``kubectl bluegreen lint FILE...``: the checks of ``bluegreen-lint``, with its output and exit codes."""

from __future__ import annotations

import argparse

from kubectl_bluegreen.connection import Cluster

HELP = "lint BlueGreenDeployment files or rendered manifests (as bluegreen-lint)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``PATH... [--argo-schema FILE]``."""
    parser.add_argument("paths", nargs="+", help="manifest directories or YAML files")
    parser.add_argument(
        "--argo-schema", help="also validate against Argo's api/jsonschema/schema.json, rejecting unknown fields"
    )


def run(cluster: Cluster, args: argparse.Namespace) -> int:
    """Run bluegreen-lint; it needs no cluster, so ``cluster`` is never touched."""
    from pipelines.lint.cli import main as bluegreen_lint  # imported here: only lint needs the linters

    argv = [*args.paths, *(["--argo-schema", args.argo_schema] if args.argo_schema else [])]
    return bluegreen_lint(argv)
