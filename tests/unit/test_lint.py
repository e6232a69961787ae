"""The lint passes the rendered manifests and catches each planted defect with file, object and field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.lint.cli import lint, main
from pipelines.lint.documents import Document, load

REPO = Path(__file__).resolve().parents[2]
DEPLOY_FILE = REPO / "manifests" / "workflows" / "blue-green-deploy.yaml"
CLEAN = yaml.safe_load(DEPLOY_FILE.read_text())


def template(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in document["spec"]["templates"] if t["name"] == name)


def task(document: dict[str, Any], dag: str, name: str) -> dict[str, Any]:
    return next(t for t in template(document, dag)["dag"]["tasks"] if t["name"] == name)


def dangling_depends(d: dict[str, Any]) -> None:
    task(d, "deploy", "probe")["depends"] = "deploy-greeen"


def cycle(d: dict[str, Any]) -> None:
    task(d, "deploy", "release")["depends"] = "cleanup"


def undeclared_input(d: dict[str, Any]) -> None:
    template(d, "probe")["container"]["args"].append("--port={{inputs.parameters.port}}")


def undeclared_workflow_parameter(d: dict[str, Any]) -> None:
    task(d, "deploy", "release")["arguments"]["parameters"][0]["value"] = "{{workflow.parameters.svc}}"


def undeclared_task_output(d: dict[str, Any]) -> None:
    task(d, "deploy", "probe")["arguments"]["parameters"][1]["value"] = "{{tasks.release.outputs.parameters.slot}}"


def output_of_a_task_not_depended_on(d: dict[str, Any]) -> None:
    task(d, "deploy", "probe")["arguments"]["parameters"][1]["value"] = (
        "{{tasks.switch.outputs.parameters.switched-at}}"
    )


def missing_exit_handler(d: dict[str, Any]) -> None:
    del d["spec"]["onExit"]


def exit_handler_blind_to_status(d: dict[str, Any]) -> None:
    handler = template(d, "exit-handler")
    for t in handler["dag"]["tasks"]:
        t.pop("when", None)
        t["arguments"]["parameters"] = [p for p in t["arguments"]["parameters"] if "status" not in p["value"]]
    for name in ("rollback", "notify"):
        template(d, name)["container"]["args"] = [
            a for a in template(d, name)["container"]["args"] if "workflow-status" not in a
        ]


def missing_mutex(d: dict[str, Any]) -> None:
    del d["spec"]["synchronization"]


def v3_mutex(d: dict[str, Any]) -> None:
    d["spec"]["synchronization"] = {"mutex": {"name": "x"}}


def no_security_context(d: dict[str, Any]) -> None:
    del template(d, "switch")["container"]["securityContext"]


def no_resources(d: dict[str, Any]) -> None:
    del template(d, "smoke")["container"]["resources"]


def typo_field(d: dict[str, Any]) -> None:
    template(d, "probe")["activeDeadlineSecond"] = 10


def unknown_template(d: dict[str, Any]) -> None:
    task(d, "deploy", "smoke")["template"] = "smoke-test"


def duplicate_template(d: dict[str, Any]) -> None:
    d["spec"]["templates"].append(copy.deepcopy(template(d, "probe")))


def bad_result(d: dict[str, Any]) -> None:
    task(d, "deploy", "switch")["depends"] = "smoke.Succeded"


PLANTED: list[tuple[Callable[[dict[str, Any]], None], str, str]] = [
    (dangling_depends, "spec.templates[deploy].dag.tasks[probe].depends", "depends on unknown task 'deploy-greeen'"),
    (cycle, "spec.templates[deploy].dag", "dependency cycle: "),
    (undeclared_input, "spec.templates[probe].container.args[", "input parameter 'port' is not declared"),
    (
        undeclared_workflow_parameter,
        "spec.templates[deploy].dag.tasks[release].arguments.parameters[service].value",
        "workflow parameter 'svc' is not declared in spec.arguments",
    ),
    (
        undeclared_task_output,
        "spec.templates[deploy].dag.tasks[probe].arguments.parameters[slot].value",
        "template 'release' of task 'release' declares no output 'slot'",
    ),
    (
        output_of_a_task_not_depended_on,
        "spec.templates[deploy].dag.tasks[probe].arguments.parameters[slot].value",
        "task 'probe' reads 'switch''s output but does not depend on it",
    ),
    (missing_exit_handler, "spec.onExit", "no exit handler"),
    (exit_handler_blind_to_status, "spec.templates[exit-handler]", "never looks at {{workflow.status}}"),
    (missing_mutex, "spec.synchronization.mutexes", "no mutex"),
    (v3_mutex, "spec.synchronization.mutex", "unknown field"),
    (no_security_context, "spec.templates[switch].container.securityContext", "missing: set runAsNonRoot"),
    (no_resources, "spec.templates[smoke].container.resources.limits.cpu", "missing: every container needs"),
    (typo_field, "spec.templates[probe].activeDeadlineSecond", "unknown field"),
    (unknown_template, "spec.templates[deploy].dag.tasks[smoke].template", "'smoke-test' is not defined"),
    (duplicate_template, "spec.templates[probe]", "defined twice"),
    (bad_result, "spec.templates[deploy].dag.tasks[switch].depends", "smoke.Succeded: unknown result"),
]


def test_rendered_manifests_and_the_examples_lint_clean() -> None:
    # examples/ci holds CI pipelines, not Kubernetes objects; tests/unit/test_ci_examples.py checks those.
    documents, errors = load([REPO / "manifests", REPO / "examples" / "user-service.yaml", REPO / "examples" / "demo"])
    assert errors == []
    kinds = sorted(str(d.body.get("kind")) for d in documents)
    # The namespace's part (ServiceAccount, Role, RoleBinding, 3 WorkflowTemplates, CronWorkflow, kustomization), the
    # cluster's part (2 CRDs, the 27 admission policies and their bindings, 3 aggregated ClusterRoles, kustomization),
    # the opt-in CI identity's
    # four (ServiceAccount, Role, RoleBinding, kustomization), the opt-in monitoring objects (the PrometheusRule, the
    # dashboard's ConfigMap and their kustomization), the patch for Argo's controller ConfigMap and the seed example,
    # plus the demo's Deployment, Service and BlueGreenDeployment.
    assert kinds.count("BlueGreenDeployment") == 2 and kinds.count("WorkflowTemplate") == 3, kinds
    assert kinds.count("PrometheusRule") == 1 and kinds.count("ConfigMap") == 2, kinds
    assert len(documents) == 53, kinds
    assert lint(documents) == []


@pytest.mark.parametrize(("plant", "field", "message"), PLANTED, ids=[p[0].__name__ for p in PLANTED])
def test_planted_defect_is_reported(plant: Callable[[dict[str, Any]], None], field: str, message: str) -> None:
    document = copy.deepcopy(CLEAN)
    plant(document)
    findings = lint([Document("deploy.yaml", document)])
    matching = [f for f in findings if f.field.startswith(field) and message in f.message]
    assert matching, f"expected {field}: {message}; got {[str(f) for f in findings]}"
    assert matching[0].object == "WorkflowTemplate/blue-green-deploy"
    assert matching[0].file == "deploy.yaml"


def test_only_a_template_that_a_cron_workflow_starts_goes_without_an_exit_handler() -> None:
    """The sweep's WorkflowTemplate has no exit handler, as a CronWorkflow with its own templates needs none."""
    sweep = yaml.safe_load((REPO / "manifests" / "workflows" / "blue-green-cleanup-template.yaml").read_text())
    cron = yaml.safe_load((REPO / "manifests" / "workflows" / "blue-green-cleanup.yaml").read_text())
    assert lint([Document("sweep.yaml", sweep), Document("cron.yaml", cron)]) == []
    alone = [f for f in lint([Document("sweep.yaml", sweep)]) if f.field == "spec.onExit"]
    assert [f.message for f in alone] == [
        "no exit handler: a failed run would leave traffic and state as they were; set onExit"
    ]
    # A CronWorkflow that starts a ClusterWorkflowTemplate of that name does not start this one.
    cron["spec"]["workflowSpec"]["workflowTemplateRef"]["clusterScope"] = True
    other = lint([Document("sweep.yaml", sweep), Document("cron.yaml", cron)])
    assert [f.field for f in other if f.field == "spec.onExit"] == ["spec.onExit"]


