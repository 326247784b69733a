"""Adaptive search (issue 14): tunefleet's TPE and ASHA against Optuna's and Ray Tune's, side by
side in one run, on two datasets, medians over several seeds.

`make bench-adaptive` / `uv run --group peers python -m bench.adaptive [--quick] [--seeds N]
[--asha-seeds N]`.

- TPE: tunefleet's `tpe` strategy and Optuna's `TPESampler` (`study.optimize(n_jobs=2)`) on the
  same space, trial budget, folds and scorer; best score and wall time per seed.
- ASHA: tunefleet's `asha` strategy, Optuna's `SuccessiveHalvingPruner` and Ray Tune's
  `ASHAScheduler` on the same space, rungs and number of evaluations, against the full search
  (a large random search of the same space at the top rung's rounds, through tunefleet, once
  per dataset): the best score's gap to the full search's, and compute (sum of fit seconds)
  and wall time as fractions of the full search's.

tunefleet runs as a fresh pipeline per study (publisher, collector, 2 workers x 1 thread on the
local RabbitMQ and FerretDB), timed from `submit` to the collector's write of the last result;
each peer in a fresh process (`bench.adaptive_peers`), its workers started before the clock. The
order of the sides rotates from one seed to the next. The numbers go to docs/benchmarks.md
(section "Adaptive search"); `--quick` writes to .tunefleet/benchmarks-quick.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tunefleet_contract.search.kinds.asha import ASHASpec
from tunefleet_contract.search.kinds.tpe import TPESpec
from tunefleet_contract.spec import StudySpec
from tunefleet_dev.devservices import Services
from tunefleet_runtime.validation import parse_spec

from bench import common
from bench.adaptive_peers import LABELS
from bench.budget import Evaluation, Outcome, fraction, relative_gap, rung_counts
from bench.common import CORES, Spread, in_fresh_process, run_study, services_up, table
from bench.peers import installed
from bench.studies import (
    ADAPTIVE_DATASETS,
    TPE_SPACE,
    asha_space,
    asha_spec,
    reference_spec,
    tpe_spec,
)

TUNEFLEET = f"tunefleet, {CORES} workers x 1 thread"
GAP_BAR, FRACTION_BAR = 0.002, 0.25
# The peers of each comparison, by the tool they need (`bench.peers.installed`).
TPE_PEERS = {"optuna-tpe": "optuna"}
ASHA_PEERS = {"optuna-sha": "optuna", "ray-asha": "ray"}


@dataclass
class Results:
    """Every side's outcome per dataset and seed, and the full search's per dataset."""

    tpe: dict[str, dict[str, list[Outcome]]] = field(default_factory=dict)  # data -> side -> seeds
    asha: dict[str, dict[str, list[Outcome]]] = field(default_factory=dict)
    full: dict[str, Outcome] = field(default_factory=dict)
    specs: dict[str, StudySpec] = field(default_factory=dict)  # "tpe", "asha", "full" (seed 0)
    data: dict[str, dict[str, Any]] = field(default_factory=dict)  # dataset -> its spec


def _tunefleet(services: Services, spec: dict[str, Any]) -> Outcome:
    study = parse_spec(spec)
    ran = run_study(services, spec, study.n_trials())
    (library, part), *_ = study.search.items()
    asha = part.adaptive
    rounds = asha.rounds_param(library) if isinstance(asha, ASHASpec) else None
    evaluations = tuple(
        Evaluation(d["params"][rounds] if rounds else None, d["score"], d["fit_time_s"])
        for d in ran["docs"]
    )
    return Outcome(evaluations, ran["wall_s"])


def _peer(side: str, spec: dict[str, Any]) -> Outcome:
    ran = in_fresh_process("bench.adaptive_peers", side, spec)
    return Outcome(tuple(Evaluation(*row) for row in ran["evaluations"]), ran["wall_s"])


def _sides(
    services: Services, sides: Sequence[str], spec: dict[str, Any], turn: int
) -> dict[str, Outcome]:
    """Each side's outcome on one spec, in an order that rotates with `turn`."""
    order = [*sides[turn % len(sides) :], *sides[: turn % len(sides)]]
    n_trials = parse_spec(spec).n_trials()
    got: dict[str, Outcome] = {}
    for side in order:
        got[side] = _tunefleet(services, spec) if side == "tunefleet" else _peer(side, spec)
        if len(got[side].evaluations) != n_trials:
            raise RuntimeError(
                f"{side} made {len(got[side].evaluations)} of {n_trials} evaluations"
            )
    return got


