# Deployment: compose on a laptop, Tilt on kind, GKE. docs/deploy.md walks through all three.
.PHONY: k8s-credentials images kind-install dev dev-down test-cluster \
	cluster-demo gke-vars gke-release deploy-gke scale status teardown test-deploy release-tag

KUBECTL ?= kubectl
DOCKER ?= docker
GCLOUD ?= gcloud
KIND_CLUSTER ?= tunefleet
K8S_NAMESPACE ?= tunefleet
# deploy-gke: where the images go and which cluster gets them.
PROJECT ?=
REGISTRY ?=
CLUSTER ?= tunefleet
LOCATION ?= europe-west4-a
# The image tag: the commit, and for a tree with changes (tracked or not) the commit plus a hash
# of them, so that different code never goes out under a tag already used (the same changes
# give the same tag). Computed on first use only (make test and make demo never pay for it),
# then kept: the recursive variable replaces itself with its value.
GIT_TAG_COMMAND = c=$$(git rev-parse --short=12 HEAD 2>/dev/null) || exit 0; \
	if [ -n "$$(git status --porcelain --untracked-files=normal 2>/dev/null)" ]; then \
		d=$$({ git diff HEAD --binary; git ls-files -z --others --exclude-standard | \
			xargs -0r sha256sum; } 2>/dev/null | sha256sum | cut -c1-10); \
		echo "$$c-dirty-$$d"; \
	else echo "$$c"; fi
TAG ?= $(eval TAG := $(shell $(GIT_TAG_COMMAND)))$(TAG)
KEDA ?=
# What deploy-gke applies: k8s/gke, k8s/gke-keda (KEDA=1) or k8s/gke-production.
OVERLAY ?= $(if $(KEDA),gke-keda,gke)
# gke-production only: the address range(s) of the MongoDB outside the cluster, comma-separated.
MONGODB_CIDR ?=
# make dev: a local cluster, where .env.example's passwords are accepted.
LOCAL_CLUSTER ?=
# GKE nodes are x86-64; building on an ARM laptop must still produce amd64 images.
PLATFORM ?= linux/amd64
# Where gke-release writes; the overlays include k8s/release.
RELEASE_DIR ?= k8s/release
# What deploy-gke waits for. gke-production's broker is the RabbitMQ cluster operator's, which
# rolls it out in its own time (`kubectl -n tunefleet get rabbitmqcluster rabbitmq`).
ROLLOUTS = $(if $(filter gke-production,$(OVERLAY)),,statefulset/rabbitmq statefulset/mongodb) \
	deployment/collector deployment/publisher deployment/dashboard
ROLLOUT_TIMEOUT ?= 10m
N ?=

.env:
	@echo "no .env: copy .env.example to .env and set the passwords (openssl rand -hex 24)" >&2
	@exit 2

k8s-credentials: .env ## Write the k8s Secret inputs (git-ignored) from .env (LOCAL_CLUSTER=1: example passwords pass)
	$(UV) run --frozen python deploy/credentials.py $(if $(LOCAL_CLUSTER),--local) .env k8s

images: ## Build the three service images and the client's, which runs the dashboard (TAG=...; REGISTRY=... prefixes them; PLATFORM=linux/amd64); stand-in bases where the official ones cannot be pulled
	$(if $(filter docker,$(DOCKER)),$(UV) run --frozen python -m tunefleet_dev.engine start)
	args=$$($(UV) run --frozen python -m tunefleet_dev.images build-args --docker '$(DOCKER)') && \
	for s in publisher worker collector client; do \
		DOCKER_BUILDKIT=1 $(DOCKER) build $$args --platform '$(PLATFORM)' --target $$s \
			-t $(if $(REGISTRY),$(REGISTRY)/,)tunefleet-$$s:$(TAG) . || exit 1; \
	done

kind-install: install ## Build what make dev needs where it cannot be had: kind, Tilt, kind's node image, the stand-ins (once, cached)
	$(UV) run --frozen python -m tunefleet_dev.kind install

dev: LOCAL_CLUSTER = 1
dev: k8s-credentials ## Tilt on a local kind cluster (created if missing): live-updating dev loop
	$(UV) run --frozen python -m tunefleet_dev.kind up '$(KIND_CLUSTER)'
	KIND_CLUSTER='$(KIND_CLUSTER)' $(UV) run --frozen python -m tunefleet_dev.kind tilt -- \
		up --context 'kind-$(KIND_CLUSTER)'

