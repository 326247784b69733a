# A stand-in for rabbitmq:3.13-management where Docker Hub cannot be reached: Debian's
# rabbitmq-server (3.10) laid out as the official image is, so that docker-compose.yml and the
# manifests use it unchanged: user and group 999, data and Erlang cookie in /var/lib/rabbitmq,
# configuration from /etc/rabbitmq/conf.d, RABBITMQ_DEFAULT_USER/PASS, the management plugin on
# 15672, logs on the console (nothing written outside the data directory and /tmp, so it
# runs with a read-only root filesystem), rabbitmq-diagnostics for healthchecks and probes.
ARG DEBIAN_IMAGE=tunefleet-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
# Debian's current rabbitmq-server of the suite (unpinned: a point release replaces the old
# version in the archive, and the stand-in must still build).
# hadolint ignore=DL3008
RUN groupadd --system --gid 999 rabbitmq \
    && useradd --system --uid 999 --gid 999 --home-dir /var/lib/rabbitmq \
        --shell /usr/sbin/nologin rabbitmq \
    && apt-get update \
    && apt-get install -y --no-install-recommends rabbitmq-server \
    && rm -rf /var/lib/apt/lists/* /var/lib/rabbitmq/* /var/log/rabbitmq/* /etc/rabbitmq/* \
    && mkdir -p /etc/rabbitmq/conf.d \
    && printf '%s\n' 'loopback_users.guest = false' 'listeners.tcp.default = 5672' \
        'management.tcp.port = 15672' > /etc/rabbitmq/conf.d/10-defaults.conf \
    && printf '%s\n' '[rabbitmq_management,rabbitmq_prometheus].' > /etc/rabbitmq/enabled_plugins \
    && chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
# The server's own scripts, not Debian's /usr/sbin wrappers (which switch user with su).
ENV PATH=/usr/lib/rabbitmq/bin:$PATH \
    HOME=/var/lib/rabbitmq \
    RABBITMQ_LOGS=- \
    RABBITMQ_UPGRADE_LOG=- \
    ERL_CRASH_DUMP=/tmp/erl_crash.dump \
    LANG=C.UTF-8
WORKDIR /var/lib/rabbitmq
VOLUME /var/lib/rabbitmq
USER 999:999
EXPOSE 5672 15672
CMD ["rabbitmq-server"]