def measure(seeds: int, asha_seeds: int, quick: bool) -> Results:
    results = Results()
    tpe_sides = ["tunefleet", *(s for s, tool in TPE_PEERS.items() if installed(tool))]
    asha_sides = ["tunefleet", *(s for s, tool in ASHA_PEERS.items() if installed(tool))]
    with services_up() as services:
        for dataset in ADAPTIVE_DATASETS:
            results.data[dataset] = tpe_spec(dataset, 0, quick)["dataset"]
            results.specs.setdefault("tpe", parse_spec(tpe_spec(dataset, 0, quick)))
            results.specs.setdefault("asha", parse_spec(asha_spec(dataset, 0, quick)))
            results.specs.setdefault("full", parse_spec(reference_spec(dataset, quick)))
            tpe = results.tpe.setdefault(dataset, {})
            for seed in range(seeds):
                for side, outcome in _sides(
                    services, tpe_sides, tpe_spec(dataset, seed, quick), seed
                ).items():
                    tpe.setdefault(side, []).append(outcome)
                common.progress(f"{dataset} tpe seed {seed}", {s: o[-1] for s, o in tpe.items()})
            results.full[dataset] = _tunefleet(services, reference_spec(dataset, quick))
            common.progress(f"{dataset} full search", {"tunefleet": results.full[dataset]})
            asha = results.asha.setdefault(dataset, {})
            for seed in range(asha_seeds):
                for side, outcome in _sides(
                    services, asha_sides, asha_spec(dataset, seed, quick), seed
                ).items():
                    asha.setdefault(side, []).append(outcome)
                common.progress(f"{dataset} asha seed {seed}", {s: o[-1] for s, o in asha.items()})
    return results


def _label(side: str) -> str:
    return TUNEFLEET if side == "tunefleet" else LABELS[side]


def _space(space: dict[str, Any]) -> str:
    return ", ".join(
        f"{name} {next(iter(d))} {next(iter(d.values()))}" for name, d in space.items()
    )


def _tpe_table(outcomes: dict[str, list[Outcome]]) -> str:
    rows = [
        [
            _label(side),
            Spread.of([o.best for o in runs]).fmt(4),
            Spread.of([o.wall_s for o in runs]).fmt(1),
            Spread.of([o.fit_s for o in runs]).fmt(1),
        ]
        for side, runs in outcomes.items()
    ]
    text = table(["side", "best score", "wall time, s", "fit seconds"], rows)
    if "optuna-tpe" in outcomes:
        pairs = list(zip(outcomes["tunefleet"], outcomes["optuna-tpe"], strict=True))
        diff = Spread.of([tf.best - op.best for tf, op in pairs])
        speed = Spread.of([op.wall_s / tf.wall_s for tf, op in pairs])
        wins = sum(tf.best >= op.best for tf, op in pairs)
        text += (
            f"\n\nPer seed, tunefleet's best minus Optuna's: {diff.fmt(4)} (tunefleet at least as "
            f"good in {wins} of {len(pairs)} seeds); Optuna's wall time over tunefleet's: "
            f"**{speed.fmt(2, 'x')}**."
        )
    return text


