"""``kubectl bluegreen version``: this client's release, and the release of the templates installed in the namespace.

The two must match: the plugin submits the parameters its own release's templates declare and reads the records its
own release's steps write. The templates' release is the ``app.kubernetes.io/version`` label every rendered
WorkflowTemplate carries, read from ``blue-green-deploy``. A difference is a warning on stderr and the command still
exits 0, as ``kubectl version`` does for a version skew: the numbers themselves are the answer, and ``-o json`` gives
them to scripts that want to decide.
"""

from __future__ import annotations

import argparse
import sys

from bluegreen_contract import DEPLOY_TEMPLATE, TEMPLATES_VERSION_LABEL, WORKFLOW_TEMPLATES
from bluegreen_version import __version__
from kubectl_bluegreen.connection import Cluster
from kubectl_bluegreen.errors import NotFoundError
from kubectl_bluegreen.rendering import OUTPUT_FORMATS, as_text
from steps.kube import Kube

HELP = "show this client's version and the installed templates' version; warn when they differ"
#: How the text output names templates that carry no version label (JSON and YAML say null).
UNKNOWN = "unknown"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``[--client] [-o json|yaml]``."""
    parser.add_argument("--client", action="store_true", help="show only the client's version; no cluster is needed")
    parser.add_argument("-o", "--output", choices=OUTPUT_FORMATS, help="print the versions as JSON or YAML")


def installed_version(kube: Kube, namespace: str) -> str | None:
    """The release label of the namespace's deploy template; None when it has none (rendered before the label).

    A missing template is :class:`NotFoundError` (exit 3): nothing of argo-bluegreen is installed there to compare.
    """
    template = kube.get(WORKFLOW_TEMPLATES, namespace, DEPLOY_TEMPLATE)
    if template is None:
        raise NotFoundError(
            f"WorkflowTemplate {namespace}/{DEPLOY_TEMPLATE} does not exist, so no templates are installed there to "
            "compare; pass -n with the namespace they are installed in, or install them (bluegreen-render, then "
            "kubectl apply -k)"
        )
    labels = (template.get("metadata") or {}).get("labels") or {}
    value = labels.get(TEMPLATES_VERSION_LABEL)
    return str(value) if value else None


def skew_warning(client: str, templates: str | None, namespace: str) -> str | None:
    """What to tell the user when the templates are not this client's release; None when they are."""
    if templates == client:
        return None
    upgrade = (
        f"render the templates of {client} with this release's bluegreen-render and kubectl apply -k the output "
        "(its cluster/ first, then the rest)"
    )
    if templates is None:
        return (
            f"WorkflowTemplate {namespace}/{DEPLOY_TEMPLATE} has no {TEMPLATES_VERSION_LABEL} label, so it was "
            f"rendered by a release older than this client ({client}); {upgrade}"
        )
    return (
        f"the templates in {namespace} are release {templates} and this client is {client}; they must match: "
        f"{upgrade}, or use the client of their release (pip install argo-bluegreen=={templates})"
    )


def run(cluster: Cluster, args: argparse.Namespace) -> int:
    """Both versions, the client's first (it shows even when the cluster does not answer), then any warning."""
    if args.client:
        _show({"clientVersion": __version__}, args.output)
        return 0
    if not args.output:
        print(f"Client Version: {__version__}", flush=True)
    namespace = cluster.namespace
    templates = installed_version(cluster.kube, namespace)
    if args.output:
        _show({"clientVersion": __version__, "templatesVersion": templates, "namespace": namespace}, args.output)
    else:
        print(f"Templates Version: {templates or UNKNOWN} (WorkflowTemplate {namespace}/{DEPLOY_TEMPLATE})")
    warning = skew_warning(__version__, templates, namespace)
    if warning:
        print(f"kubectl bluegreen version: warning: {warning}", file=sys.stderr)
    return 0


def _show(versions: dict[str, str | None], output: str | None) -> None:
    if output:
        sys.stdout.write(as_text(versions, output))
    else:
        print(f"Client Version: {versions['clientVersion']}")
