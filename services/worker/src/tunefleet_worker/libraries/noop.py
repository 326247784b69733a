"""A model that trains nothing: the pipeline-overhead benchmark and the fault-injection suite
give it a score, a duration and an outcome (`score`, `sleep_s`, `fail`), fold by fold."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tunefleet_contract.params import Scalar

from tunefleet_worker.libraries import ModelLibrary


class Noop(ModelLibrary):
    name = "noop"
    distribution = "tunefleet-worker"

    def simulate_fold(
        self, params: Mapping[str, Scalar], fold: int, folds: int, sleep: Callable[[float], object]
    ) -> float:
        # `sleep_s` is the whole trial's: each fold sleeps its part, so that a trial stopped
        # after some folds has finished (and checkpointed) those.
        sleep(float(params.get("sleep_s") or 0.0) / folds)
        if params.get("fail") and fold == folds - 1:
            raise RuntimeError("noop model asked to fail")
        return float(params.get("score") or 0.0)


LIBRARY = Noop()
