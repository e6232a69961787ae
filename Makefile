# Everything a fresh machine needs comes from here: the virtualenv from PyPI, the control plane from the Go module
# proxy. `make manifests` and `make test` create the virtualenv themselves when it is missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The package's version lives in bluegreen_version.py, so a version bump reinstalls too (the metadata carries it).
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml bluegreen_version.py | cksum | cut -d' ' -f1)
# The examples that are Kubernetes objects; examples/ci holds CI pipelines, checked by their own tests.
K8S_EXAMPLES := examples/user-service.yaml examples/demo
HOST_TOOLS := ip:iproute2 nft:nftables unshare:util-linux nsenter:util-linux haproxy:haproxy redis-server:redis-server git:git
# What builds the images without a Docker engine (images/build.py).
IMAGE_TOOLS := buildah:buildah mmdebstrap:mmdebstrap
# $(call install-missing,COMMAND:PACKAGE ...,WHO NEEDS THEM,TARGET): apt-get install the packages whose command is
# missing, as root; anyone else is told what to install.
install-missing = missing=""; for pair in $(1); do command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair\#*:}"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
			echo "$(2) needs these Debian packages:$$missing; install them as root (make $(3) does it with apt-get)" >&2; exit 1; \
		fi; \
		echo "installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
GO_MISSING := Go 1.26 or newer must be on PATH (Debian's golang package is too old): it builds the local cluster's programs and fetches Argo's schema from pinned modules

.PHONY: install manifests docs lint fmt test unit changed mutants bench testenv tools helm rollouts argocd host-deps cluster demo image image-deps clean

$(STAMP): pyproject.toml bluegreen_version.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[render,dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

## Render the committed golden manifests/ (default settings), the Helm chart charts/argo-bluegreen/ and the RBAC table
## of docs/reference/rbac.md, then check
## them: Hera's models, DAG, references, safety, Argo's own schema and Kubernetes' OpenAPI schema, each from its pinned
## Go module.
## Render for your cluster with `bluegreen-render --namespace ... --image ...`, which writes ./rendered and leaves
## manifests/ alone.
manifests: $(STAMP)
	$(BIN)/bluegreen-render --out manifests --readme docs/reference/rbac.md
	$(BIN)/python -m pipelines.helm_chart --out charts/argo-bluegreen
	@command -v go >/dev/null 2>&1 || { echo "$(GO_MISSING)" >&2; exit 1; }
	@schema="$$($(PYTHON) testenv/build.py --argo-schema)" || { echo "make manifests: Argo's schema could not be fetched (above)" >&2; exit 1; }; \
	test -s "$$schema" || { echo "make manifests: testenv/build.py named no Argo schema" >&2; exit 1; }; \
	k8s="$$($(PYTHON) testenv/kubernetes_schema.py)" || { echo "make manifests: Kubernetes' schema could not be fetched (above)" >&2; exit 1; }; \
	test -d "$$k8s" || { echo "make manifests: testenv/kubernetes_schema.py named no Kubernetes schema" >&2; exit 1; }; \
	echo "$(BIN)/bluegreen-lint manifests $(K8S_EXAMPLES) --argo-schema $$schema --kubernetes-schema $$k8s"; \
	$(BIN)/bluegreen-lint manifests $(K8S_EXAMPLES) --argo-schema "$$schema" --kubernetes-schema "$$k8s"

## The spec reference, docs/spec-reference.md, generated from the model.
docs: $(STAMP)
	$(BIN)/python -m pipelines.spec_reference

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Fix what ruff can fix and format every file; `make lint` then checks the rest.
fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Every program of the local cluster (etcd, the Kubernetes components and kubectl, CoreDNS, Argo's controller, CLI
## and executor) built from pinned Go modules, and the pinned third-party CRDs, into a cache outside the repository.
testenv:
	@command -v go >/dev/null 2>&1 || { echo "$(GO_MISSING)" >&2; exit 1; }
	$(PYTHON) testenv/build.py

## The tools the tests run (promtool for the alerting rules, actionlint for the CI workflows, cosign and crane's
## registry for the supply-chain tests), built from their own pinned Go modules under testenv/tools/ into a cache entry
## of their own.
tools:
	@command -v go >/dev/null 2>&1 || { echo "$(GO_MISSING)" >&2; exit 1; }
	$(PYTHON) testenv/tools.py

## Helm (v4.3.2) from the Go module pinned in testenv/helm/, into a cache entry of its own: the tests lint the chart,
## compare `helm template` with the kustomize render, and install it on the local cluster.
helm:
	@command -v go >/dev/null 2>&1 || { echo "$(GO_MISSING)" >&2; exit 1; }
	$(PYTHON) testenv/helm_tool.py

## Argo Rollouts' controller (v1.10.1) and its CRDs, from the Go module pinned in testenv/rollouts/, into a cache entry
## of their own; the benchmarks set it beside the project's blue-green deploys. Not needed by `make test`.
rollouts:
	@command -v go >/dev/null 2>&1 || { echo "$(GO_MISSING)" >&2; exit 1; }
	$(PYTHON) testenv/rollouts.py

## Argo CD (v3.2.11: one binary that is the application controller or the repo server) and its CRDs, from the Go
## module pinned in testenv/argocd/, into a cache entry of its own; the GitOps end-to-end tests run it on the local
## cluster (testenv/argocd_controller.py).
argocd:
	@command -v go >/dev/null 2>&1 || { echo "$(GO_MISSING)" >&2; exit 1; }
	$(PYTHON) testenv/argocd.py

## The Debian packages the local cluster runs with: ip (network namespaces, veths), nft (kube-proxy's nftables mode),
## unshare and nsenter (the node agent's containers), haproxy (the load harness's ingress hop in front of a Service),
## redis-server and git (Argo CD's cache, and the repositories its repo server clones). Installed only when missing.
host-deps:
	@$(call install-missing,$(HOST_TOOLS),the local cluster,host-deps)

## Workers for the suite's parallel run. They share one local cluster (testenv/shared_cluster.py), whose components
## mostly wait, so more workers than cores still overlap (CONTRIBUTING.md has the figures).
TEST_WORKERS ?= 4

test: $(STAMP) lint testenv tools helm argocd host-deps image
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

## The local cluster of real components (etcd, kube-apiserver, controllers, scheduler, kube-proxy, CoreDNS, Argo,
## node agent); prints the two lines that point kubectl and argo at it, and stays up until Ctrl-C.
cluster: $(STAMP) testenv tools host-deps image
	$(BIN)/python -m testenv.run_cluster

## The main job: blue-green deploys of the demo app through the real Argo controller on the local cluster.
demo: $(STAMP) testenv tools host-deps image
	$(BIN)/python -m testenv.demo

## The fast tier: unit, step, manifest and demo-app tests, in parallel, with no Go and no cluster.
unit: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m 'not controlplane and not cluster and not package_index and not image'

## Plant each fault of testenv/mutant_catalogue.py in a copy of the tree, one at a time, and print the test that
## caught it; exits 1 when any fault survives. Not part of `make test`: it is the check that a faster suite is not a
## weaker one.
mutants: $(STAMP) testenv tools host-deps image
	$(BIN)/python -m testenv.mutants

## The tests whose imports reach a file changed since BASE (default: the uncommitted change), on the local cluster.
BASE ?= HEAD
changed: $(STAMP) testenv tools host-deps image
	$(BIN)/python -m testenv.affected_tests --base $(BASE) -- -n $(TEST_WORKERS)

## Benchmarks against the local cluster; they print medians, they do not assert timings, and a complete run writes
## docs/performance.md from its own figures (kept in docs/performance.json). The deploys-under-load benchmark runs
## DEPLOYS deploys over SERVICES services (`make bench DEPLOYS=50 SERVICES=5` for a full day's worth).
DEPLOYS ?= 10
SERVICES ?= 2
BENCH_RESULTS ?= .bench/results.json
bench: $(STAMP) testenv tools rollouts host-deps image
	rm -f $(BENCH_RESULTS)
	BLUEGREEN_BENCH_RESULTS=$(BENCH_RESULTS) BLUEGREEN_BENCH_DEPLOYS=$(DEPLOYS) BLUEGREEN_BENCH_SERVICES=$(SERVICES) $(BIN)/python -m pytest -p no:cacheprovider -s -q benchmarks
	$(BIN)/python -m benchmarks.performance_page $(BENCH_RESULTS)

## The steps image and the demo app's image, from this checkout (images/build.py): with `docker build` where a Docker
## engine runs, else with buildah, on the pinned upstream Python base or, where that cannot be pulled, on one made from
## Debian's packages and cached. A change to the code rebuilds only the steps image's last layer.
## `make image IMAGE=registry.example.com/platform/bluegreen-steps:<version>` tags the steps image for your registry.
IMAGE ?=
image: image-deps
	$(PYTHON) images/build.py $(if $(IMAGE),--steps-tag $(IMAGE))

## buildah and mmdebstrap (Debian's packages), when no Docker engine answers and they are missing.
image-deps:
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then exit 0; fi; \
	$(call install-missing,$(IMAGE_TOOLS),make image (without a Docker engine),image-deps)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