dev-down: install ## Stop Tilt's resources and delete the kind cluster
	-KIND_CLUSTER='$(KIND_CLUSTER)' $(UV) run --frozen python -m tunefleet_dev.kind tilt -- \
		down --context 'kind-$(KIND_CLUSTER)'
	$(UV) run --frozen python -m tunefleet_dev.kind down '$(KIND_CLUSTER)'

# Tilt's `tests` and `demo` resources: the cluster's broker and database via port-forwards.
CLUSTER_ENV = set -a && . ./.env && set +a && \
	export RABBITMQ_URL="amqp://$$RABBITMQ_USER:$$RABBITMQ_PASSWORD@127.0.0.1:5672/%2F" \
	MONGODB_URL="mongodb://$$MONGO_USER:$$MONGO_PASSWORD@127.0.0.1:27017/?authSource=admin"

test-cluster: .env ## The integration and e2e tests against the dev cluster (port-forwarded)
	$(CLUSTER_ENV) && CI=true $(UV) run --frozen pytest -q -ra tests/integration tests/e2e

cluster-demo: .env ## Submit the demo study to the dev cluster and follow it
	$(CLUSTER_ENV) && $(UV) run --frozen tunefleet submit examples/demo.yaml --wait

gke-vars: ## Check PROJECT, REGISTRY and TAG (deploy-gke runs it first)
	@test -n '$(PROJECT)' || { echo "deploy-gke: set PROJECT=<gcp project id>" >&2; exit 2; }
	@test -n '$(REGISTRY)' || { echo "deploy-gke: set REGISTRY=<region>-docker.pkg.dev/<project>/<repo>" >&2; exit 2; }
	@test -n '$(TAG)' || { echo "deploy-gke: set TAG=<image tag> (no git commit to default to)" >&2; exit 2; }

release-tag: ## Print the image tag deploy-gke uses (the commit, -dirty-<hash> for changes)
	@echo '$(TAG)'

gke-release: gke-vars ## Write k8s/release: the pushed images by digest, the API server's address (MONGODB_CIDR= for gke-production)
	$(UV) run --frozen python deploy/release.py --overlay '$(OVERLAY)' --registry '$(REGISTRY)' \
		--tag '$(TAG)' --docker '$(DOCKER)' --kubectl '$(KUBECTL)' --mongodb-cidr '$(MONGODB_CIDR)' \
		--out '$(RELEASE_DIR)'

deploy-gke: gke-vars k8s-credentials ## Build, push and deploy to GKE (PROJECT=... REGISTRY=... [TAG=] [KEDA=1] [OVERLAY=gke-production MONGODB_CIDR=])
	$(GCLOUD) container clusters get-credentials '$(CLUSTER)' --location '$(LOCATION)' --project '$(PROJECT)'
	$(MAKE) images REGISTRY='$(REGISTRY)' TAG='$(TAG)'
	for s in publisher worker collector client; do $(DOCKER) push '$(REGISTRY)'/tunefleet-$$s:'$(TAG)' || exit 1; done
	$(MAKE) gke-release TAG='$(TAG)'
	$(KUBECTL) apply --server-side --field-manager=tunefleet --force-conflicts -k k8s/$(OVERLAY)
	for r in $(ROLLOUTS); do \
		$(KUBECTL) -n $(K8S_NAMESPACE) rollout status $$r --timeout=$(ROLLOUT_TIMEOUT) || exit 1; \
	done

scale: ## Set the number of workers in the current cluster: make scale N=40
	@test -n '$(N)' || { echo "scale: set N=<workers>, e.g. make scale N=40" >&2; exit 2; }
	$(KUBECTL) -n $(K8S_NAMESPACE) scale deployment/worker --replicas='$(N)'

teardown: ## Delete what deploy-gke applied but the data: the namespace and its volume claims stay
	$(KUBECTL) delete -k k8s/$(OVERLAY) --selector='tunefleet.io/teardown!=keep' --ignore-not-found

status: ## Pods, workers ready, queue depths (current cluster)
	$(KUBECTL) -n $(K8S_NAMESPACE) get pods -o wide
	$(KUBECTL) -n $(K8S_NAMESPACE) get deployment/worker
	$(KUBECTL) -n $(K8S_NAMESPACE) exec $(if $(filter gke-production,$(OVERLAY)),statefulset/rabbitmq-server,statefulset/rabbitmq) -- \
		rabbitmqctl list_queues name messages_ready messages_unacknowledged consumers

test-deploy: install ## Static deployment checks only (kustomize, schemas, policies, contract, Tilt, compose, hadolint)
	$(UV) run --frozen pytest -q tests/deploy
