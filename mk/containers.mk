# Docker and compose on this machine: `make up` runs the whole system as containers, and
# `make test` runs tests/containers against it. tunefleet_dev.engine installs Docker and its
# plugins when missing and starts a daemon when none answers; tunefleet_dev.images picks the
# official base images or builds local stand-ins (docs/deploy.md).
.PHONY: docker-install up down compose-build compose-demo compose-test

docker-install: install ## Install Docker (Debian's docker.io) and the Compose and Buildx plugins if missing
	$(UV) run --frozen python -m tunefleet_dev.engine install

up: install ## docker compose: check .env and ports, build the images, start broker, database and the pipeline, wait until healthy (WORKERS=3)
	$(UV) run --frozen python -m tunefleet_dev.stack up

down: install ## docker compose: stop everything (volumes stay) and the dockerd `make up` started, if it did
	$(UV) run --frozen python -m tunefleet_dev.stack down

compose-build: install ## docker compose: build every image `make up`, compose-demo and compose-test run
	$(UV) run --frozen python -m tunefleet_dev.stack build

compose-demo: up ## docker compose: run the demo study against the compose pipeline, print the leaderboard
	$(UV) run --frozen python -m tunefleet_dev.stack demo

compose-test: up ## docker compose: the end-to-end suite in the `tests` container against the compose services
	$(UV) run --frozen python -m tunefleet_dev.stack test
