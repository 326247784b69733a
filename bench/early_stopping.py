"""Early stopping (issue 25): a random search whose rounds the validation curve chooses,
against the same search with an `n_estimators` grid (families on) and against Optuna's pruning
callback over `xgb.cv` / `lgb.cv`, side by side in one run, on two datasets, medians over several
seeds.

`make bench-early-stopping` / `uv run --group peers python -m bench.early_stopping [--quick]
[--seeds N] [--library xgboost|lightgbm]`.

Every side evaluates the same configurations of the library at a fixed learning rate: the ones a
tunefleet random search of `bench.studies.ES_SPACE` draws with the seed (`bench.stopping`).

- `es`: tunefleet, `early_stopping: {rounds, max_rounds}`, the rounds chosen per trial by the
  mean validation curve over the folds;
- `es-median`: the same with the median rule across trials (`early_stopping.median`);
- `grid`: tunefleet, each configuration with an `n_estimators` grid over the same range (in 10
  equal steps up to `max_rounds`), families on: one fit per fold at the largest value scores
  them all;
- `optuna-pruning`: Optuna's `XGBoostPruningCallback` / `LightGBMPruningCallback` and
  `MedianPruner` over `xgb.cv` / `lgb.cv` with early stopping (`bench.early_stopping_peers`).

tunefleet runs as a fresh pipeline per study (publisher, collector, 2 workers x 1 thread on the
local RabbitMQ and FerretDB), timed from `submit` to the collector's write of the last result;
the peer in a fresh process, its libraries imported before the clock. The order of the sides
rotates from one seed to the next. The numbers go to docs/benchmarks.md (section "Early
stopping", "Early stopping, LightGBM"); `--quick` writes to .tunefleet/benchmarks-quick.md. The
raw results are saved after every seed, so that `--report-from` can write a cut-short run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

from tunefleet_dev.devservices import Services
from tunefleet_runtime.validation import parse_spec

from bench import common
from bench.common import CORES, Spread, in_fresh_process, run_study, services_up, table
from bench.early_stopping_peers import LABELS
from bench.peers import installed
from bench.stopping import Bars, Run, Trial, bars, grid_spec, paired, random_points
from bench.studies import (
    ADAPTIVE_DATASETS,
    ES_LIBRARIES,
    ES_METRICS,
    ES_SPACE,
    es_rounds,
    es_spec,
)

TUNEFLEET = f"tunefleet, {CORES} workers x 1 thread"
PEERS = {"optuna-pruning": "optuna"}
# Each library's section of docs/benchmarks.md (XGBoost's keeps the name it was first given).
SECTIONS = {
    "xgboost": ("early-stopping", "Early stopping"),
    "lightgbm": ("early-stopping-lightgbm", "Early stopping, LightGBM"),
}


def sides(library: str) -> dict[str, str]:
    """Every side's label in the tables."""
    return {
        "es": f"early stopping, {TUNEFLEET}",
        "es-median": f"early stopping + median rule, {TUNEFLEET}",
        "grid": f"(1) n_estimators grid, families on, {TUNEFLEET}",
        "optuna-pruning": f"(2) {LABELS[library]}",
    }


