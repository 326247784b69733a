"""`make bench` / `uv run --group peers python -m bench [--quick] [--reps N] [BENCHMARK ...]`.

Benchmarks: profile, gridsearch (GridSearchCV on benchmark 1's grid, with efficiency), peers
(every peer on a realistic grid), overhead, submission, footprint, datasets, preemption,
preemption-storm, round-checkpoints; all by default.
Each writes its section of docs/benchmarks.md. `--quick` runs small versions to check the
harness; its numbers are not the ones to publish. The peers (Optuna, Ray Tune) come from the
`peers` dependency group; without it they are reported as not installed.
"""

from __future__ import annotations

import argparse

from bench import (
    common,
    datasets,
    footprint,
    gridsearch,
    overhead,
    preemption,
    profile,
    round_checkpoints,
    storm,
    submission,
)

BENCHMARKS = {
    "profile": profile.run,
    "gridsearch": gridsearch.run,
    "peers": gridsearch.run_peers,
    "overhead": overhead.run,
    "submission": submission.run,
    "footprint": footprint.run,
    "datasets": datasets.run,
    "preemption": preemption.run,
    "preemption-storm": storm.run,
    "round-checkpoints": round_checkpoints.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("benchmarks", nargs="*", metavar="BENCHMARK", help=", ".join(BENCHMARKS))
    parser.add_argument("--reps", type=int, default=3, help="repetitions (median, min, max)")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    parser.add_argument(
        "--once",
        default="",
        metavar="SIDE,...",
        help="peers to run in the first repetition only (e.g. gridsearch-1x2,ray)",
    )
    args = parser.parse_args()
    unknown = [name for name in args.benchmarks if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    gridsearch.ONCE = frozenset(filter(None, args.once.split(",")))
    if args.quick:
        # Quick numbers check the harness; they must not overwrite the published ones.
        common.REPORT = common.REPO / ".tunefleet" / "benchmarks-quick.md"
    for name in args.benchmarks or list(BENCHMARKS):
        print(f"== {name}", flush=True)
        BENCHMARKS[name](args.reps, args.quick)


if __name__ == "__main__":
    main()
