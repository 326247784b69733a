"""The images and the compose stack, measured on this machine (docs/deploy.md):

    uv run python -m bench.images [--runs 3] [--cold]

- each image's size (the service images, the client's and the tests', and the bases used);
- build times of every image compose builds (`tunefleet_dev.stack build`): warm (nothing
  changed), and after one service module is edited (a comment added to the worker's package:
  the worker image rebuilds its code layers); with `--cold`, also from an empty BuildKit cache
  (`docker builder prune --all`, which drops the uv download cache mount too, so every wheel
  is fetched again), as a bare machine's first `make test` does once its bases exist;
- `make up` to healthy: `docker compose up --wait` of the built images, from nothing running.
Medians of `--runs`, with min and max. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tunefleet_dev import engine, images
from tunefleet_dev.devservices import free_port
from tunefleet_dev.stack import PORTS, Stack

from bench.common import seconds_row

EDITED = images.ROOT / "services" / "worker" / "src" / "tunefleet_worker" / "__init__.py"


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def size_mb(image: str) -> float:
    out = subprocess.run(
        [engine.docker(), "image", "inspect", "--format", "{{.Size}}", image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out) / 1e6


def edited_rebuild(stack: Stack) -> float:
    original = EDITED.read_text()
    try:
        EDITED.write_text(original + f"\n# bench {uuid.uuid4().hex}\n")
        return timed(stack.build)
    finally:
        EDITED.write_text(original)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true")
    args = parser.parse_args()
    engine.start_daemon()
    with tempfile.TemporaryDirectory(prefix="tunefleet-bench-images-") as tmp:
        env_file = Path(tmp) / "stack.env"
        env_file.write_text(
            "RABBITMQ_USER=bench\nRABBITMQ_PASSWORD=bench1\nMONGO_USER=bench\n"
            "MONGO_PASSWORD=bench2\n" + "".join(f"{p}={free_port()}\n" for p in PORTS)
        )
        stack = Stack(project=f"tfbench{uuid.uuid4().hex[:6]}", env_file=env_file)
        stack.build()  # the bases resolved and everything built once before measuring
        rows = []
        if args.cold:
            cold = []
            for _ in range(args.runs):
                subprocess.run(
                    [engine.docker(), "builder", "prune", "--all", "--force"],
                    capture_output=True,
                    check=True,
                )
                cold.append(timed(stack.build))
            rows.append(seconds_row("cold build, every image (empty BuildKit cache)", cold))
        warm = [timed(stack.build) for _ in range(args.runs)]
        rows.append(seconds_row("warm build, nothing changed", warm))
        rows.append(
            seconds_row(
                "rebuild after editing one worker module",
                [edited_rebuild(stack) for _ in range(args.runs)],
            )
        )
        ups = []
        for _ in range(args.runs):
            try:
                ups.append(timed(stack.up))
            finally:
                stack.down(volumes=True)
        rows.append(seconds_row("`make up` to healthy (built images, nothing running)", ups))

        assert stack.resolution is not None
        used = stack.resolution.images
        names = {
            "tunefleet-worker:0.1.0": "worker",
            "tunefleet-publisher:0.1.0": "publisher (planner)",
            "tunefleet-collector:0.1.0": "collector",
            "tunefleet-client:0.1.0": "client (the compose demo)",
            "tunefleet-test:0.1.0": "tests (`make compose-test`)",
            **{used[v]: f"{v} base" for v in images.VARIABLES},
        }
    print(f"bases: {stack.resolution.summary()}\n")
    print("| | time |\n|---|---|")
    print("\n".join(rows))
    print("\n| image | size |\n|---|---|")
    for image, label in names.items():
        print(f"| {label}: `{image}` | {size_mb(image):,.0f} MB |")


if __name__ == "__main__":
    main()