@dataclass
class Results:
    runs: dict[str, dict[str, list[Run]]] = field(default_factory=dict)  # data -> side -> seeds
    data: dict[str, dict[str, Any]] = field(default_factory=dict)  # dataset -> its spec
    library: str = "xgboost"
    loads: list[float] = field(default_factory=list)  # 1-min load average after each side's run
    trials: int | None = None  # configurations per study (None: the default)

    def to_json(self) -> dict[str, Any]:
        return {
            "library": self.library,
            "loads": self.loads,
            "trials": self.trials,
            "data": self.data,
            "runs": {
                name: {
                    side: [
                        {"wall_s": r.wall_s, "trials": [astuple(t) for t in r.trials]} for r in rs
                    ]
                    for side, rs in sides.items()
                }
                for name, sides in self.runs.items()
            },
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Results:
        runs = {
            name: {
                side: [Run(tuple(Trial(*t) for t in r["trials"]), r["wall_s"]) for r in rs]
                for side, rs in sides.items()
            }
            for name, sides in raw["runs"].items()
        }
        library, loads = raw.get("library", "xgboost"), raw.get("loads", [])
        return cls(runs, raw["data"], library, loads, raw.get("trials"))


def specs(
    dataset: str, seed: int, quick: bool, library: str, trials: int | None = None
) -> dict[str, dict[str, Any]]:
    """Every side's spec for one dataset and seed."""
    es = es_spec(dataset, seed, quick, library=library, n_trials=trials)
    median = es_spec(dataset, seed, quick, median=True, library=library, n_trials=trials)
    points = random_points(parse_spec(es), library)
    grid = grid_spec(es, library, points, "n_estimators", es_rounds(dataset, quick))
    # The peer reads the median rule's settings for its pruner from the spec.
    return {"es": es, "es-median": median, "grid": grid, "optuna-pruning": median}


def _tunefleet(services: Services, side: str, spec: dict[str, Any]) -> Run:
    ran = run_study(services, spec, parse_spec(spec).n_trials())
    # A grid's family trains once per fold, at its largest n_estimators: its member of that
    # many rounds carries the rounds trained, the others none.
    top: dict[str, int] = {}
    for doc in ran["docs"]:
        if "n_estimators" in doc["params"]:
            key = _configuration(doc["params"])
            top[key] = max(top.get(key, 0), doc["params"]["n_estimators"])
    trials = []
    for doc in ran["docs"]:
        stopped = doc.get("early_stopping")
        if stopped:
            trials.append(
                Trial(
                    doc["score"],
                    doc["fit_time_s"],
                    stopped["best_round"],
                    stopped["rounds_trained"],
                    stopped.get("stopped_by") == "median",
                )
            )
        else:  # a grid member: its share of its family's fits (they sum to the fits)
            rounds = doc["params"]["n_estimators"]
            trained = rounds if rounds == top[_configuration(doc["params"])] else 0
            trials.append(Trial(doc["score"], doc["fit_time_s"], rounds, trained))
    return Run(tuple(trials), ran["wall_s"])


def _configuration(params: dict[str, Any]) -> str:
    return repr(sorted((k, v) for k, v in params.items() if k != "n_estimators"))


def _peer(side: str, spec: dict[str, Any]) -> Run:
    ran = in_fresh_process("bench.early_stopping_peers", side, spec)
    return Run(tuple(Trial(*row) for row in ran["trials"]), ran["wall_s"])


def measure(seeds: int, quick: bool, library: str, trials: int | None = None) -> Results:
    results = Results(library=library, trials=trials)
    order = ["es", "es-median", "grid", *(s for s, tool in PEERS.items() if installed(tool))]
    for dataset in ADAPTIVE_DATASETS:
        results.data[dataset] = es_spec(dataset, 0, quick, library=library)["dataset"]
    with services_up() as services:
        # Seed by seed, both datasets in each: a run cut short still has every dataset.
        for seed in range(seeds):
            for dataset in ADAPTIVE_DATASETS:
                runs = results.runs.setdefault(dataset, {})
                spec_of = specs(dataset, seed, quick, library, trials)
                turn = seed % len(order)
                for side in [*order[turn:], *order[:turn]]:
                    spec = spec_of[side]
                    run = _peer(side, spec) if side in PEERS else _tunefleet(services, side, spec)
                    runs.setdefault(side, []).append(run)
                    results.loads.append(os.getloadavg()[0])
                common.progress(f"{dataset} seed {seed}", {s: r[-1] for s, r in runs.items()})
                # A run cut short still leaves its finished seeds for --report-from.
                common.save_json(_raw_name(library), results.to_json())
    return results


def _raw_name(library: str) -> str:
    return SECTIONS[library][0]


def _trained(run: Run) -> float:
    """Rounds trained per fold, summed over the configurations."""
    return float(sum(t.trained or 0 for t in run.trials))


def _yes(met: bool) -> str:
    return "**met**" if met else "**not met**"


def _against_peer(label: str, ours: list[Run], peer: list[Run]) -> str:
    best = paired([r.best for r in ours], [r.best for r in peer])
    wall = [p.wall_s / o.wall_s for o, p in zip(ours, peer, strict=True)]
    fit = [p.fit_s / o.fit_s for o, p in zip(ours, peer, strict=True)]
    return (
        f"- {label[0].upper()}{label[1:]} against (2), per seed: best minus Optuna's "
        f"{Spread.of(best).fmt(4)} (at least as good in {sum(d >= 0 for d in best)} of "
        f"{len(ours)} seeds); Optuna's wall time over {label}'s {Spread.of(wall).fmt(2, 'x')}; "
        f"its fit seconds over {label}'s {Spread.of(fit).fmt(2, 'x')}."
    )


def _bars_line(label: str, verdict: Bars, ours: list[Run], grid: list[Run]) -> str:
    best = statistics.median(r.best for r in ours)
    return (
        f"- {label}: best score within the spread of (1) (median {best:.4f} against (1)'s "
        f"lowest {min(r.best for r in grid):.4f}): {_yes(verdict.within_grid_spread)}; at most "
        f"half of (1)'s fit seconds (median of the per-seed fractions): "
        f"{_yes(verdict.half_grid_fit)}; no worse than (2) (median of the per-seed "
        f"differences): {_yes(verdict.no_worse_than_peer)}; in less wall time than (2) (median "
        f"of the per-seed ratios): {_yes(verdict.faster_than_peer)}."
    )


def _judged_line(alone: Bars, median: Bars | None) -> str:
    """The issue's bars, each judged on its like-for-like side: against (1), which stops no
    trial across trials, early stopping alone; against (2), whose MedianPruner stops trials
    across trials, early stopping + the median rule."""
    peer = (
        f"no worse than (2), judged on early stopping + median rule: "
        f"{_yes(median.no_worse_than_peer)}; in less wall time than (2), judged on early "
        f"stopping + median rule: {_yes(median.faster_than_peer)}"
        if median is not None
        else "against (2): not measured (Optuna is not installed)"
    )
    return (
        f"- **Bars (issue 25)**, each on its like-for-like side: best score within the spread "
        f"of (1), judged on early stopping alone: {_yes(alone.within_grid_spread)}; at most "
        f"half of (1)'s fit seconds, judged on early stopping alone: "
        f"{_yes(alone.half_grid_fit)}; {peer}."
    )


def _dataset_section(name: str, runs: dict[str, list[Run]], library: str) -> str:
    labels = sides(library)
    rows = []
    for side, seeds in runs.items():
        stopped = (
            Spread.of([float(r.stopped) for r in seeds]).fmt(0)
            if side in ("es-median", "optuna-pruning")
            else "-"
        )
        rows.append(
            [
                labels[side],
                Spread.of([r.best for r in seeds]).fmt(4),
                Spread.of([r.fit_s for r in seeds]).fmt(1),
                Spread.of([r.wall_s for r in seeds]).fmt(1),
                Spread.of([_trained(r) for r in seeds]).fmt(0),
                stopped,
            ]
        )
    text = table(
        [
            "side",
            "best score",
            "fit seconds",
            "wall time, s",
            "rounds trained per fold (sum)",
            "trials stopped across trials",
        ],
        rows,
    )
    es, grid = runs["es"], runs["grid"]
    best = [r.best for r in es]
    lines = [
        f"- Early stopping against (1), per seed: best minus the grid's "
        f"{Spread.of(paired(best, [r.best for r in grid])).fmt(4)}; fit seconds over the "
        f"grid's {Spread.of([e.fit_s / g.fit_s for e, g in zip(es, grid, strict=True)]).fmt(3)}"
        f"; rounds trained per fold over the grid's (no load changes it) "
        f"{Spread.of([_trained(e) / _trained(g) for e, g in zip(es, grid, strict=True)]).fmt(3)}"
        f"; wall time over the grid's "
        f"{Spread.of([e.wall_s / g.wall_s for e, g in zip(es, grid, strict=True)]).fmt(3)}."
    ]
    peer = runs.get("optuna-pruning")
    median = runs["es-median"]
    if peer is not None:
        lines.append(_against_peer("early stopping", es, peer))
    lines.append(
        f"- The median rule, per seed against early stopping alone: fit seconds saved "
        f"{Spread.of(paired([r.fit_s for r in es], [r.fit_s for r in median])).fmt(1, ' s')} "
        f"(a fraction "
        f"{Spread.of([1 - m.fit_s / e.fit_s for e, m in zip(es, median, strict=True)]).fmt(3)}"
        f"), its cost in best score (early stopping's minus the rule's) "
        f"{Spread.of(paired(best, [r.best for r in median])).fmt(4)}."
    )
    if peer is not None:
        # Optuna's side stops trials across trials (its MedianPruner): so does this one.
        lines.append(_against_peer("early stopping + median rule", median, peer))
    alone = bars(es, grid, peer)
    with_median = bars(median, grid, peer)
    lines.append(_judged_line(alone, with_median if peer is not None else None))
    lines.append(
        _bars_line(
            "All four bars on early stopping alone (against (2): one stopping rule against two)",
            alone,
            es,
            grid,
        )
    )
    lines.append(
        _bars_line("All four bars on early stopping + median rule", with_median, median, grid)
    )
    return f"### {name}\n\n{text}\n\n" + "\n".join(lines)


def report(results: Results, seeds: int, quick: bool) -> None:
    library = results.library
    spec = es_spec(
        "classification", 0, quick, median=True, library=library, n_trials=results.trials
    )
    part = spec["search"][library]
    stop = part["early_stopping"]
    median = stop["median"]
    limits = {name: es_spec(name, 0, quick, library=library) for name in results.data}
    limit = ", ".join(
        f"{s['search'][library]['early_stopping']['max_rounds']} ({name})"
        for name, s in limits.items()
    )
    grids = "; ".join(f"{name} {es_rounds(name, quick)}" for name in results.data)
    steps = len(es_rounds(next(iter(results.data)), quick))
    n_trials = part["random"]["n_trials"]
    fixed = ", ".join(f"{k} {v}" for k, v in part["fixed"].items())
    space = ", ".join(
        f"{k} {next(iter(v))} {next(iter(v.values()))}" for k, v in ES_SPACE[library].items()
    )
    data = "; ".join(
        f"{name} `{d['kind']}` {d['n_samples']:,} x {d['n_features']} (scored by "
        f"`{ES_METRICS[name]}`)"
        for name, d in results.data.items()
    )
    sections = [_dataset_section(name, runs, library) for name, runs in results.runs.items()]
    loads = (
        f" The 1-minute load average, read after each side's run: median "
        f"{Spread.of(results.loads).fmt(1)}."
        if results.loads
        else ""
    )
    if library == "lightgbm":
        peer_call = (
            f"`lgb.cv(params, lgb.Dataset(X, y), num_boost_round=<the limit>, folds=<the same "
            f"folds>, callbacks=[lgb.early_stopping({stop['rounds']}), "
            f'LightGBMPruningCallback(trial, "<metric>")])` (optuna-integration; the `Dataset` '
            f"made in the objective, as Optuna's LightGBM example does, `num_threads: 1`)"
        )
        metrics = "`binary_error`, `rmse`"
    else:
        peer_call = (
            f"`xgb.cv(params, dtrain, num_boost_round=<the limit>, folds=<the same folds>, "
            f"early_stopping_rounds={stop['rounds']}, "
            f'callbacks=[XGBoostPruningCallback(trial, "test-<metric>")])` (optuna-integration; '
            f"the data in one `DMatrix` built before the clock, `nthread: 1`)"
        )
        metrics = "`error`, `rmse`"
    body = f"""
- Data: {data}; 3-fold CV (stratified for the classification), seed 0, on every side. Every
  side runs on the same {CORES} cores.{loads}
- The search: {library}, {fixed} fixed, a random search
  of {n_trials} configurations of {space}, seeded with the benchmark's seed (0..{seeds - 1});
  every side evaluates the same {n_trials} configurations (those tunefleet's random search
  draws; Optuna's side has them enqueued in that order). Median (min..max) over the seeds.
- **Early stopping**: `early_stopping: {{rounds: {stop["rounds"]}, max_rounds: <the limit>}}`,
  the limit {limit} (above where the validation curves peak: see "What the early-stopping numbers
  say"), the metric the one matching the scorer ({metrics}). **+ median
  rule**: the same with `median: {{warmup: {median["warmup"]}, after_trials:
  {median["after_trials"]}, rounds: {median["rounds"]}}}`.
- **(1)** each configuration with `n_estimators` over the same range in equal steps: {grids}
  ({n_trials} configurations x {steps} values; families on: one fit per fold, at the limit, scores
  a configuration's every value).
- **(2)** Optuna: {peer_call}, the same limit and patience; study
  `MedianPruner(n_startup_trials={median["after_trials"]}, n_warmup_steps={median["warmup"]})`,
  `study.optimize(n_jobs={CORES})`; a trial's score is its best mean over the folds (1 - error,
  -rmse: exact), a pruned trial has none.
- Fit seconds: tunefleet's workers' `fit_time_s` summed over the trials (a grid member carries
  its share of its family's fits; with early stopping the per-round evaluation on each fold's
  validation part is in it); Optuna's, the seconds in each `xgb.cv` (its per-round evaluation
  and the folds' matrices it slices included). Wall time: tunefleet from `submit` to the
  collector's write of the last result, Optuna from `optimize` to its return. "Rounds trained
  per fold" sums the rounds each configuration trained (a grid's family: its largest value).
- The bars (issue 25): early stopping's best score within the spread of (1) (its median at
  least the lowest of (1)'s bests over the seeds) at no more than half of (1)'s fit seconds
  (the median of the per-seed fractions); no worse than (2) (the median of the per-seed
  differences at least 0) in less wall time (the median of the per-seed ratios). Each is judged
  on its like-for-like side: against (1), which stops nothing across trials, early stopping
  alone; against (2), whose MedianPruner stops trials across trials, early stopping + the
  median rule. All four bars on each side are listed too.

{(chr(10) * 2).join(sections)}
"""
    name, title = SECTIONS[library]
    common.write_section(
        name,
        title,
        body,
        command=(
            f"uv run --group peers python -m bench.early_stopping {' '.join(sys.argv[1:])}".strip()
        ),
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.early_stopping", description=__doc__)
    parser.add_argument("--seeds", type=int, default=3, help="seeds (median, min, max)")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    parser.add_argument(
        "--trials",
        type=int,
        help="configurations per study (default: bench.studies.ES_TRIALS, 24; 6 with --quick)",
    )
    parser.add_argument(
        "--library", choices=ES_LIBRARIES, default="xgboost", help="the library every side tunes"
    )
    parser.add_argument(
        "--report-from",
        type=Path,
        metavar="JSON",
        help=(
            "write the section from a run's raw results (what a run saves) instead of measuring;"
            " its header then names this command and the machine's load now"
        ),
    )
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.trials is not None and args.trials < 1:
        parser.error("--trials must be at least 1")
    if args.quick:
        # Quick numbers check the harness; they must not overwrite the published ones.
        common.REPORT = common.REPO / ".tunefleet" / "benchmarks-quick.md"
        common.REPORT.parent.mkdir(parents=True, exist_ok=True)  # raw results go next to it
    if args.report_from:
        results = Results.from_json(json.loads(args.report_from.read_text()))
    else:
        results = measure(args.seeds, args.quick, args.library, args.trials)
        print(f"raw results: {common.save_json(_raw_name(args.library), results.to_json())}")
    report(results, args.seeds, args.quick)


if __name__ == "__main__":
    main()
