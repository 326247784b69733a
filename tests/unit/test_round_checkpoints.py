"""Round checkpoints (`checkpoint: rounds`): told to stop in the middle of a fold, the worker cuts
the fold after its current round and stores the booster in the library's native format; the next
worker (a fresh process: no fold cache) continues that fold from the stored booster for the
rounds left, takes the finished folds from their fold checkpoints, and marks the result as
resumed at that round.

The records go the whole way a worker's do: events encoded and decoded, stored by the store's
rules (the in-memory backend), the booster through a blob store and back. Where continuing is
exact (XGBoost and LightGBM without subsampling) the result is the uninterrupted one bit for bit;
CatBoost without any randomness agrees to rounding (its continuation re-derives the leaf values'
sums); with subsampling the generator restarts, so the fold differs and only the mark says so
(docs/spec.md, Checkpoints, has the measured table: `python -m bench round-checkpoints`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from tunefleet_contract.families import families
from tunefleet_contract.messages import (
    FoldCheckpoint,
    RoundCheckpoint,
    TrialMessage,
    TrialResult,
    TrialSpec,
    decode_event,
)
from tunefleet_runtime.store.memory import MemoryBlobStore, MemoryStore
from tunefleet_worker import foldcache
from tunefleet_worker.checkpoints import (
    fold_checkpoint,
    resumed_folds,
    resumed_rounds,
    round_records,
)
from tunefleet_worker.families import run_family
from tunefleet_worker.refit import save_native
from tunefleet_worker.training import FoldDone, RoundStoppedError, TrialContext, run_trial
from tunefleet_worker.worker import _carried

from tests.support.messages import TRIAL_MESSAGE
from tests.support.reference import local_study

FOLDS = 3
CUT_FOLD = 1  # the fold in training when the stop comes
CUT_ROUND = 5  # ... after this round of it

# Per library: parameters that draw nothing at random (continuing is exact, or nearly), and
# parameters that subsample (continuing restarts the generator).
PLAIN: dict[str, tuple[dict[str, Any], dict[str, list[Any]]]] = {
    "xgboost": ({"max_depth": 3, "learning_rate": 0.3}, {"n_estimators": [12]}),
    "lightgbm": (
        {"num_leaves": 7, "min_child_samples": 5, "learning_rate": 0.3},
        {"n_estimators": [12]},
    ),
    "catboost": (
        {"depth": 3, "bootstrap_type": "No", "random_strength": 0},
        {"iterations": [12], "learning_rate": [0.3]},
    ),
}
SUBSAMPLED: dict[str, tuple[dict[str, Any], dict[str, list[Any]]]] = {
    "xgboost": (
        {"max_depth": 3, "subsample": 0.7, "colsample_bytree": 0.6},
        {"n_estimators": [12]},
    ),
    "lightgbm": (
        {"num_leaves": 7, "min_child_samples": 5, "subsample": 0.7, "subsample_freq": 1},
        {"n_estimators": [12]},
    ),
    "catboost": (
        {"depth": 3, "rsm": 0.6, "subsample": 0.7, "bootstrap_type": "Bernoulli"},
        {"iterations": [12], "learning_rate": [0.3]},
    ),
}
# Continuing gives the uninterrupted model bit for bit.
EXACT = {"xgboost", "lightgbm"}
CATBOOST_TOLERANCE = 1e-12  # on a fold score, without randomness

Run = Callable[[TrialContext, Sequence[TrialSpec]], list[TrialResult]]


def alone(ctx: TrialContext, trials: Sequence[TrialSpec]) -> list[TrialResult]:
    return [run_trial(ctx, trial) for trial in trials]


def in_family(ctx: TrialContext, trials: Sequence[TrialSpec]) -> list[TrialResult]:
    (family,) = families(trials)
    return run_family(ctx, family)


def cut_after(rounds: int, fold: int, at: int) -> Callable[[], bool]:
    """A notice that comes after round `at` of fold `fold` (the library asks once a round, and
    each fold before it trains all of its `rounds`)."""
    asked = [0]

    def notice() -> bool:
        asked[0] += 1
        return asked[0] >= fold * rounds + at

    return notice


def bits(value: float | None) -> bytes | None:
    return None if value is None else np.float64(value).tobytes()


def cut_and_continued(
    library: str,
    params: tuple[dict[str, Any], dict[str, Any]],
    run: Run,
    tmp_path: Path,
) -> tuple[list[TrialResult], list[TrialResult], list[RoundCheckpoint]]:
    """The uninterrupted run; the records of a run stopped after round CUT_ROUND of fold
    CUT_FOLD; the run of the next worker, which finds them."""
    fixed, grid = params
    ctx, trials, _ = local_study(
        library, fixed, grid, "breast_cancer", "roc_auc", study_id="s", folds=FOLDS
    )
    full = run(ctx, trials)
    foldcache.clear()

    blobs = MemoryBlobStore(1 << 30)
    events: list[FoldCheckpoint | RoundCheckpoint] = []

    def on_fold(fold: int, done: Sequence[tuple[str, FoldDone]]) -> None:
        events.append(fold_checkpoint("s", 0, FOLDS, fold, done, "w1"))

    def on_round(
        trial_id: str, fold: int, trained: int, rounds: int, fit_s: float, estimator: Any
    ) -> None:
        content, fmt = save_native(library, estimator)
        info, _ = blobs.put_bytes(content, kind="model", format=fmt)
        events.append(
            RoundCheckpoint(
                study_id="s",
                trial_id=trial_id,
                library=library,
                fold=fold,
                folds=FOLDS,
                round=trained,
                rounds=rounds,
                fit_time_s=fit_s,
                sha256=info.sha256,
                format=fmt,
                size=info.size,
                worker="w1",
                saved_at=0.0,
            )
        )

    top = max(int(v) for name, values in grid.items() if name != "learning_rate" for v in values)
    first = dataclasses.replace(
        ctx, on_fold=on_fold, on_round=on_round, notice=cut_after(top, CUT_FOLD, CUT_ROUND)
    )
    with pytest.raises(RoundStoppedError, match=f"cut after round {CUT_ROUND} of {top}"):
        run(first, trials)
    rounds = [e for e in events if isinstance(e, RoundCheckpoint)]

    store = MemoryStore()
    store.write_events([decode_event(e.encode()) for e in events])  # over the wire
    foldcache.clear()  # another worker: nothing prepared
    ids = [t.trial_id for t in trials]
    second = dataclasses.replace(
        ctx,
        attempts=2,
        notice=lambda: False,
        resumed=resumed_folds(store.fold_checkpoints("s", 0, ids, FOLDS)),
        rounds_resumed=resumed_rounds(
            store.round_checkpoints("s", 0, ids, FOLDS), lambda: blobs, tmp_path
        ),
    )
    return full, run(second, trials), rounds


@pytest.mark.parametrize("library", sorted(PLAIN))
def test_a_fold_cut_on_a_stop_continues_from_its_round(library: str, tmp_path: Path) -> None:
    full, resumed, rounds = cut_and_continued(library, PLAIN[library], alone, tmp_path)
    (record,) = rounds
    assert (record.fold, record.round, record.rounds) == (CUT_FOLD, CUT_ROUND, 12)
    ((before,), (after,)) = full, resumed
    assert after.status == "done" and before.resumed_at_round is None
    assert after.resumed_at_round == CUT_ROUND
    assert after.resumed_folds == CUT_FOLD  # the folds before were taken, not trained
    # The folds not cut are the uninterrupted ones, bit for bit.
    others = [i for i in range(FOLDS) if i != CUT_FOLD]
    assert [bits(after.fold_scores[i]) for i in others] == [
        bits(before.fold_scores[i]) for i in others
    ]
    cut_before, cut_after_ = before.fold_scores[CUT_FOLD], after.fold_scores[CUT_FOLD]
    assert cut_before is not None and cut_after_ is not None
    if library in EXACT:
        assert bits(after.score) == bits(before.score)
        assert bits(cut_after_) == bits(cut_before)
    else:
        assert cut_after_ == pytest.approx(cut_before, abs=CATBOOST_TOLERANCE)


@pytest.mark.parametrize("library", sorted(SUBSAMPLED))
def test_with_subsampling_the_continued_fold_is_marked(library: str, tmp_path: Path) -> None:
    full, resumed, _ = cut_and_continued(library, SUBSAMPLED[library], alone, tmp_path)
    ((before,), (after,)) = full, resumed
    assert after.status == "done" and after.resumed_at_round == CUT_ROUND
    # The folds not cut are still exact: only the continued fold's draws restarted.
    assert bits(after.fold_scores[0]) == bits(before.fold_scores[0])
    assert bits(after.fold_scores[2]) == bits(before.fold_scores[2])
    assert after.score is not None and 0.5 < after.score <= 1.0


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_a_family_continues_its_shared_fit(library: str, tmp_path: Path) -> None:
    fixed, grid = PLAIN[library]
    family = (fixed, {**grid, "n_estimators": [4, 12, 8]})
    full, resumed, rounds = cut_and_continued(library, family, in_family, tmp_path)
    (record,) = rounds  # one fit for the family, at its most rounds
    assert record.rounds == 12
    largest = next(r for r in full if r.params["n_estimators"] == 12)
    assert record.trial_id == largest.trial_id
    assert [r.resumed_at_round for r in resumed] == [CUT_ROUND] * 3
    assert [(r.trial_id, bits(r.score)) for r in resumed] == [
        (r.trial_id, bits(r.score)) for r in full
    ]


def test_a_continued_fold_cut_again_is_stored_with_all_its_rounds(tmp_path: Path) -> None:
    """A second stop in the continued fold: its booster holds the rounds of both deliveries,
    and the next worker continues from the higher round."""
    fixed, grid = PLAIN["xgboost"]
    ctx, trials, _ = local_study(
        "xgboost", fixed, grid, "breast_cancer", "roc_auc", study_id="s", folds=FOLDS
    )
    (full,) = alone(ctx, trials)
    blobs = MemoryBlobStore(1 << 30)
    store = MemoryStore()
    ids = [t.trial_id for t in trials]

    def on_round(
        trial_id: str, fold: int, trained: int, rounds: int, fit_s: float, estimator: Any
    ) -> None:
        content, fmt = save_native("xgboost", estimator)
        info, _ = blobs.put_bytes(content, kind="model", format=fmt)
        event = RoundCheckpoint(
            study_id="s",
            trial_id=trial_id,
            library="xgboost",
            fold=fold,
            folds=FOLDS,
            round=trained,
            rounds=rounds,
            fit_time_s=fit_s,
            sha256=info.sha256,
            format=fmt,
            size=info.size,
            saved_at=0.0,
        )
        store.write_events([decode_event(event.encode())])

    def attempt(notice: Callable[[], bool]) -> list[TrialResult]:
        foldcache.clear()
        found = store.round_checkpoints("s", 0, ids, FOLDS)
        run = dataclasses.replace(
            ctx,
            notice=notice,
            on_round=on_round,
            rounds_resumed=resumed_rounds(found, lambda: blobs, tmp_path),
        )
        return alone(run, trials)

    with pytest.raises(RoundStoppedError, match="after round 3 of 12"):
        attempt(cut_after(12, 0, 3))
    with pytest.raises(RoundStoppedError, match="after round 7 of 12"):
        attempt(cut_after(12, 0, 4))  # 4 more, on top of the 3 continued from
    (resumed,) = attempt(lambda: False)
    assert resumed.resumed_at_round == 7
    assert bits(resumed.score) == bits(full.score)


def test_folds_mode_never_cuts_a_fold() -> None:
    """Without `checkpoint: rounds` (no notice), nothing is cut: the fold trains through."""
    fixed, grid = PLAIN["lightgbm"]
    ctx, trials, _ = local_study(
        "lightgbm", fixed, grid, "breast_cancer", "roc_auc", study_id="s", folds=FOLDS
    )
    cuts: list[int] = []
    run = dataclasses.replace(ctx, on_round=lambda *args: cuts.append(args[2]))
    (result,) = alone(run, trials)
    assert result.status == "done" and result.resumed_at_round is None and cuts == []


def test_a_hand_back_carries_the_cut_fold_to_the_next_delivery(tmp_path: Path) -> None:
    """The handed-back message carries the round checkpoint just cut (replacing an older one of
    the same fold), so that the next delivery continues from it even before the collector has
    stored it; trials that got their results on the way drop theirs."""
    first, second = TRIAL_MESSAGE.trials[:2]

    def cut(trial: TrialSpec, fold: int, at: int) -> RoundCheckpoint:
        return RoundCheckpoint(
            study_id=TRIAL_MESSAGE.study_id,
            trial_id=trial.trial_id,
            library=trial.library,
            fold=fold,
            folds=TRIAL_MESSAGE.folds,
            round=at,
            rounds=100,
            sha256=f"{at:064x}",
            format="ubj",
            size=1,
            saved_at=0.0,
        )

    older = [cut(first, 1, 40), cut(second, 0, 10)]
    message = TRIAL_MESSAGE.model_copy(update={"checkpoint": "rounds", "rounds_from": older})
    job = SimpleNamespace(delivery=SimpleNamespace(message=message), cut=cut(first, 1, 70))
    carried = _carried(job, [first, second])  # type: ignore[arg-type]
    assert [(c.trial_id, c.fold, c.round) for c in carried] == [
        (second.trial_id, 0, 10),
        (first.trial_id, 1, 70),
    ]
    assert _carried(job, [first]) == [job.cut]  # type: ignore[arg-type]
    handed = TrialMessage.decode(message.model_copy(update={"rounds_from": carried}).encode())
    resumed = resumed_rounds(round_records(handed), lambda: MemoryBlobStore(1), tmp_path)
    assert resumed[first.trial_id][1].round == 70 and resumed[second.trial_id][0].round == 10
    # Another revision's, or another number of folds', is not this delivery's.
    other = handed.model_copy(update={"revision": 1})
    assert round_records(other) == []
