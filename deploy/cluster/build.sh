#!/usr/bin/env bash
# Builds one of the local control plane's tools from the Go module proxy into DIR, which the
# caller keys by version (~/.cache/tunefleet/kube/<tool>-<version>): a version bump rebuilds,
# an unchanged one is reused as is.
#   build.sh kubernetes v1.31.14 DIR   kube-apiserver, kube-controller-manager, kube-scheduler
#   build.sh kwok v0.8.0 DIR           kwok (fake nodes and pod status) and its stages
#   build.sh tilt v0.33.21 DIR         tilt (to evaluate the Tiltfile)
#   build.sh keda v2.16.1 DIR          KEDA's CustomResourceDefinitions (nothing to compile)
#   build.sh gmp v0.13.1 DIR           GKE managed Prometheus's PodMonitoring CRD
#   build.sh rabbitmq-operator v2.12.1 DIR   the RabbitMQ cluster operator's RabbitmqCluster CRD
#   build.sh kubernetes-node v1.31.14 DIR    kubelet, kubeadm, kubectl, kube-proxy (kind's node
#                                            image, deploy/kind): the same scratch module and Go
#                                            build cache as `kubernetes`, so only what they add
#                                            is compiled
set -euo pipefail

tool=$1 version=$2 final=$(realpath -m "$3")
# Built beside the cache entry and renamed into it at the end: an interrupted build leaves no
# entry that looks complete.
out=$final.partial
rm -rf "$out"
mkdir -p "$out"
# Two cores are shared with everything else on a CI runner: compile two packages at a time.
build_flags=(-p "${BUILD_JOBS:-2}" -trimpath)
export GOWORK=off

