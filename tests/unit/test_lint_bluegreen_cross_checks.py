"""A BlueGreenDeployment is checked against the Deployment and Service of the same file: what it probes and routes to.

These need no schema: each is a finding the default lint reports, at the line and column of the field to fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.lint.cli import main

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec:
      containers:
        - name: sidecar
          image: ghcr.io/acme/proxy:1.0
          ports: [{name: admin, containerPort: 9901}]
        - name: web
          image: ghcr.io/acme/web:1.0
          ports: [{name: http, containerPort: 8080}, {name: metrics, containerPort: 9090}]
          readinessProbe: {httpGet: {path: /ready, port: http}}
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
"""


def bluegreen(body: str) -> str:
    return "apiVersion: argo-bluegreen.io/v1alpha1\nkind: BlueGreenDeployment\nmetadata: {name: web}\nspec:\n" + body


def lint_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], *documents: str) -> tuple[int, list[str]]:
    file = tmp_path / "web.yaml"
    file.write_text("---\n".join(documents))
    code = main([str(file)])
    return code, [line.replace(str(file), "{file}") for line in capsys.readouterr().out.splitlines()]


CONTAINER_WEB = "  container: web\n"
# In the file, the Service starts on line 18 and the BlueGreenDeployment's spec fields on line 29.


@pytest.mark.parametrize(
    ("deployment", "service", "spec", "expected"),
    [
        (DEPLOYMENT, SERVICE, CONTAINER_WEB + "  healthCheck: {httpGet: {path: /ready, port: 8080}}\n", []),
        # By number, in whichever container spec.container names: 9090 is the web container's metrics port.
        (DEPLOYMENT, SERVICE, CONTAINER_WEB + "  healthCheck: {httpGet: {path: /ready, port: 9090}}\n", []),
        (
            DEPLOYMENT,
            SERVICE,
            CONTAINER_WEB + "  healthCheck: {httpGet: {path: /ready, port: 8081}}\n",
            [
                "{file}:30:41: BlueGreenDeployment/web: spec.healthCheck.httpGet.port: 8081 is not a "
                "port of container 'web' of Deployment/web, which exposes 8080 (http), 9090 (metrics)"
            ],
        ),
        # Without spec.container, the steps change the first container: the sidecar, which does not serve 8080.
        (
            DEPLOYMENT,
            SERVICE,
            "  healthCheck: {httpGet: {path: /ready, port: 8080}}\n",
            [
                "{file}:29:41: BlueGreenDeployment/web: spec.healthCheck.httpGet.port: 8080 is not a "
                "port of container 'sidecar' of Deployment/web, which exposes 9901 (admin); container 'web' does: "
                "set spec.container to it if its image is the one to change"
            ],
        ),
        (
            DEPLOYMENT,
            SERVICE,
            "  container: api\n  healthCheck: {httpGet: {path: /ready, port: 8080}}\n",
            [
                "{file}:29:3: BlueGreenDeployment/web: spec.container: Deployment/web has no container "
                "'api'; its containers are sidecar, web"
            ],
        ),
        (
            DEPLOYMENT,
            SERVICE.replace("{app: web}", "{app: web, tier: back}"),
            CONTAINER_WEB + "  healthCheck: {httpGet: {path: /ready, port: 8080}}\n",
            [
                "{file}:22:3: Service/web: spec.selector: selects app=web, tier=back, which the pods of "
                "Deployment/web do not carry (their labels: app=web, tier=front), so BlueGreenDeployment/web's "
                "traffic would reach none of them"
            ],
        ),
        # The service router adds the slot label to the selector; the pods of each slot carry it, not the template.
        (
            DEPLOYMENT,
            SERVICE.replace("{app: web}", "{app: web, argo-bluegreen.io/slot: blue}"),
            CONTAINER_WEB + "  healthCheck: {httpGet: {path: /ready, port: 8080}}\n",
            [],
        ),
        (
            DEPLOYMENT,
            SERVICE,
            CONTAINER_WEB + "  healthCheck: {httpGet: {path: /healthz, port: 8080}}\n",
            [
                "{file}:30:27: BlueGreenDeployment/web: spec.healthCheck.httpGet.path: '/healthz' differs from "
                "'/ready', the readinessProbe path of container 'web': the probe step would pass pods that "
                "Kubernetes keeps out of the Service, or fail pods it sends traffic to"
            ],
        ),
        # A readiness probe that is not HTTP has no path to compare; a container without declared ports may listen
        # on any port (Kubernetes does not require the list), so neither is a finding.
        (
            DEPLOYMENT.replace("{httpGet: {path: /ready, port: http}}", "{tcpSocket: {port: http}}"),
            SERVICE,
            CONTAINER_WEB + "  healthCheck: {httpGet: {path: /healthz, port: 8080}}\n",
            [],
        ),
        (
            DEPLOYMENT.replace(
                "ports: [{name: http, containerPort: 8080}, {name: metrics, containerPort: 9090}]", "ports: []"
            ),
            SERVICE,
            CONTAINER_WEB + "  healthCheck: {httpGet: {path: /ready, port: 7000}}\n",
            [],
        ),
        # spec.deployment and spec.traffic.service.name say which objects of the file are this service's.
        (
            DEPLOYMENT.replace("{name: web}", "{name: web-v1}", 1),
            SERVICE.replace("{name: web}", "{name: web-svc}"),
            "  deployment: web-v1\n  container: web\n  healthCheck: {httpGet: {path: /ready, port: 8081}}\n"
            "  traffic: {router: service, service: {name: web-svc}}\n",
            [
                "{file}:31:41: BlueGreenDeployment/web: spec.healthCheck.httpGet.port: 8081 is not a "
                "port of container 'web' of Deployment/web-v1, which exposes 8080 (http), 9090 (metrics)"
            ],
        ),
    ],
    ids=[
        "consistent",
        "second-declared-port",
        "port-not-exposed",
        "first-container-by-default",
        "no-such-container",
        "service-selects-other-pods",
        "selector-with-the-steps-slot-label",
        "path-differs-from-readiness-probe",
        "readiness-probe-not-http",
        "no-declared-ports",
        "named-deployment-and-service",
    ],
)
def test_a_bluegreendeployment_is_checked_against_its_deployment_and_service(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    deployment: str,
    service: str,
    spec: str,
    expected: list[str],
) -> None:
    code, lines = lint_file(tmp_path, capsys, deployment, service, bluegreen(spec))
    assert lines == expected
    assert code == (1 if expected else 0)


def test_objects_of_another_namespace_or_another_file_are_not_this_services(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One file is applied as a whole; separate files may be alternatives, as the examples are."""
    wrong_port = bluegreen("  container: web\n  healthCheck: {httpGet: {path: /ready, port: 8081}}\n")
    elsewhere = DEPLOYMENT.replace("{name: web}", "{name: web, namespace: other}", 1)
    assert lint_file(tmp_path, capsys, elsewhere, SERVICE, wrong_port) == (0, [])
    (tmp_path / "deployment.yaml").write_text(DEPLOYMENT)
    (tmp_path / "bluegreen.yaml").write_text(wrong_port)
    assert main([str(tmp_path / "deployment.yaml"), str(tmp_path / "bluegreen.yaml")]) == 0
