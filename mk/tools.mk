# What `make demo` and `make test` install for themselves on a bare machine. Each step says what
# it installs and why, once, and is skipped when the tool is already there. The prerequisites a
# user must have before that are listed in the README's quick start.

# uv builds .venv from uv.lock. Use the one on PATH; otherwise a user-level install from PyPI.
UV_USER_BIN := $(HOME)/.local/bin/uv
UV ?= $(or $(shell command -v uv 2>/dev/null),$(UV_USER_BIN))

.PHONY: test-tools

$(UV_USER_BIN):
	@echo "installing uv from PyPI into ~/.local/bin (user-level): it builds .venv from uv.lock"
	python3 -m pip install --quiet --user --disable-pip-version-check uv

# Headless Chromium renders the HTML report in tests/e2e/test_report.py and drives the dashboard
# in tests/e2e/test_dashboard.py (over the DevTools protocol: tests/support/chromium.py).
test-tools: ## Install what only the tests need (Debian's chromium) if missing
	@if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then \
		echo "installing chromium (Debian package): the report test renders the HTML report in it"; \
		if [ "$$(id -u)" != 0 ]; then \
			echo "error: chromium is missing and installing it needs root: sudo apt-get install -y chromium" >&2; \
			exit 2; \
		fi; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	fi
