#!/usr/bin/env bash
# Deploy one image of one service with the blue-green-deploy template and wait for the run to end.
#
#   bluegreen-deploy.sh SERVICE IMAGE@sha256:DIGEST
#
# Runs as the CI identity of manifests/rbac/ci-submitter (KUBECONFIG names its credentials). The namespace is
# BLUEGREEN_NAMESPACE (default: apps); TRIGGERED_BY, COMMIT and DEPLOY_REASON go into the run's DeploymentRecord.
# Exit codes: 0 the run succeeded; 1 it failed (the record's outcome and reason are printed); 2 bad arguments;
# 3 the run could not be submitted or its result could not be read.
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: bluegreen-deploy.sh SERVICE IMAGE@sha256:DIGEST" >&2
    exit 2
fi
service=$1
image=$2
namespace=${BLUEGREEN_NAMESPACE:-apps}
case "$image" in
    *@sha256:*) ;;
    *)
        echo "bluegreen-deploy: image '$image' is not pinned by digest; pass IMAGE@sha256:<digest> so the record" \
            "names exactly what was deployed" >&2
        exit 2
        ;;
esac

# `--wait` returns when the run, including its exit handler (the rollback of a failed deploy), has ended, and exits
# non-zero when it failed. No `--log`: that would need the logs of every Pod in the namespace.
submitted=0
output=$(argo submit --from workflowtemplate/blue-green-deploy -n "$namespace" \
    -p service="$service" -p image="$image" \
    -p triggered-by="${TRIGGERED_BY:-}" -p commit="${COMMIT:-}" -p reason="${DEPLOY_REASON:-}" \
    -o name --wait) || submitted=$?
workflow=$(printf '%s\n' "$output" | awk 'NF == 1 { sub(/.*\//, ""); print; exit }')
if [ -z "$workflow" ]; then
    echo "bluegreen-deploy: argo submit created no workflow (exit $submitted); its error is above" >&2
    exit 3
fi
echo "workflow $namespace/$workflow ended; argo submit exited $submitted"

# The run's DeploymentRecord carries the same name as its workflow and says how the run ended and why.
if ! result=$(kubectl get deploymentrecords.argo-bluegreen.io "$workflow" -n "$namespace" \
    -o jsonpath='{.status.outcome}{"\n"}{.status.reason}'); then
    echo "bluegreen-deploy: the DeploymentRecord of $workflow could not be read; see \`argo get $workflow -n $namespace\`" >&2
    exit 3
fi
outcome=$(printf '%s\n' "$result" | head -n 1)
reason=$(printf '%s\n' "$result" | tail -n +2)
if [ "$submitted" -eq 0 ] && [ "$outcome" = "Succeeded" ]; then
    echo "deployed $image to $service: record $workflow, outcome $outcome"
    exit 0
fi
echo "bluegreen-deploy: deploy of $image to $service failed: record $workflow, outcome ${outcome:-none}" >&2
echo "reason: ${reason:-the record has no reason; see \`argo get $workflow -n $namespace\`}" >&2
exit 1
