"""`make bench` / `uv run python -m bench [--quick] [--reps N] [BENCHMARK ...]`.

Benchmarks: profile, gridsearch (with efficiency), overhead, submission, footprint, datasets; all by
default. Each writes its section of docs/benchmarks.md. `--quick` runs small versions to check
the harness; its numbers are not the ones to publish.
"""

from __future__ import annotations

import argparse

from bench import common, datasets, footprint, gridsearch, overhead, profile, submission

BENCHMARKS = {
    "profile": profile.run,
    "gridsearch": gridsearch.run,
    "overhead": overhead.run,
    "submission": submission.run,
    "footprint": footprint.run,
    "datasets": datasets.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("benchmarks", nargs="*", metavar="BENCHMARK", help=", ".join(BENCHMARKS))
    parser.add_argument("--reps", type=int, default=3, help="repetitions (median, min, max)")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    args = parser.parse_args()
    unknown = [name for name in args.benchmarks if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    if args.quick:
        # Quick numbers check the harness; they must not overwrite the published ones.
        common.REPORT = common.REPO / ".tunefleet" / "benchmarks-quick.md"
    for name in args.benchmarks or list(BENCHMARKS):
        print(f"== {name}", flush=True)
        BENCHMARKS[name](args.reps, args.quick)


if __name__ == "__main__":
    main()
