"""The median-stopping rule across trials (Optuna's MedianPruner, Katib's median stop), on the
mean validation curves that early stopping stores (docs/spec.md, "The median rule").

The worker reads the curves of the library's finished trials once, when a trial starts
(`Store.finished_curves`), and makes of them the median curve: at round r, the median of the
finished trials' means at r, where at least `after_trials` of them reach r. After round r
(past `warmup`), the trial is worse when its best mean so far is worse than that median; worse
after `rounds` consecutive rounds, it stops. A round without a median (too few trials reach it)
is not a worse round. Nothing is read or sent per round.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tunefleet_contract.spec import MedianStopSpec

__all__ = ["MedianRule", "median_curve", "value_at"]


def value_at(summary: Mapping[str, Any], r: int) -> float | None:
    """A stored curve's mean at round `r`: the value of the last stored round up to `r` (a
    curve longer than `CURVE_POINTS` keeps every k-th round), None past the rounds it trained
    or where the value is not finite."""
    rounds: Sequence[int] = summary.get("curve_rounds") or []
    if not rounds or r > int(summary.get("rounds_trained") or rounds[-1]) or r < rounds[0]:
        return None
    value = summary["curve_mean"][bisect.bisect_right(rounds, r) - 1]
    return None if value is None or not math.isfinite(value) else float(value)


def median_curve(
    summaries: Iterable[Mapping[str, Any]], metric: str, after_trials: int, max_rounds: int
) -> list[float | None]:
    """Per round 1..max_rounds (index r - 1), the median of the finished trials' means at that
    round, over the curves of `metric`; None where fewer than `after_trials` reach it."""
    curves = [s for s in summaries if s.get("metric") == metric]
    medians: list[float | None] = []
    for r in range(1, max_rounds + 1):
        values = [v for v in (value_at(s, r) for s in curves) if v is not None]
        medians.append(statistics.median(values) if len(values) >= after_trials else None)
    return medians


@dataclass
class MedianRule:
    """The rule for one trial: fed each round's best mean so far, says when to stop."""

    medians: Sequence[float | None]
    spec: MedianStopSpec
    greater_is_better: bool
    trials: int  # the finished trials the medians were made of (stored with the result)
    worse: int = 0  # consecutive rounds worse than the median, up to the last one checked

    def stops(self, r: int, best_so_far: float) -> bool:
        """After round `r` (1-based), the trial's best mean so far: whether it stops now."""
        if r <= self.spec.warmup:
            return False
        median = self.medians[r - 1] if r <= len(self.medians) else None
        worse = (
            median is not None
            and math.isfinite(best_so_far)
            and (best_so_far < median if self.greater_is_better else best_so_far > median)
        )
        self.worse = self.worse + 1 if worse else 0
        return self.worse >= self.spec.rounds
