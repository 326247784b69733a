# tunefleet — `make help` lists every target.
SHELL := /bin/bash
export PYTHONUNBUFFERED := 1

include mk/tools.mk

.DEFAULT_GOAL := help

.PHONY: help install demo dashboard test test-suite test-unit lint typecheck services-install

# The README's two commands first, then every other target in alphabetical order.
HELP_FIRST := demo test
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "; n = split("$(HELP_FIRST)", first, " "); for (i = 1; i <= n; i++) rank[first[i]] = i} \
		{printf "%d %s\t%s\n", ($$1 in rank ? rank[$$1] : 99), $$1, $$2}' | sort -k1,1n -k2,2 | \
		awk 'BEGIN {FS = "\t"} {sub(/^[0-9]+ /, "", $$1); printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

install: $(UV) ## Create .venv from uv.lock (all services, dev tools)
	$(UV) sync --frozen

services-install: install ## Install RabbitMQ (apt) and build FerretDB (Go) if missing
	$(UV) run --frozen python -m tunefleet_dev.devservices install

DEMO_SPEC ?= examples/demo.yaml
demo: services-install ## Run a real 3-library study through the whole pipeline on local services (DEMO_SPEC=examples/tpe.yaml: another)
	$(UV) run --frozen python -m tunefleet_dev.demo $(DEMO_SPEC)

dashboard: services-install ## The live web dashboard on local services and a pipeline, with the demo study (DEMO_SPEC=, empty: none)
	$(UV) run --frozen python -m tunefleet_dev.dashboard $(DEMO_SPEC)

test: services-install test-tools cluster-install docker-install ## The whole test suite, against real services (what CI runs)
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy
	$(UV) run --frozen lint-imports
	$(UV) run --frozen python -m tunefleet_dev.engine run -- $(MAKE) --no-print-directory test-suite

# With a Docker daemon (started and stopped again by `make test` where none answered): the
# images first, so that a build failure reads as one (the service images, then kind's node
# image and the stand-ins where they cannot be pulled), then every suite, tests/containers and
# tests/kind too.
# The end-to-end suite runs once, in the tests container against the compose services
# (tests/containers), but for its tests that need this machine's programs, which run here.
# The slowest tests are listed at the end: in CI, what a run that nears its time limit spent.
test-suite: install ## The tests only (what `make test` runs after lint and types): build the images, then pytest
	$(UV) run --frozen python -m tunefleet_dev.stack build
	$(UV) run --frozen python -m tunefleet_dev.kind install
	TUNEFLEET_E2E_IN_CONTAINER=1 $(UV) run --frozen pytest -q -ra --durations=15

test-unit: install ## Unit tests only (no services)
	$(UV) run --frozen pytest -q tests/unit

lint: install ## ruff lint and format check, import layers (import-linter)
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen lint-imports

typecheck: install ## mypy, strict
	$(UV) run --frozen mypy

-include $(filter-out mk/tools.mk,$(wildcard mk/*.mk))
