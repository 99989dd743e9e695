# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The project's own Node.js (.nvmrc), whatever the machine has: installed once into .tools/ and first on PATH for
# every target, npm included; native addons build against its headers.
NODE_VERSION := $(shell cat .nvmrc)
NODE_HOME := $(CURDIR)/.tools/node-v$(NODE_VERSION)
export PATH := $(NODE_HOME)/bin:$(PATH)
export npm_config_nodedir := $(NODE_HOME)
# Node keeps the code it compiled here, so the next start of every process (and of each parser process) loads faster.
export NODE_COMPILE_CACHE ?= $(CURDIR)/.tools/compile-cache

$(NODE_HOME)/bin/node:
	@echo "==> Installing Node.js $(NODE_VERSION) into .tools/ (once; about 30 MB from the npm registry)"
	scripts/install-node.sh $(NODE_VERSION) $(NODE_HOME)
	@touch $@

node_modules: package.json package-lock.json $(NODE_HOME)/bin/node
	@echo "==> Installing the locked dependencies (npm ci; once, and again only when package-lock.json changes)"
	npm ci --no-audit --no-fund
	@touch node_modules

# dist/ is built again only when a source (or the compiler's settings, or a dependency) changed since: a second
# `make run` starts at once. tsc itself rebuilds incrementally (tsconfig.json: incremental).
SOURCES := $(shell find api core worker scripts types loadtest test -name '*.ts' 2>/dev/null) tsconfig.json
dist/.built: $(SOURCES) node_modules
	@echo "==> Building: TypeScript into dist/"
	npm run --silent build
	@touch $@

.PHONY: help install build typecheck lint format migrate run test alerts bench clean up image-test manifests

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: node_modules ## install the locked dependencies

build: dist/.built ## compile TypeScript into dist/ (only when a source changed)

typecheck: node_modules ## type-check everything (sources, tests, scripts)
	npm run --silent typecheck

lint: node_modules ## lint (typescript-eslint, type-aware) and check formatting (Prettier); fails on any warning
	npx eslint --max-warnings 0 .
	npx prettier --check .

format: node_modules ## format the tree with Prettier
	npx prettier --write --log-level warn .

migrate: build ## create the database if missing and apply migrations
	@echo "==> Migrating the database (DATABASE_URL, by default postgres://postgres@127.0.0.1:5432/file_processor)"
	node dist/core/db/migrate.js

run: migrate ## start the API (:8080, admin :9090) and one worker (admin :9091); Ctrl-C stops both
	@echo "==> Starting the API on :$${PORT:-8080} and one worker; Ctrl-C stops both"
	node dist/scripts/run.js

test: lint ## lint, type-check, then run every test with coverage (fails under 85% of lines)
	npm run --silent typecheck
	npm test

alerts: ## check the alerting rules and run their unit tests (needs promtool: apt-get install prometheus)
	promtool check rules observability/alerts.yaml
	promtool test rules observability/alerts.test.yaml

bench: build ## benchmark the production build against a bare-Node baseline (writes loadtest/results/); BENCH_QUICK=1 for a short run
	node dist/loadtest/bench/run.js

up: ## run PostgreSQL, Redis, the migration, the API (:8080) and a worker with Docker Compose
	docker compose -f docker/compose.yaml up --build

image-test: node_modules ## build both images with podman and run them read-only against local PostgreSQL and Redis
	npm run --silent image-test

manifests: build ## render the chart with default values into k8s/ (a test fails when k8s/ drifts)
	node dist/scripts/manifests.js

clean: ## remove build output, local data and the pinned Node.js
	rm -rf dist coverage data .tools

.PHONY: scale-watch
scale-watch: build ## sample replicas, KEDA and queue depth during a k6 run (ARGS="--namespace fp --release fp")
	node dist/loadtest/scale-watch/cli.js $(ARGS)
