"""`make dev`'s two waits, measured on this machine (docs/deploy.md):

    uv run python -m bench.kind_start [--runs 3]

- `kind up`: `kind create cluster` of the node image (built here where kindest/node cannot
  be pulled; built once before measuring), to every node Ready and CoreDNS available, the
  stand-ins loaded and Tilt's configuration written (what `make dev` does before Tilt);
- `tilt ci` on that cluster: Tilt builds the three service images (warm: the layers cached),
  loads them into kind, deploys k8s/dev and waits until every resource is ready.

Each run makes a cluster of its own and deletes it. Medians of `--runs`, with min and max.
Needs `.env` (as `make dev` does); writes the k8s Secret inputs as `make k8s-credentials
LOCAL_CLUSTER=1` does.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tunefleet_dev import kind
from tunefleet_dev.devservices import free_port
from tunefleet_dev.images import ROOT

from bench.common import seconds_row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not (ROOT / ".env").is_file():
        sys.exit("error: no .env: `cp .env.example .env` (as for `make dev`)")
    subprocess.run(
        [sys.executable, "deploy/credentials.py", "--local", ".env", "k8s"], cwd=ROOT, check=True
    )
    kind.install()  # the node image and the stand-ins built before measuring
    ups: list[float] = []
    tilts: list[float] = []
    with tempfile.TemporaryDirectory(prefix="tunefleet-bench-kind-") as tmp:
        for _ in range(args.runs):
            cluster = kind.Cluster(
                f"tfbench-{uuid.uuid4().hex[:6]}", kubeconfig=Path(tmp) / "kubeconfig"
            )
            config = Path(tmp) / "tilt.json"
            try:
                started = time.monotonic()
                kind.up(cluster, config, {port: free_port() for port in (5672, 15672, 27017)})
                ups.append(time.monotonic() - started)
                _, argv = kind.tilt_command(
                    ["ci", "--context", cluster.context, "--port", "0", "--timeout", "15m"]
                )
                started = time.monotonic()
                result = subprocess.run(
                    argv, cwd=ROOT, env=kind.tilt_env(cluster, config), capture_output=True,
                    text=True, check=False,
                )  # fmt: skip
                if result.returncode != 0:
                    sys.exit(f"error: tilt ci failed:\n{(result.stdout + result.stderr)[-3000:]}")
                tilts.append(time.monotonic() - started)
            finally:
                kind.delete(cluster)
    print("| | time |\n|---|---|")
    print(seconds_row("`kind up` to a ready cluster (node image built, nothing running)", ups))
    print(seconds_row("`tilt ci` on it: images (warm), load, k8s/dev ready", tilts))
    both = [up + ci for up, ci in zip(ups, tilts, strict=True)]
    print(seconds_row("`make dev` to every resource ready (the two)", both))


if __name__ == "__main__":
    main()
