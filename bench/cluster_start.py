"""The local control plane of tests/cluster (deploy/cluster): cold build and warm start.

    uv run python -m bench.cluster_start [--runs 5] [--cold]

Warm start: seconds from nothing running to an API server that admits pods (the default
service account made), with the binaries cached; median, min and max of `--runs` starts.
`--cold` also times `controlplane.py install` with empty Go module, Go build and tunefleet
caches (temporary directories), which is what CI's first `make test` pays. docs/deploy.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deploy.cluster.controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[1]


def warm_starts(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="tunefleet-bench-cluster-") as scratch:
            plane = ControlPlane(Path(scratch))
            started = time.monotonic()
            try:
                plane.start()
                times.append(time.monotonic() - started)
            finally:
                plane.stop()
    return times


def cold_install() -> tuple[float, float]:
    """Wall-clock and CPU (user + system, all build processes) seconds of a build from nothing."""
    with tempfile.TemporaryDirectory(prefix="tunefleet-bench-cold-") as scratch:
        root = Path(scratch)
        env = {
            **os.environ,
            "GOMODCACHE": str(root / "gomod"),
            "GOCACHE": str(root / "gocache"),
            "TUNEFLEET_CACHE": str(root / "tunefleet"),
        }
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        subprocess.run(
            [sys.executable, str(REPO / "deploy/cluster/controlplane.py"), "install"],
            env=env,
            check=True,
        )
        elapsed = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        # The module cache is read-only by design; make it deletable.
        subprocess.run(["chmod", "-R", "u+w", str(root)], check=True)
        return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_start", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="warm starts (median, min, max)")
    parser.add_argument("--cold", action="store_true", help="also time a build from nothing")
    args = parser.parse_args()
    if args.cold:
        wall, cpu = cold_install()
        print(f"cold install: {wall:.0f} s ({cpu:.0f} s of CPU)", flush=True)
    times = warm_starts(args.runs)
    print(
        f"warm start: median {statistics.median(times):.1f} s, "
        f"min {min(times):.1f} s, max {max(times):.1f} s ({len(times)} runs)"
    )


if __name__ == "__main__":
    main()
