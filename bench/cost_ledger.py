"""The cost ledger on the real services: what docs/usage.md's `cost` section shows.

    uv run --frozen python -m bench.cost_ledger [SPEC]     (default: examples/budget.yaml)

Starts local services and the three services, two workers (one says it runs on a spot node,
`TUNEFLEET_NODE_POOL=spot`, the other on-demand), submits SPEC with the example prices of
docs/usage.md, waits for it, and prints what `tunefleet status` and `tunefleet cost` print.
Not a benchmark: the figures depend on the machine, the output is the point.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tunefleet_dev.devservices import Pipeline, running

PRICES = "spot=0.0118,on-demand=0.0486"
SPEC = Path("examples") / "budget.yaml"


def tunefleet(*args: str) -> str:
    cli = Path(sys.executable).with_name("tunefleet")
    done = subprocess.run(
        [str(cli), *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "100"}
    )
    return done.stdout + done.stderr


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = Path(args[0]) if args else SPEC
    root = Path(tempfile.mkdtemp(prefix="tunefleet-cost-"))
    isolation = {"TUNEFLEET_NAMESPACE": "cost", "MONGODB_DATABASE": "cost"}
    with running(root / "services") as services:
        os.environ.update({**services.env(), **isolation, "TUNEFLEET_PRICES": PRICES})
        with Pipeline(services, root / "logs", env=isolation) as pipeline:
            pipeline.start("collector")
            pipeline.start("publisher")
            pipeline.start("worker", "worker-1", TUNEFLEET_NODE_POOL="spot")
            pipeline.start("worker", "worker-2", TUNEFLEET_NODE_POOL="on-demand")
            print(f"$ tunefleet submit {spec.name} --wait --json")
            submitted = tunefleet("submit", str(spec), "--wait", "--json")
            print(submitted)
            study = submitted.splitlines()[0].split('"study_id": "')[1].split('"')[0]
            for command in (["status", study], ["cost", study, "-n", "5"]):
                print(f"$ tunefleet {' '.join(command)}")
                print(tunefleet(*command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
