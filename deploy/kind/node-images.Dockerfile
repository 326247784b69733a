# The images a kind node holds besides kind's own base, where their registries (registry.k8s.io,
# Docker Hub) cannot be reached: each from a binary compiled here (tunefleet_dev.kindimage puts
# them in the build context) or from Debian's packages. One target per image.
ARG DEBIAN_IMAGE=tunefleet-local/debian:bookworm

# kube-apiserver, kube-controller-manager, kube-scheduler: kubeadm's static pods name the
# command. Compiled with cgo, as deploy/cluster builds them, so on a glibc base.
FROM ${DEBIAN_IMAGE} AS kube
ARG BINARY
COPY ${BINARY} /usr/local/bin/

# kube-proxy programs the node's iptables: Debian's iptables and conntrack, and a wrapper that
# picks the backend (legacy or nft) the node already uses, as the official image's
# iptables-wrapper does.
FROM ${DEBIAN_IMAGE} AS kube-proxy
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends iptables conntrack ipset kmod \
    && rm -rf /var/lib/apt/lists/*
COPY iptables-wrapper kube-proxy /usr/local/bin/
RUN for tool in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do \
        ln -sf /usr/local/bin/iptables-wrapper "/usr/local/sbin/$tool"; done

# Static Go binaries (CGO_ENABLED=0) need nothing else.
FROM scratch AS etcd
ENV PATH=/usr/local/bin
COPY etcd /usr/local/bin/

FROM scratch AS coredns
COPY coredns /coredns
EXPOSE 53 53/udp
ENTRYPOINT ["/coredns"]

FROM scratch AS pause
COPY pause /pause
ENTRYPOINT ["/pause"]

FROM scratch AS local-path-provisioner
ENV PATH=/usr/local/bin
COPY local-path-provisioner /usr/local/bin/local-path-provisioner
ENTRYPOINT ["/usr/local/bin/local-path-provisioner"]

# The pod network agent (deploy/kind/cni-agent.sh): routes, CNI configuration, masquerade.
FROM ${DEBIAN_IMAGE} AS cni
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends bash ca-certificates curl jq iproute2 nftables \
    && rm -rf /var/lib/apt/lists/*
COPY cni-agent.sh /usr/local/bin/cni-agent
ENTRYPOINT ["/usr/local/bin/cni-agent"]
