# tunefleet — `make help` lists every target.
SHELL := /bin/bash
UV ?= uv
export PYTHONUNBUFFERED := 1

.DEFAULT_GOAL := help

.PHONY: help install demo test test-unit lint typecheck services-install

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

install: ## Create .venv from uv.lock (all services, dev tools)
	$(UV) sync --frozen

services-install: install ## Install RabbitMQ (apt) and build FerretDB (Go) if missing
	$(UV) run --frozen python -m tunefleet.devservices install

demo: services-install ## Run a real 3-library study through the whole pipeline on local services
	$(UV) run --frozen python -m tunefleet.demo

test: services-install cluster-install ## The whole test suite, against real services (what CI runs)
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy
	$(UV) run --frozen pytest -q -ra

test-unit: install ## Unit tests only (no services)
	$(UV) run --frozen pytest -q tests/unit

lint: install ## ruff lint and format check
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

typecheck: install ## mypy, strict
	$(UV) run --frozen mypy

-include mk/*.mk
