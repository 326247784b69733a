# A stand-in for python:3.11-slim-bookworm where Docker Hub cannot be reached: Debian's own
# Python 3.11 on a Debian base made with debootstrap (tunefleet_dev.images builds both).
ARG DEBIAN_IMAGE=tunefleet-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
ARG PYTHON_VERSION=3.11
# ca-certificates: the official image has them (uv and pip verify TLS against them).
# Debian's current Python 3.11 of the suite, as the Debian base it stands on (unpinned: a
# point release replaces the old version in the archive, and the stand-in must still build).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        "python${PYTHON_VERSION}" "python${PYTHON_VERSION}-venv" ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s "/usr/bin/python${PYTHON_VERSION}" /usr/local/bin/python3 \
    && ln -s "/usr/bin/python${PYTHON_VERSION}" /usr/local/bin/python
ENV LANG=C.UTF-8
CMD ["python3"]
