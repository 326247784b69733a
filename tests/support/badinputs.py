"""Every bad input of the reliability issue, as raw bytes for a live queue, with what must happen.

Shared by the bad-input suite (one test per input) and the fault-injection suite (all of them,
mid-study). Each input is published with a header naming it, so that its dead letter can be told
apart from the others; `verify` then checks the promised outcome: a dead letter with a reason
that says why, `failed` results for the trials a bad trial message carried, or (NaN/infinity in
a result) a sanitized stored document.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pika.adapters.blocking_connection import BlockingChannel
from pymongo.database import Database
from tunefleet_contract.messages import StudyRegistered
from tunefleet_contract.spec import StudySpec
from tunefleet_contract.topology import Topology
from tunefleet_runtime.broker import publish
from tunefleet_runtime.deadletters import DeadLetter, list_dead_letters
from tunefleet_runtime.settings import BrokerSettings
from tunefleet_runtime.store.gridfs import BUCKET, CATALOGUE, GridFSBlobStore
from tunefleet_runtime.store.mongo import MongoStore

from tests.support.waiting import wait_until

CASE_HEADER = "x-test-bad-input"
# The services under test take messages up to this size; `catalogue` goes one byte over it.
MAX_MESSAGE_BYTES = 64_000
Target = Literal["studies", "trials", "events"]


@dataclass(frozen=True)
class BadInput:
    name: str
    target: Target
    body: bytes
    # Substring the dead letter's reason must contain; None: it must not be dead-lettered.
    reason: str | None
    # Trials the message carried: each must end `failed` (reason "rejected", error ~ reason).
    failed_trials: tuple[str, ...] = ()
    # Trials that must be stored as given, but with every non-finite number made null.
    sanitized_trials: tuple[str, ...] = ()
    # A study that must be registered, all of whose trials must fail with this error text.
    failed_study: tuple[str, int, str] | None = None
    # A refit whose model must be recorded `failed` with the reason (trial id).
    failed_model: str | None = None
    # A study never registered: nothing may be stored under its id (the dead letter is all).
    unrecorded_study: str | None = None


_STOP = {"rounds": 5, "max_rounds": 50}
_ASHA = {"n_trials": 4, "min_rounds": 2, "max_rounds": 18, "space": {"num_leaves": {"int": [2, 9]}}}


def _tid() -> str:
    return uuid.uuid4().hex[:24]


def _json(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def _trial_message(study_id: str, trials: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "kind": "trial.batch",
        "study_id": study_id,
        "dataset": {"kind": "builtin", "name": "iris"},
        "task": "classification",
        "metric": "accuracy",
        "folds": 2,
        "seed": 0,
        "trials": trials,
        **over,
    }


def _study_id(spec: dict[str, Any]) -> str:
    """The spec's own id where it has one (the planner refuses a request under another id);
    a made-up one for a spec too broken to have one."""
    try:
        return StudySpec.model_validate(spec).study_id()
    except ValueError:
        return f"{spec.get('name', 'bad')}-{uuid.uuid4().hex[:12]}"


def _study_request(spec: dict[str, Any], **over: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "kind": "study.request",
        "study_id": _study_id(spec),
        "spec": spec,
        "submitted_at": time.time(),
        **over,
    }


def _spec(search: dict[str, Any], **over: Any) -> dict[str, Any]:
    # A name of its own per call: the same spec in two runs is two studies.
    return {
        "name": f"bad-{uuid.uuid4().hex[:8]}",
        "dataset": {"kind": "builtin", "name": "iris"},
        "search": search,
        **over,
    }


def _result(study_id: str, trial_id: str, **over: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "kind": "trial.result",
        "study_id": study_id,
        "trial_id": trial_id,
        "library": "noop",
        "params": {"x": 1.0},
        "status": "done",
        "score": 0.5,
        "fold_scores": [0.5, 0.5],
        "attempts": 1,
        "finished_at": time.time(),
        **over,
    }


# Tables for the uploaded-dataset cases, stored by `seed_store` (the corrupt ones broken after).
GOOD_TABLE = b"a,b,y\n1,red,0\n2,blue,1\n3,green,0\n4,red,1\n"
CORRUPT_TABLE = b"a,y\n" + b"1,0\n2,1\n" * 50
TRUNCATED_TABLE = b"a,y\n" + b"3,0\n4,1\n" * 50
# Over the workers' TUNEFLEET_MAX_DATASET_BYTES (service_env).
MAX_DATASET_BYTES = 50_000
HUGE_TABLE = b"a,y\n" + b"5,0\n6,1\n" * (MAX_DATASET_BYTES // 8 + 1)
MISSING_SHA = hashlib.sha256(b"a table nobody uploaded").hexdigest()
# One class: a client of today refuses it at submit, but a blob stored otherwise (an older
# client, the store written directly) reaches the workers, which refuse it alike.
ONE_CLASS_TABLE = b"a,y\n1,1\n2,1\n3,1\n4,1\n"


def _sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _upload(sha: str, target: str = "y") -> dict[str, Any]:
    return {"kind": "upload", "target": target, "sha256": sha, "format": "csv"}


def _refit(study_id: str, trial_id: str, **over: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "kind": "model.refit",
        "study_id": study_id,
        "trial_id": trial_id,
        "library": "xgboost",
        "params": {"n_estimators": 2},
        "dataset": {"kind": "builtin", "name": "iris"},
        "task": "classification",
        "requested_at": time.time(),
        **over,
    }


def register_study(db: Database[dict[str, Any]], study_id: str) -> None:
    """Register the study the trial-level cases belong to, as the collector records one: the
    failed results of its dead-lettered trials are stored (those of a study never registered
    are not: `trial-unregistered-study`)."""
    spec = StudySpec.model_validate(_spec({"noop": {}}))
    registered = StudyRegistered(
        study_id=study_id, spec=spec, n_trials=0, submitted_at=time.time(), published_at=time.time()
    )
    MongoStore(db).write_events([registered])


def seed_store(db: Database[dict[str, Any]]) -> None:
    """The blobs the uploaded-dataset cases name: whole, corrupt, truncated and too big."""
    blobs = GridFSBlobStore(db, max_bytes=1 << 30)
    for content in (GOOD_TABLE, ONE_CLASS_TABLE, CORRUPT_TABLE, TRUNCATED_TABLE, HUGE_TABLE):
        blobs.put_bytes(content, kind="dataset", format="csv", name="bad-input")
    chunks = db[f"{BUCKET}.chunks"]

    def file_of(content: bytes) -> Any:
        return db[CATALOGUE].find_one({"_id": _sha(content)})["file_id"]  # type: ignore[index]

    # Same length, other bytes: only the hash can tell.
    chunks.update_one(
        {"files_id": file_of(CORRUPT_TABLE)}, {"$set": {"data": b"x" * len(CORRUPT_TABLE)}}
    )
    chunks.delete_many({"files_id": file_of(TRUNCATED_TABLE)})  # an upload that lost its chunks


def catalogue(study_id: str) -> list[BadInput]:
    """The bad inputs; trial-level ones belong to `study_id` so their failures can be found."""
    cases: list[BadInput] = []
    huge = b'{"schema_version": 1, "pad": "' + b"x" * MAX_MESSAGE_BYTES + b'"}'
    refit_missing, refit_unknown = _tid(), _tid()
    # Under the size limit, and deep enough to overflow any recursive parser: a poison
    # message that once stopped the collector for good (it was redelivered to each restart).
    depth = MAX_MESSAGE_BYTES // 2 - 100
    cases += [
        BadInput(f"{target}-nested-{depth}-deep", target, b"[" * depth + b"]" * depth, "nested")
        for target in ("studies", "trials", "events")
    ]

    # -- the publisher's queue: study requests ------------------------------------------------
    grid_1e7 = {
        name: [2 + i for i in range(10)]
        for name in ("n_estimators", "max_depth", "max_leaves", "max_bin", "num_parallel_tree")
    } | {name: [0.1 * (i + 1) for i in range(10)] for name in ("subsample", "colsample_bytree")}
    cases += [
        BadInput("study-malformed-json", "studies", b'{"kind": "study.request", ', "not JSON"),
        BadInput(
            "study-schema-version",
            "studies",
            _json(_study_request(_spec({"noop": {}}), schema_version=99)),
            "schema_version 99 is not supported",
        ),
        BadInput(
            "study-wrong-kind",
            "studies",
            _json(_trial_message(study_id, [])),
            "expected a 'study.request' message",
        ),
        BadInput(
            "study-unknown-library",
            "studies",
            _json(_study_request(_spec({"sklearn": {"grid": {"C": [1.0]}}}))),
            "unknown library",
        ),
        BadInput(
            "study-mistyped-param",
            "studies",
            _json(_study_request(_spec({"xgboost": {"grid": {"max_dept": [3]}}}))),
            "did you mean 'max_depth'",
        ),
        BadInput(
            "study-wrong-type-param",
            "studies",
            _json(_study_request(_spec({"xgboost": {"grid": {"max_depth": ["deep"]}}}))),
            "max_depth",
        ),
        BadInput(
            "study-thread-override",
            "studies",
            _json(_study_request(_spec({"xgboost": {"fixed": {"nthread": 512}}}))),
            "set by the platform",
        ),
        BadInput(
            "study-output-path",
            "studies",
            _json(_study_request(_spec({"lightgbm": {"fixed": {"output_model": "/etc/x"}}}))),
            "set by the platform",
        ),
        BadInput(
            "study-nan",
            "studies",
            b'{"schema_version": 1, "kind": "study.request", "score": NaN}',
            "NaN is not allowed",
        ),
        BadInput(
            "study-infinite-param",
            "studies",
            _json(_study_request(_spec({"noop": {"fixed": {"x": 1}}}))).replace(
                b'"x": 1', b'"x": 1e999'
            ),
            "not a finite number",
        ),
        BadInput(
            "study-1e7-grid",
            "studies",
            _json(_study_request(_spec({"xgboost": {"grid": grid_1e7}}))),
            "10,000,000 trials",
        ),
        BadInput("study-oversized", "studies", huge, "bytes is over the"),
        # Early stopping chooses the rounds: nothing else may set them, ASHA's rungs included.
        BadInput(
            "study-early-stopping-and-rounds",
            "studies",
            _json(
                _study_request(
                    _spec({"xgboost": {"early_stopping": _STOP, "grid": {"n_estimators": [9]}}})
                )
            ),
            "xgboost.grid.n_estimators: set by early_stopping",
        ),
        BadInput(
            "study-early-stopping-and-asha",
            "studies",
            _json(_study_request(_spec({"lightgbm": {"early_stopping": _STOP, "asha": _ASHA}}))),
            "lightgbm.early_stopping: not with asha",
        ),
        BadInput(
            "study-early-stopping-metric",
            "studies",
            _json(
                _study_request(
                    _spec({"xgboost": {"early_stopping": {**_STOP, "metric": "auc_pr"}}})
                )
            ),
            "unknown xgboost eval metric 'auc_pr' (did you mean 'aucpr'?)",
        ),
        BadInput(
            "study-early-stopping-patience",
            "studies",
            _json(
                _study_request(
                    _spec({"xgboost": {"early_stopping": {"rounds": 50, "max_rounds": 50}}})
                )
            ),
            "rounds (50) must be less than max_rounds (50)",
        ),
        BadInput(
            "study-early-stopping-regression-metric",
            "studies",
            _json(
                _study_request(
                    _spec(
                        {
                            "catboost": {
                                "early_stopping": {**_STOP, "metric": "RMSE"},
                                "fixed": {"learning_rate": 0.1},
                            }
                        }
                    )
                )
            ),
            "'RMSE' is a regression metric; the study is classification",
        ),
        BadInput(
            "study-median-stop-never-stops",
            "studies",
            _json(
                _study_request(
                    _spec(
                        {
                            "xgboost": {
                                "early_stopping": {
                                    **_STOP,
                                    "median": {"warmup": 49, "after_trials": 3},
                                }
                            }
                        }
                    )
                )
            ),
            "median: warmup (49) + rounds (1) must be less than max_rounds (50)",
        ),
        BadInput(
            "study-median-stop-catboost",
            "studies",
            _json(
                _study_request(
                    _spec(
                        {
                            "catboost": {
                                "early_stopping": {
                                    **_STOP,
                                    "median": {"warmup": 5, "after_trials": 3},
                                },
                                "fixed": {"learning_rate": 0.1},
                            }
                        }
                    )
                )
            ),
            "catboost.early_stopping.median: not with catboost",
        ),
    ]
    # A study the publisher accepts (it cannot know the workers' data roots) whose every trial
    # the workers refuse: the traversal is caught where the file would be read.
    traversal = _study_request(
        _spec(
            {"noop": {"grid": {"x": [1.0, 2.0]}}},
            dataset={"kind": "file", "path": "../../etc/passwd.csv", "target": "y"},
        )
    )
    cases.append(
        BadInput(
            "study-path-traversal",
            "studies",
            _json(traversal),
            None,
            failed_study=(traversal["study_id"], 2, "paths may not leave them"),
        )
    )

    cases.append(
        BadInput(
            "study-upload-path-only",
            "studies",
            _json(
                _study_request(
                    _spec({"noop": {}}, dataset={"kind": "upload", "target": "y", "path": "a.csv"})
                )
            ),
            "must name its sha256",
        )
    )

    # -- the workers' queue: trial messages ----------------------------------------------------
    def trial_case(name: str, reason: str, trials: list[dict[str, Any]], **over: Any) -> BadInput:
        body = _json(_trial_message(study_id, trials, **over))
        return BadInput(name, "trials", body, reason, tuple(t["trial_id"] for t in trials))

    def noop(**params: Any) -> list[dict[str, Any]]:
        return [{"trial_id": _tid(), "library": "noop", "params": params}]

    # First of the trial cases: the collector has dealt with its dead letter by the time the
    # failed results of the later ones are stored (one queue, acked in order).
    unregistered = f"never-registered-{uuid.uuid4().hex[:12]}"
    cases.append(
        BadInput(
            "trial-unregistered-study",
            "trials",
            _json(_trial_message(unregistered, noop(sleeep_s=1.0))),
            "did you mean 'sleep_s'",
            unrecorded_study=unregistered,
        )
    )
    cases += [
        BadInput("trial-malformed-json", "trials", b"\x00\xff not json", "not JSON"),
        BadInput(
            "trial-schema-version",
            "trials",
            _json(_trial_message(study_id, noop(x=1.0), schema_version=2)),
            "schema_version 2 is not supported",
        ),
        trial_case(
            "trial-unknown-library",
            "unknown library 'sklearn'",
            [{"trial_id": _tid(), "library": "sklearn", "params": {}}],
        ),
        trial_case("trial-mistyped-param", "did you mean 'sleep_s'", noop(sleeep_s=1.0)),
        trial_case("trial-wrong-type-param", "expected float", noop(sleep_s="long")),
        trial_case("trial-thread-limit", "over this worker's limit", noop(n_jobs=100_000)),
        trial_case(
            "trial-output-path",
            "set by the platform",
            [{"trial_id": _tid(), "library": "lightgbm", "params": {"output_model": "/x.txt"}}],
        ),
        trial_case(
            "trial-path-traversal",
            "paths may not leave them",
            noop(x=1.0),
            dataset={"kind": "file", "path": "../../etc/passwd.csv", "target": "y"},
        ),
        trial_case(
            "trial-path-too-long",
            "File name too long",
            noop(x=1.0),
            dataset={"kind": "file", "path": "a" * 300 + ".csv", "target": "y"},
        ),
        trial_case(
            "trial-corrupt-file",
            "cannot read",
            noop(x=1.0),
            dataset={"kind": "file", "path": "corrupt.parquet", "target": "y"},
        ),
        trial_case(
            "trial-date-features",
            "'when' is datetime64",  # strings are categories; dates are neither
            noop(x=1.0),
            dataset={"kind": "file", "path": "dates.parquet", "target": "y"},
        ),
        # Uploaded datasets (tunefleet_runtime.blobs): `seed_store` puts these in the store first.
        trial_case(
            "trial-dataset-not-stored",
            "not in the store (never uploaded, or deleted)",
            noop(x=1.0),
            dataset=_upload(MISSING_SHA),
        ),
        trial_case(
            "trial-dataset-hash-mismatch",
            "does not match its hash",
            noop(x=1.0),
            dataset=_upload(_sha(CORRUPT_TABLE)),
        ),
        trial_case(
            "trial-dataset-truncated",
            "truncated or corrupt",
            noop(x=1.0),
            dataset=_upload(_sha(TRUNCATED_TABLE)),
        ),
        trial_case(
            "trial-dataset-oversized",
            "over this worker's limit",
            noop(x=1.0),
            dataset=_upload(_sha(HUGE_TABLE)),
        ),
        trial_case(
            "trial-dataset-no-target",
            "no column 'label'",
            noop(x=1.0),
            dataset=_upload(_sha(GOOD_TABLE), target="label"),
        ),
        trial_case(
            "trial-dataset-one-class",
            "the target 'y' is 1 in all 4 rows: nothing to learn",
            noop(x=1.0),
            dataset=_upload(_sha(ONE_CLASS_TABLE)),
        ),
        BadInput(
            "refit-dataset-not-stored",
            "trials",
            _json(_refit(study_id, refit_missing, dataset=_upload(MISSING_SHA))),
            "refit: dataset",
            failed_model=refit_missing,
        ),
        BadInput(
            "refit-unknown-library",
            "trials",
            _json(_refit(study_id, refit_unknown, library="sklearn")),
            "unknown library 'sklearn'",
            failed_model=refit_unknown,
        ),
        BadInput(
            "trial-nan",
            "trials",
            _json(_trial_message(study_id, noop(x=1.0))).replace(b'"x": 1.0', b'"x": NaN'),
            "NaN is not allowed",
        ),
    ]
    infinite = noop(x=1.0)
    cases.append(
        BadInput(
            "trial-infinite-param",
            "trials",
            _json(_trial_message(study_id, infinite)).replace(b'"x": 1.0', b'"x": -1e999'),
            "not a finite number",
            (infinite[0]["trial_id"],),
        )
    )
    cases.append(BadInput("trial-oversized", "trials", huge, "bytes is over the size limit"))

    # -- the collector's queue: events ---------------------------------------------------------
    inf_id, overflow_id, dotted_id = _tid(), _tid(), _tid()
    cases += [
        BadInput("event-malformed-json", "events", b"[1, 2", "not JSON"),
        BadInput(
            "event-schema-version",
            "events",
            _json(_result(study_id, _tid(), schema_version=0)),
            "schema_version 0 is not supported",
        ),
        BadInput(
            "event-unknown-kind",
            "events",
            _json(_result(study_id, _tid(), kind="trial.exploded")),
            "unknown event kind",
        ),
        BadInput(
            "event-wrong-schema",
            "events",
            _json(_result(study_id, _tid(), status="maybe")),
            "status",
        ),
        BadInput("event-oversized", "events", huge, "bytes is over the size limit"),
        BadInput(
            "event-infinite-score",
            "events",
            _json(_result(study_id, inf_id, score=1.5, fold_scores=[1.5, 2.5]))
            .replace(b'"score": 1.5', b'"score": 1e999')
            .replace(b"[1.5, 2.5]", b"[-1e999, 0.5]"),
            None,
            sanitized_trials=(inf_id,),
        ),
        # Valid messages the store cannot hold: one must not stop the collector.
        BadInput(
            "event-int-overflow",
            "events",
            _json(_result(study_id, overflow_id, params={"x": 10**30})),
            "store refused",
        ),
        BadInput(
            "event-dotted-key",
            "events",
            _json(_result(study_id, dotted_id, params={"a.b": 1.0})),
            # MongoDB would store it and FerretDB refuse it: the contract refuses it for both.
            "is not allowed",
        ),
    ]
    return cases


def service_env(data_root: Path) -> dict[str, str]:
    """What the services need for the catalogue: its size limit, and a data root holding the
    files the worker-side cases read (a corrupt parquet, a table with a date feature)."""
    import pandas as pd

    data_root.mkdir(parents=True, exist_ok=True)
    (data_root / "corrupt.parquet").write_bytes(b"PAR1 this is not really parquet")
    when = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"])
    pd.DataFrame({"when": when, "y": [0, 1, 0]}).to_parquet(data_root / "dates.parquet")
    return {
        "TUNEFLEET_DATA_ROOTS": str(data_root),
        "TUNEFLEET_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
        "TUNEFLEET_MAX_DATASET_BYTES": str(MAX_DATASET_BYTES),
        "TUNEFLEET_CACHE_DIR": str(data_root.parent / "cache"),
    }


_ROUTES: dict[Target, Callable[[Topology], tuple[str, str]]] = {
    "studies": lambda t: (t.studies_exchange, "study"),
    "trials": lambda t: (t.trials_exchange, "trial"),
    "events": lambda t: (t.events_exchange, "trial.result"),
}


def inject(channel: BlockingChannel, topology: Topology, cases: Sequence[BadInput]) -> None:
    """Publish each case (confirmed) onto its live queue."""
    for case in cases:
        exchange, key = _ROUTES[case.target](topology)
        publish(channel, exchange, key, case.body, {CASE_HEADER: case.name})


@dataclass
class Outcome:
    """What became of the injected cases, and what did not become of them yet."""

    dead_letters: dict[str, DeadLetter] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def check(
    settings: BrokerSettings, db: Database[dict[str, Any]], cases: Sequence[BadInput]
) -> Outcome:
    """Compare the dead-letter queue and the store with what each case promises."""
    outcome = Outcome()
    for found in list_dead_letters(settings, limit=None):
        name = found.headers.get(CASE_HEADER)
        if name is not None:
            outcome.dead_letters.setdefault(name, found)
    for case in cases:
        letter = outcome.dead_letters.get(case.name)
        if case.reason is not None:
            if letter is None:
                outcome.problems.append(f"{case.name}: no dead letter yet")
            elif case.reason not in letter.reason:
                outcome.problems.append(
                    f"{case.name}: dead-lettered with {letter.reason!r}, want {case.reason!r}"
                )
        for tid in case.failed_trials:
            doc = db.trials.find_one({"_id": tid})
            if doc is None:
                outcome.problems.append(f"{case.name}: no result for trial {tid}")
            elif doc["status"] != "failed" or doc.get("reason") != "rejected":
                outcome.problems.append(f"{case.name}: trial {tid} is {doc['status']}")
            elif case.reason is not None and case.reason not in (doc.get("error") or ""):
                outcome.problems.append(f"{case.name}: trial {tid} error {doc.get('error')!r}")
        for tid in case.sanitized_trials:
            doc = db.trials.find_one({"_id": tid})
            if doc is None:
                outcome.problems.append(f"{case.name}: trial {tid} not stored")
            elif doc["score"] is not None or doc["fold_scores"] != [None, 0.5]:
                outcome.problems.append(f"{case.name}: stored unsanitized: {doc['score']!r}")
        if case.failed_study is not None:
            study_id, n, error = case.failed_study
            docs = list(db.trials.find({"study_id": study_id}))
            if db.studies.find_one({"_id": study_id}) is None:
                outcome.problems.append(f"{case.name}: study {study_id} not registered")
            elif len(docs) != n or any(
                d["status"] != "failed" or error not in (d.get("error") or "") for d in docs
            ):
                outcome.problems.append(f"{case.name}: {len(docs)}/{n} trials failed as expected")
        if case.failed_model is not None:
            model = db.models.find_one({"_id": case.failed_model})
            if model is None or model["status"] != "failed":
                outcome.problems.append(f"{case.name}: refit not recorded failed: {model!r}")
            elif case.reason is not None and case.reason not in (model.get("error") or ""):
                outcome.problems.append(f"{case.name}: model error {model.get('error')!r}")
        if case.unrecorded_study is not None:
            for collection in ("studies", "trials", "starts", "models"):
                if db[collection].find_one({"study_id": case.unrecorded_study}) is not None:
                    outcome.problems.append(
                        f"{case.name}: {collection} recorded for unregistered study"
                    )
            if db.studies.find_one({"_id": case.unrecorded_study}) is not None:
                outcome.problems.append(f"{case.name}: study {case.unrecorded_study} registered")
        if case.name == "event-dotted-key":
            tid = json.loads(case.body)["trial_id"]
            if letter is None and db.trials.find_one({"_id": tid}) is None:
                outcome.problems.append(f"{case.name}: neither stored nor dead-lettered")
    return outcome


def wait_for(
    settings: BrokerSettings,
    db: Database[dict[str, Any]],
    cases: Sequence[BadInput],
    timeout: float = 120,
) -> Outcome:
    """Poll `check` until every case has its outcome or `timeout` passes; the last outcome."""
    last: list[Outcome] = []

    def settled() -> bool:
        last[:] = [check(settings, db, cases)]
        return not last[0].problems

    with contextlib.suppress(AssertionError):  # the problems left are the caller's to report
        wait_until(settled, what="every bad input's outcome", timeout=timeout, interval=0.5)
    return last[0]