module_dir() { # The module's source in the module cache, downloaded (and verified) if missing.
	GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

# k8s.io/kubernetes is not meant to be imported: its go.mod replaces every k8s.io staging module
# with a directory of its own tree, which a dependent module never sees. A scratch module that
# replaces each of them with the published v0.<minor>.<patch> of the same release builds the
# same code (the staging modules are published from those very directories). Both Kubernetes
# targets build in the same scratch module, so the Go build cache serves one to the other.
kube_module() { # kube_module VERSION WORKDIR IMPORT...
	local version=$1 work=$2 staging=v0.${1#v1.} mod m patch
	shift 2
	mod=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$version" |
		sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
	{
		echo "module tunefleet.local/kube-build"
		grep '^go ' "$mod"
		echo "require k8s.io/kubernetes $version"
		# The proxy refuses a few modules' newest patch ("This module version is not available"):
		# those take the closest earlier patch of the same minor release.
		for m in $(sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$mod"); do
			patch=${staging##*.}
			until GOFLAGS=-mod=mod go mod download "$m@${staging%.*}.$patch" 2>/dev/null; do
				((patch-- > 0)) || { echo "no published version of $m for $version" >&2; exit 1; }
			done
			echo "replace $m => $m ${staging%.*}.$patch"
		done
	} >"$work/go.mod"
	{
		printf 'package main\n\nimport (\n'
		for m in "$@"; do printf '\t_ "%s"\n' "$m"; done
		printf ')\n\nfunc main() {}\n'
	} >"$work/main.go"
	(cd "$work" && GOFLAGS=-mod=mod go mod tidy)
}

kube_ldflags() {
	local pkg=k8s.io/component-base/version minor
	minor=$(cut -d. -f2 <<<"$1")
	echo "-s -w -X $pkg.gitVersion=$1 -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
}

case $tool in
kubernetes)
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	kube_module "$version" "$work" k8s.io/kubernetes/cmd/kube-apiserver/app
	cd "$work"
	GOFLAGS=-mod=mod go build "${build_flags[@]}" -ldflags "$(kube_ldflags "$version")" -o "$out/" \
		k8s.io/kubernetes/cmd/kube-apiserver \
		k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler
	;;
kubernetes-node)
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	kube_module "$version" "$work" k8s.io/kubernetes/cmd/kube-apiserver/app \
		k8s.io/kubernetes/cmd/kubelet/app k8s.io/kubernetes/cmd/kubeadm/app \
		k8s.io/kubectl/pkg/cmd k8s.io/kubernetes/cmd/kube-proxy/app
	cd "$work"
	GOFLAGS=-mod=mod go build "${build_flags[@]}" -ldflags "$(kube_ldflags "$version")" -o "$out/" \
		k8s.io/kubernetes/cmd/kubelet \
		k8s.io/kubernetes/cmd/kubeadm \
		k8s.io/kubernetes/cmd/kubectl \
		k8s.io/kubernetes/cmd/kube-proxy
	;;
kwok)
	GOBIN=$out GOFLAGS=-mod=mod go install "${build_flags[@]}" -ldflags "-s -w" \
		"sigs.k8s.io/kwok/cmd/kwok@$version"
	# The stages (what KWOK does to a node or pod, and when) that its own releases ship.
	src=$(module_dir "sigs.k8s.io/kwok@$version")/kustomize/stage
	for stage in node/fast node/heartbeat-with-lease pod/fast; do
		mkdir -p "$out/stages/$stage"
		cp "$src/$stage"/*.yaml "$out/stages/$stage/"
		rm -f "$out/stages/$stage/kustomization.yaml"
	done
	;;
tilt)
	# `go install .../cmd/tilt@version` stops at the proxy's refusal to list the module's
	# versions (it looks for a deprecation notice), but the module downloads. Its go.mod replaces
	# some dependencies, which only counts in the main module: build in a copy of it (a module
	# zip carries no vendor/ tree, so the dependencies come from the proxy too).
	work=$(mktemp -d)
	trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
	cp -r "$(module_dir "github.com/tilt-dev/tilt@$version")" "$work/tilt"
	chmod -R u+w "$work/tilt"
	rm -rf "$work/tilt/vendor"
	cd "$work/tilt"
	# Tilt's browser UI is a React build that its release process embeds (pkg/assets/build);
	# the module holds none, and without one Tilt refuses to start (`tilt up`, `tilt ci`). Its
	# build needs about a gigabyte of npm packages: a page of our own is embedded instead, and
	# Tilt runs with --web-mode=prod (tunefleet_dev.kind); the terminal, `tilt get` and `tilt
	# logs` are Tilt's own.
	cat >pkg/assets/build/index.html <<'HTML'
<!doctype html><meta charset="utf-8"><title>Tilt</title>
<p>This Tilt was built from its Go module without its browser UI (docs/deploy.md).
<p>In a terminal: <code>tilt get uiresources</code>, <code>tilt logs -f</code>,
<code>tilt trigger RESOURCE</code>; <code>make dev</code> streams every log.
HTML
	GOFLAGS=-mod=mod go build "${build_flags[@]}" -ldflags "-s -w" -o "$out/tilt" ./cmd/tilt
	cp pkg/assets/build/index.html "$out/web-placeholder.html"
	;;
keda)
	cp "$(module_dir "github.com/kedacore/keda/v2@$version")"/config/crd/bases/keda.sh_*.yaml "$out/"
	;;
gmp)
	cp "$(module_dir "github.com/GoogleCloudPlatform/prometheus-engine@$version")"/charts/operator/crds/monitoring.googleapis.com_podmonitorings.yaml "$out/"
	;;
rabbitmq-operator)
	cp "$(module_dir "github.com/rabbitmq/cluster-operator/v2@$version")"/config/crd/bases/rabbitmq.com_rabbitmqclusters.yaml "$out/"
	;;
*)
	echo "build.sh: unknown tool $tool (kubernetes, kwok, tilt, keda, gmp, rabbitmq-operator)" >&2
	exit 2
	;;
esac
rm -rf "$final"
mv "$out" "$final"
