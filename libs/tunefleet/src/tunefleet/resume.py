"""What a resume does, from the client's side: it publishes a new revision of a study, unless
the store shows that there is nothing to run, and reports what the planner decided for it."""

from __future__ import annotations

import dataclasses
import getpass
import socket
import time
from typing import TYPE_CHECKING

from tunefleet_contract.messages import StudyRequest, StudyResumed
from tunefleet_contract.spec import SpecError
from tunefleet_runtime.records import reruns

if TYPE_CHECKING:
    from tunefleet.client import Client, SpecLike

__all__ = ["Resumption", "requested_by", "resume"]


def requested_by() -> str:
    """Who asks (user@host): recorded with a cancel, a resume or a refit."""
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):
        return socket.gethostname()


@dataclasses.dataclass(frozen=True)
class Resumption:
    """What a resume published, and what it kept of the results already stored."""

    study_id: str
    revision: int  # the study's revision now: one more than before, unless nothing was to do
    n_trials: int  # trials in the (fixed) spec
    republished: int  # of those: without a result, or failed when rerunning failures
    kept: int  # of those: results already stored, which count as they are
    kept_failed: int  # of those kept: failed ones (`rerun_failed` runs them again)
    superseded: int  # results of the revision before that the fixed spec no longer has
    spec_changed: bool

    @property
    def published(self) -> bool:
        return self.republished > 0 or self.spec_changed


def resume(
    client: Client, study_id: str, spec: SpecLike | None = None, *, rerun_failed: bool = False
) -> Resumption:
    """Run what is missing: the trials without a result (crashed, lost, cancelled), and
    with `rerun_failed` the failed ones too. Lifts a cancel.

    `spec` is a fixed spec for the same study (same name): it replaces the stored one, and
    only its trials that have no result run. A trial it shares with the old spec (same
    library, parameters, data, metric and folds) keeps its result; a result of a trial it
    no longer has is superseded (kept in the store, out of status, results and reports).
    Each resume that publishes is a new revision of the study: workers skip what is still
    queued of older ones, so nothing runs twice. Nothing to do publishes nothing.

    The planner decides the new revision's trials; this waits (at most 15 s) until the
    collector has recorded them, and reports what the planner decided.
    """
    study = client.study_record(study_id)
    study_id = study.study_id
    stored_spec = study.spec
    new_spec = stored_spec if spec is None else client.publishable(spec)
    if new_spec.name != stored_spec.name:
        raise SpecError(
            f"name: the fixed spec is named {new_spec.name!r}, but study {study_id} is "
            f"{stored_spec.name!r}; a resume keeps the study (submit a new one instead)"
        )
    revision = study.revision
    # The same spec has the same trial set: the store's record of it (the plan) and the
    # results tell what is missing, without waiting for the planner to say so (once an
    # adaptive search has decided all of its trials).
    planned = client.store.planned_trials(study_id, revision) if new_spec == stored_spec else []
    known: Resumption | None = None
    if planned and len(planned) >= study.n_trials:
        stored = client.store.result_states(study_id)
        counts = reruns(planned, stored, rerun_failed=rerun_failed)
        known = Resumption(
            study_id=study_id,
            revision=revision,
            n_trials=len(planned),
            republished=len(counts.publish),
            kept=counts.kept,
            kept_failed=counts.kept_failed,
            superseded=0,
            spec_changed=False,
        )
        if not known.published:
            return known
    revision += 1
    event = StudyResumed(
        study_id=study_id, resumed_at=time.time(), by=requested_by(), revision=revision
    )
    # The control stream first: workers then skip the older revision's queued copies.
    client.publish(lambda t: t.events_exchange, event.kind, event.encode())
    request = StudyRequest(
        study_id=study_id,
        spec=new_spec,
        submitted_at=time.time(),
        revision=revision,
        rerun_failed=rerun_failed,
    )
    client.publish(lambda t: t.studies_exchange, "study", request.encode())
    recorded = client.recorded(
        study_id,
        lambda record: record.revision >= revision and not record.cancelled,
        timeout_s=15.0 if known is not None else 60.0,
    )
    if known is not None:
        return dataclasses.replace(known, revision=revision)
    if recorded is None or recorded.revision != revision:
        # A new trial set: only the planner knows what it keeps, and it has not said yet.
        raise TimeoutError(
            f"study {study_id}: revision {revision} is published, but the planner and the "
            "collector have not recorded it yet (`tunefleet status` shows it once they have)"
        )
    return Resumption(
        study_id=study_id,
        revision=revision,
        n_trials=recorded.n_trials,
        republished=recorded.published,
        kept=recorded.kept,
        kept_failed=recorded.kept_failed,
        superseded=recorded.superseded,
        spec_changed=new_spec != stored_spec,
    )
