from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tunefleet_contract.spec import LARGE_STUDY, SpecError
from tunefleet_runtime.validation import load_spec, parse_spec, resolved_task


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "dataset": "breast_cancer",
        "search": {"xgboost": {"grid": {"max_depth": [2, 3]}}},
    }
    base.update(overrides)
    return base


def rejected(data: Any) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return str(info.value)


def test_checkpoint_is_folds_unless_the_study_chooses_rounds() -> None:
    plain, folds = parse_spec(spec()), parse_spec(spec(checkpoint="folds"))
    assert plain.checkpoint == "folds"
    assert plain.study_id() == folds.study_id()  # the default keeps the ids it always had
    rounds = parse_spec(spec(checkpoint="rounds"))
    assert rounds.checkpoint == "rounds" and rounds.study_id() != plain.study_id()
    assert "checkpoint" in rejected(spec(checkpoint="boosters"))
    assert "'folds' or 'rounds'" in rejected(spec(checkpoint="boosters"))


def test_round_checkpoints_are_refused_with_early_stopping() -> None:
    stopped = {"xgboost": {"early_stopping": {"rounds": 5, "max_rounds": 50}}}
    message = rejected(spec(search=stopped, checkpoint="rounds"))
    assert "checkpoint: rounds is not with early_stopping (xgboost)" in message
    assert parse_spec(spec(search=stopped)).checkpoint == "folds"


def test_minimal_spec_fills_defaults() -> None:
    study = parse_spec(spec())
    assert study.cv.folds == 5 and study.cv.seed == 0
    assert study.chunk_size == 1
    assert resolved_task(study) == "classification"
    assert study.resolved_metric("classification") == "accuracy"
    assert study.n_trials() == 2


def test_dataset_forms() -> None:
    synthetic = parse_spec(
        spec(dataset={"kind": "make_regression", "n_samples": 100, "noise": 0.5, "seed": 3})
    )
    assert resolved_task(synthetic) == "regression"
    file = parse_spec(spec(dataset={"kind": "file", "path": "a/b.parquet", "target": "y"}))
    assert resolved_task(file) is None  # inferred by the worker from the target column


def test_study_id_is_stable_and_content_addressed() -> None:
    a, b = parse_spec(spec()), parse_spec(spec())
    assert a.study_id() == b.study_id()
    assert a.study_id().startswith("study-")
    changed = parse_spec(spec(cv={"folds": 3}))
    assert changed.study_id() != a.study_id()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("not a mapping", "a spec is a mapping"),
        (spec(dataset="mnist"), "dataset.name"),
        (spec(search={"sklearn": {}}), "sklearn: unknown library"),
        (spec(metric="rocauc"), "unknown scikit-learn scorer 'rocauc' (did you mean 'roc_auc'?)"),
        (spec(metric="r2"), "metric: 'r2' is a regression metric"),
        (spec(task="regression"), "task: the dataset is a classification dataset"),
        (
            spec(search={"xgboost": {"grid": {"max_dept": [2]}}}),
            "xgboost.grid.max_dept: unknown parameter for xgboost (did you mean 'max_depth'?)",
        ),
        (
            spec(search={"xgboost": {"grid": {"max_depth": ["deep"]}}}),
            "xgboost.grid.max_depth: expected int, got 'deep'",
        ),
        (
            spec(search={"lightgbm": {"fixed": {"learning_rate": -1.0}}}),
            "lightgbm.fixed.learning_rate: -1.0 must be > 0",
        ),
        (spec(search={"catboost": {"fixed": {"train_dir": "/tmp"}}}), "set by the platform"),
        (spec(search={"xgboost": {"grid": {"max_depth": []}}}), "at least 1 item"),
        (spec(cv={"folds": 1}), "cv.folds"),
        (spec(unknown_field=1), "unknown_field: Extra inputs are not permitted"),
        (
            spec(dataset={"kind": "file", "path": "../../etc/passwd", "target": "y"}),
            "dataset.path: must end in .csv or .parquet",
        ),
    ],
)
def test_invalid_specs_name_the_field(data: Any, expected: str) -> None:
    assert expected in rejected(data)


def test_huge_grid_refused_with_count_unless_allowed() -> None:
    grid = {"x": [float(i) for i in range(10_000)], "score": [float(i) for i in range(1_000)]}
    message = rejected(spec(search={"noop": {"grid": grid}}))
    assert "10,000,000 trials" in message and f"{LARGE_STUDY:,}" in message
    assert parse_spec(spec(search={"noop": {"grid": grid}}, allow_large=True)).n_trials() == 10**7


def test_load_spec_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps(spec()))
    (tmp_path / "s.yaml").write_text(
        "dataset: iris\nsearch:\n  lightgbm:\n    grid: {num_leaves: [4]}\n"
    )
    assert load_spec(tmp_path / "s.json").n_trials() == 2
    assert resolved_task(load_spec(tmp_path / "s.yaml")) == "classification"
    (tmp_path / "bad.yaml").write_text("dataset: [unclosed\n")
    with pytest.raises(SpecError, match="not valid yaml"):
        load_spec(tmp_path / "bad.yaml")
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
