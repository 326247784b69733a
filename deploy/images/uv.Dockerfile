# A stand-in for ghcr.io/astral-sh/uv where ghcr.io cannot be reached: the same binaries, from
# the uv wheel on PyPI, in an image laid out as the official one (/uv, /uvx, nothing else).
# The musllinux wheel: its binaries are static, as the official image's are, so they run from
# scratch and in any base.
ARG PYTHON_IMAGE=tunefleet-local/python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE} AS wheel
ARG UV_VERSION
# The CA secret: only where the network inspects TLS (tunefleet_dev.images passes it).
RUN --mount=type=secret,id=ca \
    if grep -qs "BEGIN CERTIFICATE" /run/secrets/ca; then export PIP_CERT=/run/secrets/ca; fi \
    && python -m venv /tmp/pip \
    && /tmp/pip/bin/pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --platform "musllinux_1_1_$(uname -m)" --dest /tmp/wheel \
        "uv==${UV_VERSION}" \
    && python -m zipfile -e /tmp/wheel/uv-*.whl /tmp/unpacked \
    && mkdir /out \
    && install -m 0755 /tmp/unpacked/uv-*.data/scripts/uv /tmp/unpacked/uv-*.data/scripts/uvx /out/

FROM scratch
COPY --from=wheel /out/ /
ENTRYPOINT ["/uv"]
