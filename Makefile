# kvop — leader election and service discovery on key/value stores, as a Kubernetes operator.
# `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

include hack/tools.env

export KVOP_TOOLS ?= $(HOME)/.cache/kvop/tools
# The machines' Go is the toolchain: never download another one.
export GOTOOLCHAIN := local

GO        ?= go
BIN       ?= bin
TEST_FLAGS ?= -race -count=1 -timeout 30m

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} \
	  /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: tools
tools: ## Install or build every server and tool the tests need into $(KVOP_TOOLS) (cached by version).
	@hack/tools.sh

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build
build: ## Build kvop's binaries (manager, kvop CLI) into ./bin.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

.PHONY: run
run: manifests ## Run the manager against the cluster in ~/.kube/config (or $$KUBECONFIG).
	$(GO) run ./cmd/manager --metrics-bind-address=:8080 --health-probe-bind-address=:8081

.PHONY: fmt
fmt: ## Format the code (gofmt -w).
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: test
test: tools ## Run every test with -race against real servers (installs them first).
	$(GO) test $(TEST_FLAGS) ./...

.PHONY: lint
lint: ## Check formatting (gofmt) and run go vet.
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

##@ Demo

.PHONY: demo
demo: build ## A local control plane with kvop: pods registered, a leader elected and moved (DEMO_NONINTERACTIVE=1: no pauses).
	@hack/tools.sh envtest kubectl
	$(GO) build -o $(BIN)/demo ./hack/demo
	@$(BIN)/demo

##@ Code generation

CONTROLLER_GEN ?= $(KVOP_TOOLS)/controller-gen-$(CONTROLLER_GEN_VERSION)/controller-gen

.PHONY: generate
generate: ## Generate DeepCopy methods (api/v1/zz_generated.deepcopy.go).
	@[ -x "$(CONTROLLER_GEN)" ] || hack/tools.sh controller-gen
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths="./api/..."

.PHONY: manifests
manifests: ## Generate CRDs (config/crd/bases) and RBAC (config/rbac/role.yaml) from markers.
	@[ -x "$(CONTROLLER_GEN)" ] || hack/tools.sh controller-gen
	$(CONTROLLER_GEN) crd rbac:roleName=kvop-manager-role paths="./api/...;./controllers/..." \
	  output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@hack/sync-chart-crds.sh

.PHONY: verify-generated
verify-generated: generate manifests ## Fail when generated files are stale (CI runs this).
	@git diff --exit-code -- api config charts || { echo "generated files are stale: run 'make generate manifests' and commit"; exit 1; }

##@ Packaging

KUSTOMIZE ?= $(KVOP_TOOLS)/kustomize-$(KUSTOMIZE_VERSION)/kustomize
IMG ?= kvop/manager:dev

.PHONY: build-installer
build-installer: manifests ## Write dist/install.yaml: CRDs, RBAC and the manager Deployment for `kubectl apply -f`.
	@[ -x "$(KUSTOMIZE)" ] || hack/tools.sh kustomize
	mkdir -p dist
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/default > dist/install.yaml
	@echo "wrote dist/install.yaml"

##@ Helm chart

HELM ?= $(KVOP_TOOLS)/helm-$(HELM_VERSION)/helm

.PHONY: chart-crds
chart-crds: ## Regenerate the chart's CRD and manager ClusterRole templates from config/ (run after `make manifests`).
	hack/sync-chart-crds.sh

.PHONY: helm-lint
helm-lint: ## Lint charts/kvop (helm lint --strict) and run its render/install tests (test/chart).
	@[ -x "$(HELM)" ] || hack/tools.sh helm
	$(HELM) lint --strict charts/kvop
	$(HELM) lint --strict charts/kvop --set replicas=2,watchNamespace=apps,rbac.namespaced=true,persistence.enabled=true,metrics.secure=true,metrics.serviceMonitor.enabled=true
	$(GO) test $(TEST_FLAGS) ./test/chart/...

##@ Benchmarks

.PHONY: bench
bench: tools ## Benchmark kvop side by side with its peers (issue 10) and write docs/benchmarks.md (~15 min; see hack/bench.sh).
	hack/bench.sh

##@ Reliability

STATICCHECK ?= $(KVOP_TOOLS)/staticcheck-$(STATICCHECK_VERSION)/staticcheck

.PHONY: staticcheck
staticcheck: ## Run staticcheck (pinned in hack/tools.env, installed on first use), and go vet on the faults-tagged tests too.
	@[ -x "$(STATICCHECK)" ] || hack/tools.sh staticcheck
	$(STATICCHECK) ./...
	$(GO) vet -tags faults ./test/...
	$(STATICCHECK) -tags faults ./test/...

# `make lint` runs staticcheck too: a prerequisite, so lint's own recipe stays as it is.
lint: staticcheck

# A count of executions, not a duration: with a duration, Go 1.26's fuzz coordinator can fail
# a target with a bare "context deadline exceeded" when the time runs out while a worker is busy
# (golang/go#75804, fixed in Go 1.27). 30000 runs take 1-10 s per target here.
FUZZTIME ?= 30000x

.PHONY: fuzz
fuzz: ## Run every fuzz target (each func Fuzz* of the tracked tests) for $(FUZZTIME).
	@targets=$$(git grep -n '^func Fuzz' -- '*_test.go' | sed -n 's/^\(.*\)\/[^/]*_test\.go:[0-9]*:func \(Fuzz[A-Za-z0-9_]*\)(.*/\1 \2/p'); \
	  [ -n "$$targets" ] || { echo "no fuzz targets found"; exit 1; }; \
	  while read -r dir fn; do \
	    echo "==> $$fn (./$$dir) for $(FUZZTIME)"; \
	    $(GO) test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) "./$$dir"; \
	  done <<< "$$targets"

.PHONY: test-faults
test-faults: tools ## Fault tests (build tag faults): backend clusters (test/faults) and the operator under faults (test/operatorfaults), ~2–3 min.
	$(GO) test $(TEST_FLAGS) -tags faults ./test/...
