"""The adaptive searches a user would run instead of tunefleet's, each as that user would.

Every peer runs in a fresh process (`python -m bench.adaptive_peers SIDE SPEC_JSON OUT_JSON`),
on the spec's dataset, folds and scorer (`bench.peers.load_study`), with the libraries imported
and its workers started before the clock, and writes its wall time and every evaluation
(rounds, mean score, fit seconds). Each objective measures its own fits (`cross_validate`'s
`fit_time`). Every side gets the spec's `n_trials` evaluations (`bench.budget.Budget`), an
evaluation being one configuration at one number of rounds, as a tunefleet trial is.

- `optuna-tpe`: `TPESampler(seed, n_startup_trials, constant_liar=True)`,
  `study.optimize(n_trials, n_jobs=2)` (threads);
- `optuna-sha`: `RandomSampler(seed)` with `SuccessiveHalvingPruner` on the same rungs: the
  objective trains each rung's rounds from scratch and reports its CV score at that step;
- `ray-asha`: Ray Tune's `ASHAScheduler` on the same rungs (`time_attr` = rounds), random
  search seeded, `ray.init(num_cpus=2)`, 1 CPU per trial.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunefleet_contract.search import Choice, IntRange, LogUniform, SearchSpec, Uniform
from tunefleet_contract.search.kinds.asha import ASHASpec
from tunefleet_contract.search.kinds.tpe import TPESpec

from bench.budget import Budget, Evaluation
from bench.common import CORES
from bench.peers import cross_validated, import_libraries, load_study

LABELS = {
    "optuna-tpe": f"Optuna TPESampler (constant liar), n_jobs={CORES}",
    "optuna-sha": f"Optuna RandomSampler + SuccessiveHalvingPruner, n_jobs={CORES}",
    "ray-asha": f"Ray Tune ASHAScheduler, {CORES} CPUs, 1 per trial",
}
Run = Callable[[Any, Any, Any, dict[str, Any]], tuple[float, list[Evaluation]]]


def _adaptive(spec: Any) -> tuple[str, Any, SearchSpec]:
    """The one library of the spec with its part and its adaptive search."""
    (library, part), *more = spec.search.items()
    if more or part.adaptive is None:
        raise ValueError("an adaptive benchmark spec has one library, with tpe or asha")
    return library, part, part.adaptive


def suggest(trial: Any, search: SearchSpec, fixed: dict[str, Any]) -> dict[str, Any]:
    """The parameters an Optuna trial proposes in a tunefleet space: the fixed ones, then each
    parameter of the space whose `when` holds, asked exactly as the planner asks (the same
    Optuna distributions, the same order)."""
    point = dict(fixed)
    for name in search.order():
        dist = search.space[name]
        if dist.holds(point):
            point[name] = dist.suggest(trial, name)
    return point


def _ray_space(search: SearchSpec) -> dict[str, Any]:
    from ray import tune

    space: dict[str, Any] = {}
    for name, dist in search.space.items():
        if dist.when:
            raise ValueError(f"{name}: Ray Tune's random search has no conditional parameters")
        # Ray Tune's vocabulary for each kind (the benchmark's translation, not the planner's).
        match dist:
            case Uniform(uniform=[low, high]):
                space[name] = tune.uniform(low, high)
            case LogUniform(loguniform=[low, high]):
                space[name] = tune.loguniform(low, high)
            case IntRange(integer=[low_i, high_i]):
                # tune.randint's upper bound is exclusive, a spec's inclusive.
                draw = tune.lograndint if dist.log else tune.randint
                space[name] = draw(low_i, high_i + 1)
            case Choice(choice=values):
                space[name] = tune.choice(values)
    return space


def _optuna_tpe(spec: Any, X: Any, y: Any, study: dict[str, Any]) -> tuple[float, list[Evaluation]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    library, part, search = _adaptive(spec)
    assert isinstance(search, TPESpec)
    evaluations: list[Evaluation] = []

    def objective(trial: Any) -> float:
        params = suggest(trial, search, part.fixed)
        score, fit_s = cross_validated(library, params, X, y, study, threads=1)
        evaluations.append(Evaluation(None, score, fit_s))  # list.append is atomic
        return score

    seed = search.seed if search.seed is not None else spec.cv.seed
    sampler = optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=search.n_startup, constant_liar=True
    )
    started = time.perf_counter()
    optuna.create_study(direction="maximize", sampler=sampler).optimize(
        objective, n_trials=search.n_trials, n_jobs=CORES
    )
    return time.perf_counter() - started, evaluations


def _optuna_sha(spec: Any, X: Any, y: Any, study: dict[str, Any]) -> tuple[float, list[Evaluation]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    library, part, search = _adaptive(spec)
    assert isinstance(search, ASHASpec)
    rounds_name, rungs = search.rounds_param(library), search.rungs()
    budget = Budget(search.n_trials)
    evaluations: list[Evaluation] = []

    def objective(trial: Any) -> float:
        params = suggest(trial, search, part.fixed)
        score = float("nan")
        for step, rounds in enumerate(rungs):
            if not budget.take():
                trial.study.stop()
                raise optuna.TrialPruned("budget spent")
            score, fit_s = cross_validated(
                library, {**params, rounds_name: rounds}, X, y, study, threads=1
            )
            evaluations.append(Evaluation(rounds, score, fit_s))
            trial.report(score, rounds)
            if step < len(rungs) - 1 and trial.should_prune():
                raise optuna.TrialPruned()
        return score

    seed = search.seed if search.seed is not None else spec.cv.seed
    search_study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=seed),
        # Optuna's rung k is reached at step min_resource * eta**k: reporting at step = rounds
        # puts its rungs at exactly the spec's.
        pruner=optuna.pruners.SuccessiveHalvingPruner(
            min_resource=rungs[0], reduction_factor=search.eta, min_early_stopping_rate=0
        ),
    )
    started = time.perf_counter()
    search_study.optimize(objective, n_jobs=CORES)  # until the budget stops it
    return time.perf_counter() - started, evaluations


def _ray_trial(config: dict[str, Any], X: Any, y: Any, study: dict[str, Any]) -> None:
    import ray
    from ray import tune

    budget = ray.get_actor("budget", namespace="bench")
    params = dict(config["point"])
    library, rounds_name, rungs = config["library"], config["rounds_name"], config["rungs"]
    for rounds in rungs:
        if not ray.get(budget.take.remote()):
            return
        score, fit_s = cross_validated(
            library, {**params, rounds_name: rounds}, X, y, study, threads=1
        )
        tune.report({"score": score, "rounds": rounds, "fit_s": fit_s})


def _ray_asha(spec: Any, X: Any, y: Any, study: dict[str, Any]) -> tuple[float, list[Evaluation]]:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    library, part, search = _adaptive(spec)
    assert isinstance(search, ASHASpec)
    rungs = search.rungs()
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # A trial that finds the budget spent ends without a score, which is no error here.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    storage = tempfile.mkdtemp(prefix="tunefleet-bench-ray-")
    ray.init(
        num_cpus=CORES,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        namespace="bench",
    )
    ray.get([ray.remote(import_libraries).remote(i) for i in range(CORES)])
    # Named, so that every trial (in its own actor process) takes from the one budget; held
    # here, as an actor nobody holds is ended.
    budget = ray.remote(Budget).options(name="budget").remote(search.n_trials)
    evaluations: list[Evaluation] = []

    class Collect(tune.Callback):  # type: ignore[misc]
        """Every reported result, in the driver: one evaluation each."""

        def on_trial_result(self, iteration: int, trials: Any, trial: Any, result: Any) -> None:
            if "score" in result:
                evaluations.append(Evaluation(result["rounds"], result["score"], result["fit_s"]))

    class Spent(tune.Stopper):  # type: ignore[misc]
        """Ends the search once every evaluation of the budget has reported."""

        def __call__(self, trial_id: str, result: Any) -> bool:
            return False

        def stop_all(self) -> bool:
            return len(evaluations) >= search.n_trials

    seed = search.seed if search.seed is not None else spec.cv.seed
    config = {
        "point": {**part.fixed, **_ray_space(search)},
        "library": library,
        "rounds_name": search.rounds_param(library),
        "rungs": rungs,
    }
    scheduler = ASHAScheduler(
        time_attr="rounds",
        max_t=rungs[-1],
        grace_period=rungs[0],
        reduction_factor=search.eta,
        brackets=1,
    )
    started = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(_ray_trial, X=X, y=y, study=study), {"cpu": 1}),
        param_space=config,
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            scheduler=scheduler,
            search_alg=BasicVariantGenerator(random_state=seed),
            # Configurations until the budget is spent: never more than one per evaluation.
            num_samples=search.n_trials,
            reuse_actors=True,
            max_concurrent_trials=CORES,
        ),
        run_config=tune.RunConfig(
            storage_path=storage, name="bench", verbose=0, callbacks=[Collect()], stop=Spent()
        ),
    )
    for result in tuner.fit():
        if result.error is not None:
            raise RuntimeError(f"ray trial failed: {result.error}")
    wall = time.perf_counter() - started
    ray.kill(budget)
    ray.shutdown()
    return wall, evaluations


RUNNERS: dict[str, Run] = {
    "optuna-tpe": _optuna_tpe,
    "optuna-sha": _optuna_sha,
    "ray-asha": _ray_asha,
}


def child(side: str, spec_json: str, out: str) -> None:
    """In a fresh process: run one peer's search of the spec; write JSON to `out`."""
    spec, X, y, study = load_study(spec_json)
    wall, evaluations = RUNNERS[side](spec, X, y, study)
    rows = [[e.rounds, e.score, e.fit_s] for e in evaluations]
    Path(out).write_text(json.dumps({"wall_s": wall, "evaluations": rows}))


if __name__ == "__main__":
    child(*sys.argv[1:4])
