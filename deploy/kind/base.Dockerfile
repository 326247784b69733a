# kind's node base image (kindest/base, the kind module's images/base) where Docker Hub cannot be
# reached: the same files (copied from the kind module into the build context by
# tunefleet_dev.kindimage) and the same packages, on the Debian base of the other stand-ins.
# kind compiles containerd, runc and the CNI plugins from their repositories at build time; here
# they are Debian's packages (containerd 1.6, runc 1.1, containernetworking-plugins 1.1), and
# crictl is built from its Go module (tunefleet_dev.kindimage). kind's fuse-overlayfs snapshotter
# (rootless only) and the packages of storage e2e tests (nfs, iscsi) are left out.
ARG DEBIAN_IMAGE=tunefleet-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Debian's current packages of the suite (unpinned, as the other stand-ins: a point release
# replaces the old version in the archive, and the image must still build).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        systemd \
        conntrack iptables nftables iproute2 ethtool util-linux mount kmod \
        libseccomp2 pigz \
        bash ca-certificates curl jq procps \
        containerd runc containernetworking-plugins \
    && rm -rf /var/lib/apt/lists/* /var/log/* \
    && find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete \
    && rm -f /lib/systemd/system/multi-user.target.wants/* \
        /etc/systemd/system/*.wants/* \
        /lib/systemd/system/local-fs.target.wants/* \
        /lib/systemd/system/sockets.target.wants/*udev* \
        /lib/systemd/system/sockets.target.wants/*initctl* \
        /lib/systemd/system/basic.target.wants/* \
    && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \
    && ln -sf /usr/lib/systemd/systemd /sbin/init \
    && mkdir -p /opt/cni/bin /etc/kubernetes/manifests \
    && for plugin in host-local loopback ptp portmap bridge; do \
        ln -s "/usr/lib/cni/$plugin" "/opt/cni/bin/$plugin"; done \
    && ln -s /usr/bin/containerd /usr/local/bin/containerd
# kind's own files (entrypoint, systemd units, containerd configuration, kubelet drop-ins), with
# kind's modes: scripts 0755, the rest 0644 (set in the build context).
COPY files/ /
COPY crictl /usr/local/bin/crictl
# As kind's base: containerd's base runtime spec with kind's product-files hook and no rlimits.
RUN ctr oci spec \
        | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
        | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \
    && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \
    && systemctl mask systemd-binfmt.service \
    && containerd --version && runc --version && crictl --version
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
