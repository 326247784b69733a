"""A trial message naming a study that was never registered is a dead letter and nothing more:
the collector used to store its trials as `failed/rejected` under that id as well. The decision,
against the in-memory store; the collector doing it on a live broker and store is the
`trial-unregistered-study` case of tests/badinput."""

from __future__ import annotations

import json

import pika
from tunefleet_collector.collector import dead_trial_results, known_studies, of_known_studies
from tunefleet_contract.messages import PlannedSpec, StudyRegistered, TrialsPlanned
from tunefleet_runtime.store.memory import MemoryStore
from tunefleet_runtime.validation import parse_spec

SPEC = parse_spec(
    {"name": "s", "dataset": {"kind": "builtin", "name": "iris"}, "search": {"noop": {}}}
)


def dead(study_id: str, *trial_ids: str) -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "kind": "trial.batch",
            "study_id": study_id,
            "dataset": {"kind": "builtin", "name": "iris"},
            "task": "classification",
            "metric": "accuracy",
            "folds": 2,
            "seed": 0,
            "trials": [
                {"trial_id": t, "library": "noop", "params": {"sleeep_s": 1.0}} for t in trial_ids
            ],
        }
    ).encode()


def test_only_known_studies_keep_the_failed_results_of_their_dead_trials() -> None:
    store = MemoryStore()
    store.write_events(
        [
            StudyRegistered(
                study_id="registered", spec=SPEC, n_trials=1, submitted_at=1.0, published_at=1.0
            ),
            # An adaptive plan: the planner's own record, before its registration is stored.
            TrialsPlanned(
                study_id="planned",
                first=0,
                trials=[PlannedSpec(trial_id="b" * 24, library="noop", params={})],
            ),
        ]
    )
    headers = {"x-first-death-reason": "rejected", "x-tunefleet-reason": "sleeep_s: unknown"}
    properties = pika.BasicProperties(headers=headers)
    events = [
        *dead_trial_results(dead("registered", "a" * 24), properties, 3),
        *dead_trial_results(dead("planned", "b" * 24), properties, 3),
        *dead_trial_results(dead("never-registered", "c" * 24, "d" * 24), properties, 3),
        *dead_trial_results(dead("in-this-batch", "e" * 24), properties, 3),
    ]
    assert len(events) == 5 and all(e.status == "failed" for e in events)

    kept, dropped = of_known_studies(events, known_studies(store, {"in-this-batch"}))
    assert [(e.study_id, e.trial_id[0]) for e in kept] == [
        ("registered", "a"),
        ("planned", "b"),
        ("in-this-batch", "e"),
    ]
    assert dropped == {"never-registered": 2}
