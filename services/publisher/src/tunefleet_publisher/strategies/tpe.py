"""TPE: each trial is what Optuna's TPE sampler proposes (ask/tell), given every trial decided
so far: finished ones with their score, failed ones as failed, and those still in flight as
running, which the sampler's constant liar counts as bad so that N free workers do not get N
copies of the same region.

Each proposal is made on an Optuna study rebuilt from that state, by a sampler seeded with the
spec's seed and the trial's position: the same state proposes the same trial, in one process
or after a restart. With one worker the state at each decision is the same on every run, so a
seeded spec proposes the same trials in the same order; with several workers the order in
which results arrive (which decides the state at each decision) varies, and so do the
proposals. Rebuilding costs about 25 ms per decision at 500 trials.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import TPESampler
from optuna.trial import FrozenTrial, TrialState, create_trial
from tunefleet_contract import spec as schema
from tunefleet_contract.messages import TrialSpec
from tunefleet_contract.params import Scalar

from tunefleet_publisher.strategies.adaptive import AdaptiveStrategy

__all__ = ["TPESearch"]

optuna.logging.set_verbosity(optuna.logging.WARNING)
log = logging.getLogger(__name__)

# Proposals per decision before falling back to the next unseen seeded random point (a small
# discrete space where TPE keeps proposing points the study has).
_ATTEMPTS = 20


def _distribution(dist: schema.Distribution) -> BaseDistribution:
    if dist.uniform is not None:
        return FloatDistribution(dist.uniform[0], dist.uniform[1])
    if dist.loguniform is not None:
        return FloatDistribution(dist.loguniform[0], dist.loguniform[1], log=True)
    if dist.integer is not None:
        return IntDistribution(dist.integer[0], dist.integer[1], log=dist.log)
    assert dist.choice is not None
    return CategoricalDistribution(dist.choice)


def _suggest(trial: optuna.Trial, name: str, dist: schema.Distribution) -> Scalar:
    value: Scalar
    if dist.uniform is not None:
        value = trial.suggest_float(name, dist.uniform[0], dist.uniform[1])
    elif dist.loguniform is not None:
        value = trial.suggest_float(name, dist.loguniform[0], dist.loguniform[1], log=True)
    elif dist.integer is not None:
        value = trial.suggest_int(name, dist.integer[0], dist.integer[1], log=dist.log)
    else:
        assert dist.choice is not None
        value = trial.suggest_categorical(name, dist.choice)
    return value


def _seed(seed: int, library: str, position: int, attempt: int) -> int:
    key = f"tunefleet-tpe:{seed}:{library}:{position}:{attempt}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big")


class TPESearch(AdaptiveStrategy):
    kind = "tpe"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assert isinstance(self.search, schema.TPESearch)
        self.tpe: schema.TPESearch = self.search
        self._distributions = {name: _distribution(d) for name, d in self.tpe.space.items()}
        self._order = self.tpe.order()

    def _sampled(self, params: dict[str, Scalar]) -> dict[str, Scalar]:
        return {k: v for k, v in params.items() if k in self._distributions}

    def _frozen(self, trial: TrialSpec) -> FrozenTrial:
        params = self._sampled(dict(trial.params))
        distributions = {k: self._distributions[k] for k in params}
        if trial.trial_id not in self.outcomes:
            return create_trial(
                state=TrialState.RUNNING, params=params, distributions=distributions
            )
        score = self.outcomes[trial.trial_id]
        if score is None:
            return create_trial(state=TrialState.FAIL, params=params, distributions=distributions)
        return create_trial(params=params, distributions=distributions, value=score)

    def _ask(self, attempt: int) -> dict[str, Scalar]:
        sampler = TPESampler(
            seed=_seed(self.seed, self.library, len(self.decided), attempt),
            n_startup_trials=self.tpe.n_startup,
            constant_liar=True,
        )
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.add_trials([self._frozen(t) for t in self.decided])
        asked = study.ask()
        point: dict[str, Scalar] = dict(self.part.fixed)
        for name in self._order:
            dist = self.tpe.space[name]
            if dist.holds(point):
                point[name] = _suggest(asked, name, dist)
        return point

    def _next(self) -> TrialSpec | None:
        for attempt in range(_ATTEMPTS):
            found = self.trial(self._ask(attempt))
            if found is not None:
                return found
        log.info("tpe for %s proposed only known points; drawing one at random", self.library)
        return self.draw()