def _asha_table(outcomes: dict[str, list[Outcome]], full: Outcome, rungs: list[int]) -> str:
    rows = [
        [
            f"full search (the whole grid, every point at {rungs[-1]} rounds), {TUNEFLEET}",
            f"{len(full.evaluations)} at {rungs[-1]}",
            f"{full.best:.4f}",
            "0",
            f"{full.fit_s:.1f}",
            "1",
            f"{full.wall_s:.1f}",
            "1",
        ]
    ]
    for side, runs in outcomes.items():
        counts = [rung_counts(o.evaluations, rungs) for o in runs]
        per_rung = " / ".join(
            f"{statistics.median(c[i] for c in counts):g}" for i in range(len(rungs))
        )
        rows.append(
            [
                _label(side),
                per_rung,
                Spread.of([o.best for o in runs]).fmt(4),
                Spread.of([100 * relative_gap(o.best, full.best) for o in runs]).fmt(2, "%"),
                Spread.of([o.fit_s for o in runs]).fmt(1),
                Spread.of([fraction(o.fit_s, full.fit_s) for o in runs]).fmt(3),
                Spread.of([o.wall_s for o in runs]).fmt(1),
                Spread.of([fraction(o.wall_s, full.wall_s) for o in runs]).fmt(3),
            ]
        )
    header = [
        "side",
        f"evaluations at rungs {' / '.join(map(str, rungs))}",
        "best score",
        "gap to full search",
        "fit seconds",
        "compute fraction",
        "wall time, s",
        "wall fraction",
    ]
    return table(header, rows)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def report(results: Results, seeds: int, asha_seeds: int) -> None:
    tpe, asha, full = results.specs["tpe"], results.specs["asha"], results.specs["full"]
    (tpe_library, tpe_part), *_ = tpe.search.items()
    (asha_library, asha_part), *_ = asha.search.items()
    tpe_search, asha_search = tpe_part.adaptive, asha_part.adaptive
    full_size = full.search[asha_library].grid_size()
    assert isinstance(tpe_search, TPESpec) and isinstance(asha_search, ASHASpec)
    rungs, eta = asha_search.rungs(), asha_search.eta
    data = "; ".join(
        f"{name} `{d['kind']}` {d['n_samples']:,} x {d['n_features']}"
        for name, d in results.data.items()
    )
    sections = [f"### TPE, {name}\n\n{_tpe_table(sides)}" for name, sides in results.tpe.items()]
    sections += [
        f"### ASHA, {name}\n\n{_asha_table(sides, results.full[name], rungs)}"
        for name, sides in results.asha.items()
    ]
    body = f"""
- Data: {data}; 3-fold CV (stratified for the classification), seed 0, on every side;
  scored by the default metric (accuracy, r2). Every side runs on the same {CORES} cores.
- **TPE**: {tpe_library} ({_params(tpe_part.fixed)}), space {_space(TPE_SPACE)};
  {tpe_search.n_trials} trials, the first {tpe_search.n_startup} random. tunefleet's `tpe`
  (max_in_flight {tpe_search.max_in_flight}) against Optuna's
  `TPESampler(seed, n_startup_trials={tpe_search.n_startup}, constant_liar=True)` with
  `study.optimize(n_trials={tpe_search.n_trials}, n_jobs={CORES})` and `cross_validate` on the
  same folds and scorer in its objective. Seeds 0..{seeds - 1} (the sampler's; the folds stay),
  median (min..max).
- **ASHA**: {asha_library} ({_params(asha_part.fixed)}), space {_space(asha_space())};
  `{asha_search.rounds_param(asha_library)}` is the resource, rungs {rungs} (eta {eta}),
  {asha_search.n_trials} evaluations on every side (an evaluation: one configuration at one
  rung's rounds, trained from scratch). tunefleet's `asha`; Optuna's `RandomSampler` with
  `SuccessiveHalvingPruner(min_resource={rungs[0]}, reduction_factor={eta})`, each rung's CV
  score reported at step = rounds; Ray Tune's `ASHAScheduler(time_attr="rounds",
  grace_period={rungs[0]}, max_t={rungs[-1]}, reduction_factor={eta})` over a seeded random
  search. The peers stop at the same number of evaluations. Seeds 0..{asha_seeds - 1}, median
  (min..max).
- The full search: tunefleet's grid of all {full_size} points of that space (every parameter
  is a `choice`: ASHA draws its configurations from the grid), every one at {rungs[-1]} rounds,
  once per dataset. The gap is
  (full best - best) / |full best| (negative: better than the full search), bar
  <= {100 * GAP_BAR:.1f}%. Compute is the sum of fit seconds (tunefleet: the workers'
  `fit_time_s`; the peers: `cross_validate`'s `fit_time`, which also builds the library's
  training set that tunefleet's fold cache may reuse); compute and wall time are fractions of
  the full search's, bar <= {FRACTION_BAR:.2f} for both.

{(chr(10) * 2).join(sections)}
"""
    common.write_section(
        "adaptive",
        "Adaptive search",
        body,
        command=f"uv run --group peers python -m bench.adaptive {' '.join(sys.argv[1:])}".strip(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.adaptive", description=__doc__)
    parser.add_argument("--seeds", type=int, default=5, help="TPE seeds (median, min, max)")
    parser.add_argument("--asha-seeds", type=int, default=3, help="ASHA seeds")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    args = parser.parse_args()
    if args.seeds < 1 or args.asha_seeds < 1:
        parser.error("--seeds and --asha-seeds must be at least 1")
    if args.quick:
        # Quick numbers check the harness; they must not overwrite the published ones.
        common.REPORT = common.REPO / ".tunefleet" / "benchmarks-quick.md"
    report(measure(args.seeds, args.asha_seeds, args.quick), args.seeds, args.asha_seeds)


if __name__ == "__main__":
    main()