def test_cli_reports_file_object_and_field_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = copy.deepcopy(CLEAN)
    dangling_depends(document)
    bad = tmp_path / "deploy.yaml"
    bad.write_text(yaml.safe_dump(document))
    assert main([str(bad)]) == 1
    out = capsys.readouterr().out
    assert (
        f"{bad}: WorkflowTemplate/blue-green-deploy: spec.templates[deploy].dag.tasks[probe].depends: "
        "depends on unknown task 'deploy-greeen'"
    ) in out


def test_cli_lints_a_users_bluegreendeployment_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec_file = tmp_path / "svc.yaml"
    spec_file.write_text(
        "apiVersion: argo-bluegreen.io/v1alpha1\nkind: BlueGreenDeployment\nmetadata: {name: svc}\n"
        "spec:\n  healthCheck: {httpGet: {port: 99999}}\n  retainPreviousVersion: forever\n"
    )
    assert main([str(spec_file)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{spec_file}: BlueGreenDeployment/svc: spec.healthCheck.httpGet.port: 99999 is out of range; it must be "
        "less than or equal to 65535",
        f"{spec_file}: BlueGreenDeployment/svc: spec.retainPreviousVersion: 'forever' is not allowed; use a duration "
        "such as 90s, 30m or 1h",
    ]


def test_cli_exit_codes_for_clean_and_unreadable_input(tmp_path: Path) -> None:
    assert main([str(REPO / "manifests")]) == 0
    assert main([str(tmp_path / "absent.yaml")]) == 2
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [unclosed\n")
    assert main([str(broken)]) == 2


SPEC_HEAD = "apiVersion: argo-bluegreen.io/v1alpha1\nkind: BlueGreenDeployment\nmetadata: {name: svc}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "{file}:1: the file holds no YAML document"),
        ("---\n", "{file}:2: document 1 is empty"),
        ("user-service\n", "{file}:1: document 1 is text, not a Kubernetes object"),
        ("- kind: BlueGreenDeployment\n", "{file}:1: document 1 is a list, not a Kubernetes object"),
        (SPEC_HEAD + "---\n", "{file}:5: document 2 is empty"),
        (
            SPEC_HEAD + "spec:\n  replicas: 2\n  replicas: 3\n",
            "{file}:6:3: invalid YAML: found duplicate key 'replicas' (first on line 5)",
        ),
        ("kind: [unclosed\n", "{file}:2:1: invalid YAML: "),
    ],
    ids=["empty-file", "only-separator", "bare-string", "list", "trailing-empty-document", "duplicate-key", "syntax"],
)
def test_yaml_that_is_not_objects_is_an_error_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    file = tmp_path / "svc.yaml"
    file.write_text(text)
    assert main([str(file)]) == 2
    errors = capsys.readouterr().err
    assert expected.format(file=file) in errors, errors
    assert "<unicode string>" not in errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            SPEC_HEAD.replace("BlueGreenDeployment", "BlueGreenDeploy"),
            "{file}:1: BlueGreenDeploy/svc: kind: 'BlueGreenDeploy' is not a kind of argo-bluegreen.io; "
            "did you mean BlueGreenDeployment?",
        ),
        (
            "apiVersion: example.com/v1\nkind: WorkflowTemplat\nmetadata: {name: x}\n",
            "{file}:1: WorkflowTemplat/x: kind: 'WorkflowTemplat' is unknown; did you mean WorkflowTemplate?",
        ),
        ("apiVersion: v1\nmetadata: {name: x}\n", "{file}:1: <no kind>/x: kind: missing"),
        (
            SPEC_HEAD
            + "spec: {healthCheck: {httpGet: {port: 80}}}\n---\n"
            + SPEC_HEAD
            + "spec: {healthCheck: {httpGet: {port: 81}}}\n",
            "{file}:6: BlueGreenDeployment/svc: metadata.name: 'svc' is defined twice; the first is at {file}:1",
        ),
        (
            SPEC_HEAD + "spec:\n  replicas: '3'\n  healthCheck: {httpGet: {port: 8080}}\n",
            "{file}: BlueGreenDeployment/svc: spec.replicas: must be a whole number, not the text '3'",
        ),
        (
            SPEC_HEAD + "spec:\n  healthCheck: [8080]\n",
            "{file}: BlueGreenDeployment/svc: spec.healthCheck: must be a mapping of keys to values, not a list",
        ),
    ],
    ids=["kind-typo", "kind-near-argo", "kind-missing", "same-name-twice", "quoted-number", "list-for-mapping"],
)
def test_objects_the_lint_would_have_skipped_or_misread_are_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    file = tmp_path / "svc.yaml"
    file.write_text(text)
    assert main([str(file)]) == 1
    out = capsys.readouterr().out
    assert expected.format(file=file) in out, out


def test_a_missing_argo_schema_is_one_line_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(REPO / "examples"), "--argo-schema", "/nonexistent/schema.json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "bluegreen-lint: cannot read Argo's schema /nonexistent/schema.json: "
        "[Errno 2] No such file or directory: '/nonexistent/schema.json'"
    ]


def test_a_smoke_test_expecting_status_200_as_a_number_lints_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "svc.yaml"
    file.write_text(
        SPEC_HEAD + "spec:\n  healthCheck: {httpGet: {port: 8080}}\n"
        "  smokeTests: [{name: home, endpoint: /, expectedStatus: [200, 2xx]}]\n"
    )
    assert main([str(file)]) == 0, capsys.readouterr().out
