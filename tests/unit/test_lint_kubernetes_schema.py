"""Kubernetes' own objects are checked against the OpenAPI schema of the Kubernetes release the project pins.

The schema is read where Go keeps the pinned k8s.io/kubernetes module (testenv/go.mod); nothing of it is committed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pipelines.lint.cli import main

REPO = Path(__file__).resolve().parents[2]
K8S_EXAMPLES = [REPO / "examples" / "user-service.yaml", REPO / "examples" / "demo"]


def pinned_kubernetes_version() -> str:
    found = re.search(r"^\s*k8s\.io/kubernetes (v\S+)", (REPO / "testenv" / "go.mod").read_text(), re.MULTILINE)
    assert found, "testenv/go.mod pins no k8s.io/kubernetes"
    return found.group(1)


#: How the messages name the release, such as "Kubernetes v1.37.2".
RELEASE = f"Kubernetes {pinned_kubernetes_version()}"


def pinned_kubernetes_schema() -> Path:
    """``api/openapi-spec/v3`` of the k8s.io/kubernetes module testenv/go.mod pins, in Go's module cache."""
    gopath = (os.environ.get("GOPATH") or str(Path.home() / "go")).split(os.pathsep)[0]
    cache = Path(os.environ.get("GOMODCACHE") or Path(gopath) / "pkg" / "mod")
    return cache / "k8s.io" / f"kubernetes@{pinned_kubernetes_version()}" / "api" / "openapi-spec" / "v3"


@pytest.fixture(scope="module")
def schema_dir() -> Path:
    directory = pinned_kubernetes_schema()
    if not directory.is_dir():
        pytest.skip(f"{directory} is missing: `make testenv` (or `make manifests`) has Go fetch k8s.io/kubernetes")
    return directory


def lint_text(tmp_path: Path, text: str, schema: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    file = tmp_path / "app.yaml"
    file.write_text(text)
    code = main([str(file), "--kubernetes-schema", str(schema)])
    return code, capsys.readouterr().out.splitlines()


#: The file of issue 28: a string for a number, a misspelt field, a Service that selects other pods, and a probe of a
#: port the container does not expose. The lint said "3 objects checked, 0 problems".
ISSUE_FILE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: "3"
  selectr:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: ghcr.io/acme/web:1.0
          ports:
            - {name: http, containerPort: 8080}
          readinessProbe:
            httpGet: {path: /ready, port: http}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: other}
  ports:
    - {port: 80, targetPort: http}
---
apiVersion: argo-bluegreen.io/v1alpha1
kind: BlueGreenDeployment
metadata:
  name: web
spec:
  healthCheck:
    httpGet: {path: /ready, port: 9090}
  traffic:
    router: service
"""


def test_the_issue_file_reports_every_problem_with_file_line_and_column(
    tmp_path: Path, schema_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = lint_text(tmp_path, ISSUE_FILE, schema_dir, capsys)
    file = tmp_path / "app.yaml"
    assert code == 1
    assert lines == [
        f"{file}:26:3: Service/web: spec.selector: selects app=other, which the pods of Deployment/web do not carry "
        "(their labels: app=web), so BlueGreenDeployment/web's traffic would reach none of them",
        f"{file}:36:29: BlueGreenDeployment/web: spec.healthCheck.httpGet.port: 9090 is not a port of container 'web' "
        "of Deployment/web, which exposes 8080 (http)",
        f"{file}:5:1: Deployment/web: spec.selector: is required by {RELEASE}'s DeploymentSpec",
        f"{file}:6:3: Deployment/web: spec.replicas: must be a whole number, not the text '3'",
        f"{file}:7:3: Deployment/web: spec.selectr: unknown field: {RELEASE}'s DeploymentSpec has no such "
        "field; did you mean selector?",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: web, lables: {app: web}}\n",
            "{file}:3:23: Service/web: metadata.lables: unknown field: {release}'s ObjectMeta has no such "
            "field; did you mean labels?",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports:\n    - port: http\n",
            "{file}:6:7: Service/web: spec.ports[0].port: must be a whole number, not the text 'http'",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {retries: 3}\n",
            "{file}:4:8: ConfigMap/c: data.retries: must be text, not the number 3",
        ),
        (
            "apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: web}\n",
            "{file}:1:1: Deployment/web: apiVersion: {release} does not serve apps/v1beta1; it serves apps/v1",
        ),
        (
            "apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: web}\n",
            "{file}:2:1: Deploymnet/web: kind: {release}'s apps/v1 has no kind 'Deploymnet'; did you mean Deployment?",
        ),
        (
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\n"
            "spec: {podSelector: {}, policyTypes: Ingress}\n",
            "{file}:4:25: NetworkPolicy/p: spec.policyTypes: must be a list, not the text 'Ingress'",
        ),
    ],
    ids=["misspelt-metadata", "name-for-a-number", "number-for-text", "unserved-version", "kind-typo", "any-kind"],
)
def test_unknown_fields_wrong_types_and_unknown_kinds_are_findings(
    tmp_path: Path, schema_dir: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    code, lines = lint_text(tmp_path, text, schema_dir, capsys)
    assert code == 1
    assert expected.format(file=tmp_path / "app.yaml", release=RELEASE) in lines, lines


def test_what_the_api_server_accepts_is_clean(
    tmp_path: Path, schema_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ports by number or name, quantities as numbers or text, and null fields, as the API server reads them."""
    text = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, annotations: ~, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 25%}}
  template:
    metadata: {labels: {app: web}, creationTimestamp: null}
    spec:
      containers:
        - name: web
          image: ghcr.io/acme/web:1.0
          ports: [{name: http, containerPort: 8080}]
          resources: {requests: {cpu: 0.5, memory: 64Mi}, limits: {cpu: 1, memory: "128Mi"}}
          readinessProbe: {httpGet: {path: /ready, port: http}}
          livenessProbe: {tcpSocket: {port: 8080}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}, {name: alt, port: 81, targetPort: http}]
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec: {anything: [1, two]}
"""
    assert lint_text(tmp_path, text, schema_dir, capsys) == (0, [])


def test_the_rendered_manifests_and_the_examples_are_clean_against_kubernetes_schema(
    schema_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(REPO / "manifests"), *map(str, K8S_EXAMPLES), "--kubernetes-schema", str(schema_dir)]) == 0, (
        capsys.readouterr().out
    )


def test_a_missing_kubernetes_schema_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(REPO / "examples" / "demo"), "--kubernetes-schema", str(tmp_path / "v3")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"bluegreen-lint: cannot read Kubernetes' schema {tmp_path / 'v3'}: no api__v1_openapi.json there; pass the "
        "api/openapi-spec/v3 directory of the k8s.io/kubernetes module (testenv/kubernetes_schema.py)"
    ]
