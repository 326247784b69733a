# A stand-in for mongo:7 where Docker Hub cannot be reached: FerretDB (a MongoDB wire-protocol
# server on SQLite files; the same version and binary the local dev services use) and the real
# mongosh, laid out as the official image is, so that docker-compose.yml and the manifests use
# it unchanged: user and group 999, data in /data/db, MONGO_INITDB_ROOT_USERNAME/PASSWORD create
# the root user on first start, `mongosh --eval` for the healthchecks and probes.
# Context: a directory holding `ferretdb` (tunefleet_dev.images assembles it).
ARG DEBIAN_IMAGE=tunefleet-local/debian:bookworm

# mongosh needs a newer Node.js than Debian's 18: npm (Debian's) fetches both from the npm
# registry, mongosh and the official Node.js build packaged there (node-linux-<arch>).
FROM ${DEBIAN_IMAGE} AS mongosh
ARG MONGOSH_VERSION
ARG NODE_VERSION
# Only the build stage's tools (unpinned: a point release replaces the old version in the
# archive); mongosh and Node.js themselves are pinned below.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# The CA secret: only where the network inspects TLS (tunefleet_dev.images passes it).
RUN --mount=type=secret,id=ca \
    if grep -qs "BEGIN CERTIFICATE" /run/secrets/ca; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca; fi \
    && case "$(uname -m)" in aarch64) arch=arm64 ;; *) arch=x64 ;; esac \
    && npm install --global --omit=optional --no-audit --no-fund --prefix /opt/mongosh \
        "mongosh@${MONGOSH_VERSION}" \
    && npm install --no-audit --no-fund --prefix /tmp/node "node-linux-${arch}@${NODE_VERSION}" \
    && install -m 0755 "/tmp/node/node_modules/node-linux-${arch}/bin/node" /opt/mongosh/bin/node

FROM ${DEBIAN_IMAGE}
RUN groupadd --system --gid 999 mongodb \
    && useradd --system --uid 999 --gid 999 --home-dir /data/db --shell /usr/sbin/nologin mongodb \
    && mkdir -p /data/db \
    && chown mongodb:mongodb /data/db
COPY --from=mongosh /opt/mongosh /opt/mongosh
COPY ferretdb mongo-entrypoint.sh /usr/local/bin/
ENV PATH=/opt/mongosh/bin:$PATH \
    FERRETDB_HANDLER=sqlite \
    FERRETDB_SQLITE_URL=file:/data/db/ \
    FERRETDB_STATE_DIR=/data/db \
    FERRETDB_LISTEN_ADDR=:27017 \
    FERRETDB_DEBUG_ADDR=127.0.0.1:8088 \
    FERRETDB_TELEMETRY=disable \
    HOME=/tmp
WORKDIR /data/db
VOLUME /data/db
USER 999:999
EXPOSE 27017
ENTRYPOINT ["mongo-entrypoint.sh"]
CMD ["ferretdb"]
