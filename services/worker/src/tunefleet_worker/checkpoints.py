"""Fold checkpoints: a finished fold as the event that records it, and the stored records of a
trial's folds as what `training.run_folds` takes instead of training them again. And round
checkpoints (`checkpoint: rounds`): the stored records of folds cut on a stop as what
`training.fit_fold_rounds` continues from.

A fold's score is a float the uninterrupted run would have averaged with the others; JSON
carries it exactly (shortest round-trip repr) and so do MongoDB's doubles, so the folds taken
give the same mean, standard deviation and fold scores bit for bit. Only a score that is not
finite changes form on the way (stored as None, taken back as NaN), and every result field
made of it is None either way (`finite_or_none`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from tunefleet_contract.messages import FoldCheckpoint, FoldScore, TrialMessage
from tunefleet_runtime.blobs import BlobStore
from tunefleet_runtime.records import FoldRecord, RoundRecord

from tunefleet_worker.training import FoldDone, Resumed, RoundSaved, RoundsResumed

__all__ = ["fold_checkpoint", "resumed_folds", "resumed_rounds", "round_records"]


def fold_checkpoint(
    study_id: str,
    revision: int,
    folds: int,
    fold: int,
    done: Sequence[tuple[str, FoldDone]],
    worker: str,
) -> FoldCheckpoint:
    """The event that records fold `fold` (of `folds`) of these trials, finished now."""
    return FoldCheckpoint(
        study_id=study_id,
        revision=revision,
        fold=fold,
        folds=folds,
        trials=[
            FoldScore(
                trial_id=trial_id,
                score=d.score if math.isfinite(d.score) else None,
                fit_time_s=max(0.0, d.fit_time_s),
                score_time_s=max(0.0, d.score_time_s),
            )
            for trial_id, d in done
        ],
        worker=worker,
        finished_at=time.time(),
    )


def resumed_folds(records: Iterable[FoldRecord]) -> Resumed:
    """Stored fold records as the finished folds of each trial."""
    resumed: dict[str, dict[int, FoldDone]] = {}
    for record in records:
        score = math.nan if record.score is None else record.score
        resumed.setdefault(record.trial_id, {})[record.fold] = FoldDone(
            score, record.fit_time_s, record.score_time_s
        )
    return resumed


def round_records(message: TrialMessage) -> list[RoundRecord]:
    """The round checkpoints a handed-back message carries, as the store keeps them."""
    return [
        RoundRecord(
            trial_id=c.trial_id,
            revision=c.revision,
            fold=c.fold,
            folds=c.folds,
            round=c.round,
            rounds=c.rounds,
            sha256=c.sha256,
            format=c.format,
            size=c.size,
            worker=c.worker,
            saved_at=c.saved_at,
            fit_time_s=c.fit_time_s,
        )
        for c in message.rounds_from
        if (c.study_id, c.revision, c.folds) == (message.study_id, message.revision, message.folds)
    ]


def resumed_rounds(
    records: Iterable[RoundRecord], blobs: Callable[[], BlobStore], cache_dir: Path
) -> RoundsResumed:
    """Stored round checkpoints as the folds to continue: for each trial and fold the record
    of the highest round (a fold cut twice, the second time continued from the first), its
    booster downloaded into `cache_dir` only when a fit asks for it."""
    latest: dict[tuple[str, int], RoundRecord] = {}
    for record in records:
        key = (record.trial_id, record.fold)
        if key not in latest or record.round > latest[key].round:
            latest[key] = record
    resumed: dict[str, dict[int, RoundSaved]] = {}
    for (trial_id, fold), record in latest.items():
        resumed.setdefault(trial_id, {})[fold] = RoundSaved(
            record.round, record.rounds, _loader(record, blobs, cache_dir), record.fit_time_s
        )
    return resumed


def _loader(
    record: RoundRecord, blobs: Callable[[], BlobStore], cache_dir: Path
) -> Callable[[], Path]:
    def load() -> Path:
        dest = cache_dir / "rounds" / f"{record.sha256}.{record.format}"
        if not dest.exists():
            blobs().download(record.sha256, dest)  # verified, then renamed into place
        return dest

    return load
