"""``bluegreen-lint PATH...``: lint a rendered manifests directory or a BlueGreenDeployment file.

Every problem is printed as ``file: Kind/name: field: what is wrong``; the exit code is 1 when there is any.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from bluegreen_version import __version__
from pipelines.lint import argo_models, cross_checks, dag, identity, references, safety, spec_file
from pipelines.lint.argo_schema import ArgoSchema
from pipelines.lint.documents import Document, load
from pipelines.lint.findings import Finding
from pipelines.lint.kubernetes_schema import KubernetesSchema, SchemaError

CHECKS: tuple[Callable[[Document], list[Finding]], ...] = (
    identity.kind_findings,
    argo_models.check,
    dag.check,
    references.check,
    safety.check,
    spec_file.check,
)


def lint(
    documents: list[Document],
    argo_schema: ArgoSchema | None = None,
    kubernetes_schema: KubernetesSchema | None = None,
) -> list[Finding]:
    """Every finding for the documents, sorted by file, object and field.

    Raises SchemaError when a file of the Kubernetes schema cannot be read.
    """
    findings: list[Finding] = (
        identity.duplicate_findings(documents)
        + safety.exit_handler_findings(documents)
        + cross_checks.findings(documents)
    )
    for document in documents:
        for check in CHECKS:
            findings.extend(check(document))
        if argo_schema is not None:
            findings.extend(argo_schema.check(document))
        if kubernetes_schema is not None:
            findings.extend(kubernetes_schema.check(document))
    return sorted(set(findings))


def main(argv: list[str] | None = None) -> int:
    """Lint the paths; 0 when clean, 1 with findings, 2 when a file is not YAML objects (or does not exist)."""
    parser = argparse.ArgumentParser(prog="bluegreen-lint", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("paths", nargs="+", type=Path, help="manifest directories or YAML files")
    parser.add_argument(
        "--argo-schema",
        type=Path,
        help="also validate against Argo's api/jsonschema/schema.json (`make manifests` fetches it with Go); "
        "without it, Argo objects are still checked for types and unknown fields by Hera's models, which are "
        "generated from the same Argo release and need no Go",
    )
    parser.add_argument(
        "--kubernetes-schema",
        type=Path,
        help="also validate Kubernetes' own kinds (Deployment, Service, ...) against the api/openapi-spec/v3 "
        "directory of the k8s.io/kubernetes module (`make manifests` passes the pinned one, from "
        "`testenv/kubernetes_schema.py`); without it, they are checked only against a BlueGreenDeployment",
    )
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        print(f"bluegreen-lint: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    documents, errors = load(args.paths)
    for error in errors:
        print(error, file=sys.stderr)
    try:
        schema = ArgoSchema(args.argo_schema) if args.argo_schema else None
    except (OSError, ValueError) as error:
        print(f"bluegreen-lint: cannot read Argo's schema {args.argo_schema}: {error}", file=sys.stderr)
        return 2
    try:
        kubernetes = KubernetesSchema(args.kubernetes_schema) if args.kubernetes_schema else None
        # Its group-version files are read as objects need them, so a broken one shows only while linting.
        findings = lint(documents, schema, kubernetes)
    except SchemaError as error:
        print(f"bluegreen-lint: cannot read Kubernetes' schema {args.kubernetes_schema}: {error}", file=sys.stderr)
        return 2
    for finding in findings:
        print(finding)
    unreadable = f", {len(errors)} errors in files that are not YAML objects" if errors else ""
    print(f"bluegreen-lint: {len(documents)} objects checked, {len(findings)} problems{unreadable}", file=sys.stderr)
    if errors:
        return 2
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
