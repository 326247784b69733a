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

Optuna is imported where a proposal is made, not with this module: every process that reads a
spec loads the search kinds, and only the planner decides.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, ClassVar

from pydantic import Field
from tunefleet_contract.rules import Scalar
from tunefleet_contract.search.adaptive import AdaptiveStrategy
from tunefleet_contract.search.space import AdaptiveSpec
from tunefleet_contract.search.strategy import Decision, SearchContext, SearchKind

__all__ = ["KIND", "TPESpec", "TPEStrategy"]

log = logging.getLogger(__name__)

# Proposals per decision before falling back to the next unseen seeded random point (a small
# discrete space where TPE keeps proposing points the study has).
_ATTEMPTS = 20


class TPESpec(AdaptiveSpec):
    """Bayesian search with Optuna's TPE sampler (constant liar for the trials in flight); the
    first `n_startup` trials are seeded random draws."""

    key: ClassVar[str] = "tpe"

    n_startup: int = Field(default=10, ge=1, le=10_000)


def _seed(seed: int, library: str, position: int, attempt: int) -> int:
    key = f"tunefleet-tpe:{seed}:{library}:{position}:{attempt}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big")


class TPEStrategy(AdaptiveStrategy[TPESpec]):
    def __init__(self, spec: TPESpec, context: SearchContext) -> None:
        super().__init__(spec, context)
        self._order = spec.order()
        self._optuna: dict[str, Any] = {}  # the space in Optuna's terms, made at the first ask

    def _frozen(self, trial: Decision) -> Any:
        from optuna.trial import TrialState, create_trial

        if not self._optuna:
            self._optuna = {name: dist.optuna() for name, dist in self.spec.space.items()}
        params = {k: v for k, v in trial.params.items() if k in self._optuna}
        distributions = {k: self._optuna[k] for k in params}
        if trial.trial_id not in self.outcomes:
            return create_trial(
                state=TrialState.RUNNING, params=params, distributions=distributions
            )
        score = self.outcomes[trial.trial_id]
        if score is None:
            return create_trial(state=TrialState.FAIL, params=params, distributions=distributions)
        return create_trial(params=params, distributions=distributions, value=score)

    def _ask(self, attempt: int) -> dict[str, Scalar]:
        import optuna

        sampler = optuna.samplers.TPESampler(
            seed=_seed(self.seed, self.context.library, len(self.decided), attempt),
            n_startup_trials=self.spec.n_startup,
            constant_liar=True,
        )
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.add_trials([self._frozen(t) for t in self.decided])
        asked = study.ask()
        point: dict[str, Scalar] = dict(self.context.fixed)
        for name in self._order:
            dist = self.spec.space[name]
            if dist.holds(point):
                point[name] = dist.suggest(asked, name)
        return point

    def _next(self) -> Decision | None:
        for attempt in range(_ATTEMPTS):
            found = self.trial(self._ask(attempt))
            if found is not None:
                return found
        log.info("tpe for %s proposed only known points; drawing one at random", self.key)
        return self.draw()


def prepare() -> None:
    """Load Optuna now rather than in the first decision, and let its warnings through the
    process's own logging instead of Optuna's handler; its INFO line for every study it
    creates (one per decision) is noise there."""
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(optuna.logging.WARNING)


KIND = SearchKind("tpe", TPESpec, TPEStrategy, precedence=30, prepare=prepare)
