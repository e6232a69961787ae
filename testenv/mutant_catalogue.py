"""Planted faults for ``make mutants``: each is a small patch to product code, and names the tests that must catch it.

A mutant is one textual fault in the product (``steps/``, ``pipelines/``, the shared contract), never in a test:
``old`` occurs exactly once in ``path`` and is replaced by ``new``. ``make mutants`` plants one mutant at a time in a
copy of the repository, runs its ``catching_tests`` there and expects them to fail; the suite is as strong as the
share of mutants it kills. This is the check that a faster suite is not a weaker one.

Where a test that needs no cluster (``tests/unit``, ``tests/steps``) catches a fault, only such tests are named. The
integration tests (marked ``controlplane``: they need the local cluster) are named where none does, and then
``needs_cluster`` is set, so a runner without a cluster knows which mutants it cannot judge.

Mutants in what ``bluegreen-render`` reads (:attr:`Mutant.changes_manifests`) change the rendered manifests, and the
golden comparison (``tests/unit/test_render.py``) fails for any such change, right or wrong, so it is named after
the behavioural tests. Those read the committed ``manifests/``: a runner that wants them to prove the behaviour
re-renders after planting (``bluegreen-render --out manifests --readme docs/reference/rbac.md``) and then expects them,
not the golden comparison, to fail.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Sources whose change ``bluegreen-render`` writes into ``manifests/`` (and the RBAC table of docs/reference/rbac.md).
RENDERED_SOURCES = ("pipelines/", "bluegreen_contract.py", "bluegreen_spec.py")

_GOLDEN = "tests/unit/test_render.py::test_committed_manifest_matches_the_code"
GOLDEN_DEPLOY = f"{_GOLDEN}[workflows/blue-green-deploy.yaml]"
GOLDEN_ROLE = f"{_GOLDEN}[rbac/role.yaml]"
GOLDEN_DEPLOYMENT_POLICY = f"{_GOLDEN}[cluster/admission/deployments-policy.yaml]"


@dataclass(frozen=True)
class Mutant:
    """One planted fault: replace ``old`` (which occurs exactly once in ``path``) with ``new``.

    Attributes:
        name: short description of the fault, e.g. "switch before smoke".
        path: the product file, relative to the repository root.
        old: the exact text the fault replaces; it occurs once in ``path``.
        new: the replacement.
        catching_tests: pytest node ids or test files that fail with the fault planted, cluster-free ones first.
        needs_cluster: True if any catching test needs the local cluster (marked ``controlplane`` or ``cluster``).
    """

    name: str
    path: str
    old: str
    new: str
    catching_tests: tuple[str, ...]
    needs_cluster: bool

    @property
    def changes_manifests(self) -> bool:
        """Whether planting the fault changes what ``bluegreen-render`` writes, so a runner should re-render."""
        return self.path.startswith(RENDERED_SOURCES)


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        name="a retried preflight takes its slots from the route",
        path="steps/commands/preflight.py",
        # A release Pod lost after the switch would then deploy over the version its run keeps warm.
        old="    resumed = progress.resumed_choices(ctx, earlier) if earlier is not None else None\n",
        new="    resumed = None\n",
        catching_tests=("tests/integration/test_retried_release.py::test_a_retried_release_pod_resumes_its_run",),
        needs_cluster=True,
    ),
    Mutant(
        name="the repair cron takes an unfinished route for an abandoned run",
        path="steps/commands/cleanup.py",
        old="    route = emergency_route.open_route(ctx)\n    if route is not None:\n        # Undoing",
        new="    route = None\n    if route is not None:\n        # Undoing",
        catching_tests=(
            "tests/integration/test_emergency_route.py::test_the_cron_never_reverses_an_interrupted_route",
        ),
        needs_cluster=True,
    ),
    Mutant(
        name="a workflow that reuses a deleted run's name takes that run's record",
        path="steps/run_identity.py",
        # The record would be compared by the workflow's name alone, which is free again once it is deleted.
        old="    return not uid or not recorded or uid == recorded\n",
        new="    return True\n",
        catching_tests=(
            "tests/integration/test_switch_gates.py::test_a_workflow_that_reuses_a_run_s_name_is_not_that_run",
        ),
        needs_cluster=True,
    ),
    Mutant(
        name="a submitter starts any WorkflowTemplate, readable or not",
        path="pipelines/submit_policy.py",
        # The policy would ask the authorizer and then ignore its answer.
        old='"expression": "!variables.startJudged || variables.readable",',
        new='"expression": "true",',
        catching_tests=(
            "tests/integration/test_submitted_templates.py::test_a_submitter_cannot_start_a_template_it_may_not_read",
        ),
        needs_cluster=True,
    ),
    Mutant(
        name="the cleanup removes a slot without holding the service",
        path="steps/commands/cleanup.py",
        old="    if not _hold(ctx, holder, stale):\n",
        new="    if False:\n",
        catching_tests=(
            "tests/integration/test_emergency_route.py::test_the_cleanup_never_removes_a_slot_a_route_moves_to",
        ),
        needs_cluster=True,
    ),
    Mutant(
        name="switch before smoke",
        path="pipelines/deploy_template.py",
        # The release Pod's switch container waits for probe only, so it runs beside smoke instead of after it.
        old="SetStep(spec=switch_spec, after=[Step.smoke.value], from_preflight=True)",
        new="SetStep(spec=switch_spec, after=[Step.probe.value], from_preflight=True)",
        catching_tests=(
            "tests/unit/test_pipelines.py::test_the_release_pod_runs_preflight_to_switch_and_a_staged_service_step_by_step",
            # The switch's bounded wait for the steps before it shrinks by smoke's deadline, which this test sees too.
            "tests/unit/test_pipelines.py::test_steps_in_the_release_pod_take_the_same_deadlines_and_the_pod_their_sum",
            GOLDEN_DEPLOY,
        ),
        needs_cluster=False,
    ),
    Mutant(
        name="switch gate that no longer requires smoke",
        path="steps/gates.py",
        # The step-side guard for the same fault: switch would accept a slot whose smoke tests never passed.
        old="if gate is not spec.Gate.image_verification or policy.verification_required()]",
        new=(
            "if gate is not spec.Gate.smoke and (gate is not spec.Gate.image_verification "
            "or policy.verification_required())]"
        ),
        catching_tests=(
            "tests/unit/test_gate_verdicts.py::test_switch_requires_image_verification_only_when_the_policy_asks_for_it",
        ),
        needs_cluster=False,
    ),
    Mutant(
        name="exit handler skips rollback",
        path="pipelines/deploy_template.py",
        # Rollback runs only after a success, so every failed run keeps its half-done state.
        old='when=f"{WORKFLOW_STATUS} != Succeeded"',
        new='when=f"{WORKFLOW_STATUS} == Succeeded"',
        catching_tests=(
            "tests/unit/test_pipelines.py::test_exit_handler_rolls_back_on_failure_then_always_notifies",
            GOLDEN_DEPLOY,
        ),
        needs_cluster=False,
    ),
    Mutant(
        name="exit handler's rollback step skips the rollback",
        path="steps/commands/rollback.py",
        # The step-side half of the same fault: spec.rollbackOnFailure read the wrong way round, so the default
        # (true) leaves a failed run's traffic where it is and closes the record Failed instead of RolledBack.
        old="    if not ctx.resource.spec.rollback_on_failure:\n",
        new="    if ctx.resource.spec.rollback_on_failure:\n",
        catching_tests=(
            "tests/integration/test_steps_failures.py::test_verify_failure_after_switch_restores_blue",
            "tests/integration/test_steps_failures.py::test_probe_failure_keeps_traffic_on_blue_and_records_why",
            "tests/integration/test_real_world_slots.py::test_previous_slot_is_retained_when_a_failed_run_is_not_rolled_back",
        ),
        needs_cluster=True,
    ),
    Mutant(
        name="route edit drops the team's other routes",
        path="steps/routing/virtual_service_routes.py",
        # A filter instead of a conditional: routes that do not carry the service vanish from the VirtualService.
        old="flip_route(route, kind, slot, target) if target.selected(kind, route) else route for route in routes",
        new="flip_route(route, kind, slot, target) for route in routes if target.selected(kind, route)",
        catching_tests=(
            "tests/unit/test_route_rewriting.py::test_flipping_a_virtual_service_changes_only_our_destinations",
        ),
        needs_cluster=False,
    ),
    Mutant(
        name="retained slot deleted before its retention window ends",
        path="steps/retention.py",
        # A flipped comparison: a stamp still in the future counts as expired. Cleanup checks retention twice (the
        # sweep, then the fresh re-read before removal), so only a fault in the shared predicate reaches a slot.
        old="return (at or datetime.now(UTC)) >= end",
        new="return (at or datetime.now(UTC)) <= end",
        catching_tests=(
            "tests/unit/test_retention.py",
            "tests/integration/test_steps_failures.py::test_cleanup_never_touches_live_or_retained_slots_even_with_stale_status",
            "tests/integration/test_steps_failures.py::test_cleanup_removes_only_an_expired_previous_slot",
            "tests/integration/test_steps_happy_path.py::test_deploy_twice_blue_green_blue",
        ),
        needs_cluster=True,
    ),
    Mutant(
        name="Role rule widened",
        path="bluegreen_contract.py",
        # Listing ConfigMaps would let the deployer read every ConfigMap of the namespace, not just the named keys.
        old='        CONFIG_MAPS,\n        "get",\n',
        new='        CONFIG_MAPS,\n        "get list",\n',
        catching_tests=(
            # The forbidden calls are written apart from the rules, so the rendered Role is checked against them.
            "tests/unit/test_role_grants.py",
            "tests/unit/test_readme.py::test_rbac_table_is_the_one_generated_from_the_rules",
            GOLDEN_ROLE,
            "tests/integration/test_rbac.py::test_forbidden_calls_are_denied[list core/configmaps]",
            "tests/integration/test_rbac.py::test_every_call_the_steps_and_the_executor_make_is_allowed",
        ),
        needs_cluster=True,
    ),
    Mutant(
        name="supply-chain gate accepts an unverified image",
        path="steps/image_verdict.py",
        # The first trusted signer is taken whether or not any cosign call verified its signature.
        old="signer = next((authority for authority in planned if authority in passed), None)",
        new="signer = next(iter(planned), None)",
        catching_tests=(
            "tests/unit/test_image_verdict.py::test_no_passing_signature_refuses_naming_the_rule_and_every_trusted_signer",
            "tests/unit/test_image_verdict.py::test_a_passing_attestation_does_not_stand_in_for_a_signature",
            "tests/unit/test_image_verdict.py::test_any_one_trusted_signer_is_enough_and_is_named",
        ),
        needs_cluster=False,
    ),
    Mutant(
        name="cleanup deletes the live slot",
        path="steps/commands/cleanup.py",
        # Without the guard the live slot is a removal candidate like any other; an unstamped slot counts as expired.
        old="        if slot is live:\n            continue\n",
        new="",
        catching_tests=(
            "tests/integration/test_steps_failures.py::test_cleanup_never_touches_live_or_retained_slots_even_with_stale_status",
            "tests/integration/test_steps_failures.py::test_cleanup_removes_only_an_expired_previous_slot",
            "tests/integration/test_steps_happy_path.py::test_deploy_twice_blue_green_blue",
        ),
        needs_cluster=True,
    ),
    Mutant(
        name="preflight picks the live slot as target",
        path="steps/commands/preflight.py",
        # deploy-green, probe, smoke and switch all take their slot from this output. deploy-green refuses a live
        # target itself, so the fault shows as a failed deploy, not as an overwritten live slot.
        old="Output.target_slot: from_slot.other.value,",
        new="Output.target_slot: from_slot.value,",
        catching_tests=(
            "tests/integration/test_steps_happy_path.py::test_deploy_twice_blue_green_blue",
            "tests/integration/test_steps_failures.py::test_failed_deploy_gives_the_retained_version_its_slot_back",
        ),
        needs_cluster=True,
    ),
    Mutant(
        name="probe ignores failures",
        path="steps/probe.py",
        # Any HTTP answer counts as a success, a 503 included.
        old="return ProbeAttempt(number, url, is_success_status(response.status_code), response.status_code, ",
        new="return ProbeAttempt(number, url, True, response.status_code, ",
        catching_tests=(
            "tests/steps/test_probe.py::test_failure_at_the_failure_threshold_records_every_attempt",
            "tests/steps/test_probe.py::test_status_classes_follow_the_kubelet",
            "tests/steps/test_probe.py::test_verdict_matches_the_reference_model_for_any_sequence",
        ),
        needs_cluster=False,
    ),
    Mutant(
        name="record closed without its reason",
        path="steps/records.py",
        # The outcome survives but not why: the one question a record is kept to answer after the run is gone (I6).
        old="            status.reason = reason[:2000]\n",
        new="",
        catching_tests=(
            "tests/integration/test_steps_failures.py::test_probe_failure_keeps_traffic_on_blue_and_records_why",
            "tests/integration/test_steps_failures.py::test_verify_failure_after_switch_restores_blue",
        ),
        needs_cluster=True,
    ),
    Mutant(
        name="admission policy condition removed",
        path="pipelines/admission_policy.py",
        # The adoption exception no longer compares the team's spec: the deployer could change a team's image.
        old='            same_except("object.spec", "oldObject.spec", ("replicas",)),\n',
        new="",
        catching_tests=(
            # The golden comparison is the only cluster-free catch; after a re-render only the server test remains.
            GOLDEN_DEPLOYMENT_POLICY,
            "tests/integration/test_admission_policy.py::test_writes_to_the_teams_objects_are_refused",
        ),
        needs_cluster=True,
    ),
    Mutant(
        name="adopted Deployment's metadata no longer compared",
        path="pipelines/admission_policy.py",
        # The deployer could then hand a team's Deployment to the garbage collector with a dangling owner reference.
        old='            same_except("object.metadata", "oldObject.metadata", (*SERVER_METADATA, "annotations")),\n',
        new="",
        catching_tests=(
            GOLDEN_DEPLOYMENT_POLICY,
            "tests/integration/test_admission_attacks.py::test_the_attack_is_refused_naming_the_rule"
            "[4 ownerReferences on the team's Deployment]",
        ),
        needs_cluster=True,
    ),
    Mutant(
        name="a slot's ServiceAccount no longer needs the namespace's grant",
        path="pipelines/admission_policy.py",
        # A slot of a service with no adopted Deployment could then run as any ServiceAccount of the namespace.
        old="f\"{_GRANT_APPLIES} || {account} == 'default' || {granted('serviceaccounts', account)}\",",
        new='f"{_GRANT_APPLIES} || true",',
        catching_tests=(
            GOLDEN_DEPLOYMENT_POLICY,
            "tests/integration/test_admission_attacks.py::test_the_attack_is_refused_naming_the_rule"
            "[own: a slot of no service runs as another team's ServiceAccount]",
        ),
        needs_cluster=True,
    ),
    Mutant(
        name="no cap on the Secrets a slot's grant checks",
        path="pipelines/admission_policy.py",
        # The Secrets past the validations' count would then go unchecked.
        old='f"{_GRANT_APPLIES} || size(variables.secretNames) <= {GRANTED_SECRETS_LIMIT}",',
        new='f"{_GRANT_APPLIES} || true",',
        catching_tests=(
            GOLDEN_DEPLOYMENT_POLICY,
            "tests/integration/test_admission_attacks.py::test_a_slot_refers_to_no_more_secrets_than_the_policy_checks",
        ),
        needs_cluster=True,
    ),
    Mutant(
        name="per-service mutex removed",
        path="pipelines/deploy_template.py",
        # Two deploys of one service could then interleave (I5).
        old="        synchronization=service_mutex(),\n",
        new="",
        catching_tests=(
            "tests/unit/test_lint.py::test_rendered_manifests_and_the_examples_lint_clean",
            "tests/unit/test_pipelines.py::test_deploys_and_rollbacks_share_one_mutex_per_namespace_and_service",
            GOLDEN_DEPLOY,
        ),
        needs_cluster=False,
    ),
    Mutant(
        name="switch moves traffic without writing its intent",
        path="steps/traffic.py",
        # The status keeps saying Deploying while the route changes, so a crash mid-switch is not known as one (I3).
        old="    update_status(ctx.kube, ctx.namespace, ctx.service, write_intent)\n",
        new="",
        catching_tests=(
            "tests/integration/test_transient_api_errors.py::test_switch_cut_short_by_persistent_faults_resumes",
        ),
        needs_cluster=True,
    ),
    Mutant(
        name="smoke passes when any one test passes",
        path="steps/smoke.py",
        # One passing test hides every failing one, so a broken endpoint reaches users.
        old="return SmokeReport(all(result.passed for result in results)",
        new="return SmokeReport(any(result.passed for result in results)",
        catching_tests=("tests/steps/test_smoke.py::test_a_wrong_status_fails_only_that_test",),
        needs_cluster=False,
    ),
    Mutant(
        name="rollback routes to the old slot without making it available",
        path="steps/restore.py",
        # Traffic goes back to a slot that may have been scaled to zero (I1).
        old="    image = make_available(ctx, slot, record, step)\n",
        new=(
            "    image = slots.current_image(\n"
            "        ctx.kube.must_get(DEPLOYMENTS, ctx.namespace, slots.deployment_name(ctx.service, slot)),\n"
            "        ctx.resource.spec.container,\n"
            "    )\n"
        ),
        catching_tests=(
            "tests/integration/test_steps_failures.py::test_rollback_scales_a_scaled_down_old_slot_up_before_switching",
        ),
        needs_cluster=True,
    ),
    Mutant(
        name="confirm-promotion trusts a promotion in the record",
        path="steps/promotion.py",
        # Whoever may patch deploymentrecords/status but not workflows approves a run by waiting for its timeout.
        old="    if decided is not None and decided.state is spec.PromotionState.aborted:\n        return decided\n",
        new=(
            "    if decided is not None and decided.state is not spec.PromotionState.waiting:\n"
            "        return decided\n"
        ),
        catching_tests=(
            "tests/unit/test_promotion_wait.py::test_a_promotion_in_the_record_does_not_count_when_the_node_reached_its_duration",
        ),
        needs_cluster=False,
    ),
    Mutant(
        name="confirm-promotion lets a resume override a recorded abort",
        path="steps/promotion.py",
        old="    if decided is not None and decided.state is spec.PromotionState.aborted:\n        return decided\n",
        new="",
        catching_tests=("tests/unit/test_promotion_wait.py::test_a_recorded_abort_wins_over_a_node_someone_resumed",),
        needs_cluster=False,
    ),
    Mutant(
        name="promote records the promotion before it resumes the node",
        path="steps/promotion.py",
        # A refused node write leaves a promotion in the record that nothing backs.
        old="        _refuse_a_recorded_abort(records, run)\n",
        new="        _refuse_a_recorded_abort(records, run)\n        _write_decision(records, run, decision)\n",
        catching_tests=(
            "tests/integration/test_promotion_gate.py::"
            "test_a_promote_whose_node_write_was_refused_does_not_pass_the_gate_at_its_timeout",
        ),
        needs_cluster=True,
    ),
    Mutant(
        name="a gate takes the record the submitter named",
        path="steps/gates.py",
        # The record is compared with itself instead of with the Pod's workflow: any run's verdicts pass.
        old="    own = run_identity.own_record(workflow)\n",
        new="    own = run_identity.own_record(workflow) and record_name\n",
        catching_tests=("tests/unit/test_run_identity.py::test_a_gate_refuses_every_record_but_its_own_runs",),
        needs_cluster=False,
    ),
    Mutant(
        name="the install asks nothing of Argo's controller",
        path="pipelines/argo_controller.py",
        # Without templateReferencing: Strict whoever may create a Workflow runs its own code as the deployer.
        old='    return {WORKFLOW_RESTRICTIONS_KEY: f"templateReferencing: {TEMPLATE_REFERENCING}\\n"}\n',
        new="    return {}\n",
        catching_tests=(
            "tests/unit/test_render.py::test_the_controller_setting_is_a_patch_for_argos_configmap_outside_every_kustomization",
            f"{_GOLDEN}[argo-controller/workflow-restrictions.yaml]",
        ),
        needs_cluster=False,
    ),
    Mutant(
        name="a slot mounts any Secret once its team's Deployment mounts one",
        path="pipelines/admission_policy.py",
        # The team's volumes loop takes the slot loop's name again, so the comparison reads one volume twice.
        old='f"((has({pod}.volumes) && {pod}.volumes.exists(tv, "\n'
        '        f"(has(tv.secret) && has(tv.secret.secretName) && tv.secret.secretName == {name}) || "',
        new='f"((has({pod}.volumes) && {pod}.volumes.exists(v, "\n'
        '        f"(has(v.secret) && has(v.secret.secretName) && v.secret.secretName == {name}) || "',
        catching_tests=(
            "tests/unit/test_cel_macro_variables.py::test_no_policy_expression_hides_a_variable_of_an_enclosing_macro",
            f"{_GOLDEN}[cluster/admission/deployment-references-policy.yaml]",
            "tests/integration/test_admission_attacks.py::test_a_team_that_uses_secrets_lends_its_slots_only_those",
        ),
        needs_cluster=True,
    ),
    Mutant(
        name="a probe of a reused workflow name writes into the deleted run's record",
        path="steps/commands/probe.py",
        # Its attempts, result and verdict would go into another run's record.
        old='    gates.require_run_record(ctx, args.record, "nothing was checked or written")\n',
        new="",
        catching_tests=(
            "tests/integration/test_switch_gates.py::test_a_workflow_that_reuses_a_run_s_name_is_not_that_run",
        ),
        needs_cluster=True,
    ),
)

__all__ = ["MUTANTS", "RENDERED_SOURCES", "Mutant"]
