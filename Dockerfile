# One Dockerfile, three service targets (publisher, worker, collector) and the client's (the CLI,
# and the dashboard).
#   docker build --target worker -t tunefleet-worker .
# Each service image holds the contract, the runtime and its own service with their
# dependencies, installed from uv.lock (frozen) in a layer that only changes when the lock
# does; the code comes in a later, small layer. No CLI and no dev tooling in a service image.
# No `# syntax=` line: BuildKit's built-in frontend has every feature used here, and a syntax
# line makes BuildKit pull a frontend image, which fails where Docker Hub cannot be reached.
# The bases are build args: `make images` and `make up` pass local stand-ins where the official
# images cannot be pulled (tunefleet_dev.images, docs/deploy.md).

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ---- build: a virtual environment per service, dependencies first -------------------------
FROM ${PYTHON_IMAGE} AS build-base
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# On a network that inspects TLS, the build gets the CA it needs as the secret `ca` (make and
# compose pass one where SSL_CERT_FILE or a like variable names it); nothing of it is kept.
RUN printf '%s\n' '#!/bin/sh' \
        'if grep -qs "BEGIN CERTIFICATE" /run/secrets/ca; then export SSL_CERT_FILE=/run/secrets/ca; fi' \
        'exec "$@"' > /usr/local/bin/with-build-ca \
    && chmod 0755 /usr/local/bin/with-build-ca
# The workspace's metadata only: every member's pyproject.toml is needed to read the lock.
COPY pyproject.toml uv.lock ./
COPY libs/contract/pyproject.toml libs/contract/
COPY libs/runtime/pyproject.toml libs/runtime/
COPY libs/tunefleet/pyproject.toml libs/tunefleet/
COPY libs/dev/pyproject.toml libs/dev/
COPY services/publisher/pyproject.toml services/publisher/
COPY services/worker/pyproject.toml services/worker/
COPY services/collector/pyproject.toml services/collector/

FROM build-base AS build-publisher
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    with-build-ca uv sync --frozen --no-dev --no-install-workspace --package tunefleet-publisher
COPY libs/contract/src libs/contract/src
COPY libs/runtime/src libs/runtime/src
COPY services/publisher/src services/publisher/src
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    with-build-ca uv sync --frozen --no-dev --no-editable --package tunefleet-publisher

FROM build-base AS build-worker
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    with-build-ca uv sync --frozen --no-dev --no-install-workspace --package tunefleet-worker
COPY libs/contract/src libs/contract/src
COPY libs/runtime/src libs/runtime/src
COPY services/worker/src services/worker/src
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    with-build-ca uv sync --frozen --no-dev --no-editable --package tunefleet-worker

FROM build-base AS build-collector
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    with-build-ca uv sync --frozen --no-dev --no-install-workspace --package tunefleet-collector
COPY libs/contract/src libs/contract/src
COPY libs/runtime/src libs/runtime/src
COPY services/collector/src services/collector/src
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    with-build-ca uv sync --frozen --no-dev --no-editable --package tunefleet-collector

FROM build-base AS build-client
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    with-build-ca uv sync --frozen --no-dev --no-install-workspace --package tunefleet --extra client
COPY libs/contract/src libs/contract/src
COPY libs/runtime/src libs/runtime/src
COPY libs/tunefleet/src libs/tunefleet/src
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    with-build-ca uv sync --frozen --no-dev --no-editable --package tunefleet --extra client

# ---- runtime: the same slim base, no uv, no sources, a non-root user ----------------------
FROM ${PYTHON_IMAGE} AS runtime
# libgomp1: the OpenMP runtime XGBoost and LightGBM link against (absent from slim images).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tunefleet \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin tunefleet
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
WORKDIR /app
USER 10001:10001
EXPOSE 9100

FROM runtime AS publisher
# Root-owned code; the Tilt dev loop passes 10001:10001 so that live_update can sync into it.
ARG VENV_OWNER=0:0
COPY --from=build-publisher --chown=${VENV_OWNER} /app/.venv /app/.venv
CMD ["python", "-m", "tunefleet_publisher"]

FROM runtime AS collector
# Root-owned code; the Tilt dev loop passes 10001:10001 so that live_update can sync into it.
ARG VENV_OWNER=0:0
COPY --from=build-collector --chown=${VENV_OWNER} /app/.venv /app/.venv
CMD ["python", "-m", "tunefleet_collector"]

FROM runtime AS worker
# Root-owned code; the Tilt dev loop passes 10001:10001 so that live_update can sync into it.
ARG VENV_OWNER=0:0
COPY --from=build-worker --chown=${VENV_OWNER} /app/.venv /app/.venv
CMD ["python", "-m", "tunefleet_worker"]

FROM runtime AS client
# The `tunefleet` CLI and Python API (the compose demo runs `tunefleet submit` with it), and the
# dashboard (`tunefleet dashboard`: compose's dashboard service, k8s/base/dashboard.yaml).
# Root-owned code; the Tilt dev loop passes 10001:10001 so that live_update can sync into it.
ARG VENV_OWNER=0:0
COPY --from=build-client --chown=${VENV_OWNER} /app/.venv /app/.venv
EXPOSE 8765
CMD ["tunefleet", "--help"]

# ---- test: the whole suite with dev tools, for `docker compose --profile test` ------------
FROM build-base AS build-test
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    with-build-ca uv sync --frozen --no-install-workspace
COPY libs libs
COPY services services
COPY examples examples
COPY loadtest loadtest
COPY tests tests
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    with-build-ca uv sync --frozen

# On the runtime stage, as the services: its libgomp1 and user; the workspace is installed
# editable, so the sources stay where the venv points (/src).
FROM runtime AS test
COPY --from=build-test /src /src
COPY --from=build-test /app/.venv /app/.venv
WORKDIR /src
# The end-to-end suite against the compose services (`make compose-test`), but the tests that
# need programs of the host rather than the broker and the store (marked `host`).
CMD ["pytest", "-q", "-ra", "-p", "no:cacheprovider", "-m", "not host", "tests/e2e"]
