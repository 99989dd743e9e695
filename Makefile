# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

node_modules: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch node_modules

.PHONY: help install build typecheck migrate run test bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: node_modules ## install the locked dependencies

build: node_modules ## compile TypeScript into dist/
	npm run --silent build

typecheck: node_modules ## type-check everything (sources, tests, scripts)
	npm run --silent typecheck

migrate: build ## create the database if missing and apply migrations
	npm run --silent migrate

run: migrate ## start the API (:8080, admin :9090) and one worker (admin :9091); Ctrl-C stops both
	npm run --silent start

test: node_modules ## type-check, then run every test with coverage (fails under 85% of lines)
	npm run --silent typecheck
	npm test

bench: build ## benchmark the production build against a bare-Node baseline (writes loadtest/results/); BENCH_QUICK=1 for a short run
	node dist/loadtest/bench/run.js

clean: ## remove build output and local data
	rm -rf dist coverage data
