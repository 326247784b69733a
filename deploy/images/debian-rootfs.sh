#!/bin/sh
# The root filesystem of tunefleet-local/debian, the stand-ins' base: a minimal Debian made with
# debootstrap, trimmed as Debian's own slim images are (no documentation, no apt caches).
#   debian-rootfs.sh SUITE ROOTFS MIRROR SOURCES     (tunefleet_dev.images runs it as root)
# SOURCES: the apt sources the image keeps (deb822), those of the machine that built it.
set -eu
suite=$1 rootfs=$2 mirror=$3 sources=$4
debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >/dev/null
rm -f "$rootfs/etc/apt/sources.list"
cp "$sources" "$rootfs/etc/apt/sources.list.d/debian.sources"
# As the official debian images: apt keeps no package files or caches in a layer, no
# translations; dpkg installs no documentation.
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'CONF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CONF
echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'CONF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
CONF
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
    "$rootfs"/usr/share/info/*
