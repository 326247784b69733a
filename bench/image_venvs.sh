#!/usr/bin/env bash
# What each service image's /app/.venv weighs, without Docker: runs the Dockerfile's own two
# `uv sync` steps (dependencies from uv.lock, then the code, non-editable) in a scratch
# directory, deletes the sources, checks the service starts, and prints `du -sm` of the venv.
# Usage: bench/image_venvs.sh [service ...]   (default: worker publisher collector)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ $# -gt 0 ]]; then services=("$@"); else services=(worker publisher collector); fi
for svc in "${services[@]}"; do
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/src"
  cp "$root/pyproject.toml" "$root/uv.lock" "$work/src/"
  for m in libs/contract libs/runtime libs/tunefleet libs/dev services/publisher services/worker services/collector; do
    mkdir -p "$work/src/$m" && cp "$root/$m/pyproject.toml" "$work/src/$m/"
  done
  export UV_PROJECT_ENVIRONMENT="$work/app/.venv" UV_COMPILE_BYTECODE=1 UV_PYTHON_DOWNLOADS=never
  (cd "$work/src" && uv sync -q --frozen --no-dev --no-install-workspace --package "tunefleet-$svc")
  cp -r "$root/libs/contract/src" "$work/src/libs/contract/"
  cp -r "$root/libs/runtime/src" "$work/src/libs/runtime/"
  cp -r "$root/services/$svc/src" "$work/src/services/$svc/"
  (cd "$work/src" && uv sync -q --frozen --no-dev --no-editable --package "tunefleet-$svc")
  rm -rf "$work/src"
  # Without configuration a service must refuse to start, naming the variable (exit 2).
  if "$work/app/.venv/bin/python" -m "tunefleet_$svc" 2>"$work/err"; then
    echo "$svc: started without configuration?" >&2; exit 1
  fi
  grep -q "RABBITMQ_URL" "$work/err"
  # A service image carries no client and no dev tooling.
  if "$work/app/.venv/bin/python" -c "import tunefleet" 2>/dev/null \
    || "$work/app/.venv/bin/python" -c "import tunefleet_dev" 2>/dev/null \
    || [[ -e "$work/app/.venv/bin/tunefleet" ]]; then
    echo "$svc: the client or the dev tooling is in the image" >&2; exit 1
  fi
  echo "$svc venv: $(du -sm "$work/app/.venv" | cut -f1) MB"
  rm -rf "$work"
  trap - EXIT
done
