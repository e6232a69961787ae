# Everything a fresh machine needs comes from here: the virtualenv from PyPI, the control plane from the Go module
# proxy. `make manifests` and `make test` create the virtualenv themselves when it is missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
IMAGE ?= ghcr.io/argo-bluegreen/steps:0.1.0
NAMESPACE ?= apps
GO_MISSING := Go 1.26 or newer must be on PATH (Debian's golang package is too old): it builds the local cluster's programs and fetches Argo's schema from pinned modules

.PHONY: install manifests lint fmt test unit bench testenv cluster demo image clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

## Render every manifest into manifests/ and validate it (Hera models, DAG, references, safety; Argo's own schema).
manifests: $(STAMP)
	$(BIN)/bluegreen-render --namespace $(NAMESPACE) --image $(IMAGE) --readme README.md
	@command -v go >/dev/null 2>&1 || { echo "$(GO_MISSING)" >&2; exit 1; }
	$(BIN)/bluegreen-lint manifests examples --argo-schema "$$($(PYTHON) testenv/build.py --argo-schema)"

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

test: $(STAMP) lint testenv
	$(BIN)/python -m pytest

## The local cluster of real components (etcd, kube-apiserver, controllers, scheduler, kube-proxy, CoreDNS, Argo,
## node agent); prints the two lines that point kubectl and argo at it, and stays up until Ctrl-C.
cluster: $(STAMP) testenv
	$(BIN)/python -m testenv.run_cluster

## The main job: blue-green deploys of the demo app through the real Argo controller on the local cluster.
demo: $(STAMP) testenv
	$(BIN)/python -m testenv.demo

## Unit and manifest tests only: no Go needed.
unit: $(STAMP)
	$(BIN)/python -m pytest -m 'not controlplane'

## Benchmarks against the local API server; they print medians, they do not assert timings.
bench: $(STAMP) testenv
	$(BIN)/python -m pytest -p no:cacheprovider -s -q benchmarks

image:
	@command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 || { echo "image needs a running Docker engine" >&2; exit 1; }
	docker build -f images/steps/Dockerfile -t $(IMAGE) .

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
