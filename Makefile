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

.PHONY: build
build: ## Build kvop's binaries into ./bin.
	$(GO) build -o $(BIN)/ ./cmd/...

.PHONY: test
test: tools ## Run every test with -race against real servers (installs them first).
	$(GO) test $(TEST_FLAGS) ./...

.PHONY: lint
lint: ## Check formatting (gofmt) and run go vet.
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
