"""A model that trains nothing: the pipeline-overhead benchmark and the fault-injection suite
give it a score, a duration and an outcome (`score`, `sleep_s`, `fail`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tunefleet_contract.params import Scalar

from tunefleet_worker.libraries import ModelLibrary


class Noop(ModelLibrary):
    name = "noop"
    distribution = "tunefleet-worker"

    def simulate(
        self, params: Mapping[str, Scalar], folds: int, sleep: Callable[[float], object]
    ) -> list[float]:
        sleep(float(params.get("sleep_s") or 0.0))
        if params.get("fail"):
            raise RuntimeError("noop model asked to fail")
        return [float(params.get("score") or 0.0)] * folds


LIBRARY = Noop()
