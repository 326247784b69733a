"""A spec's full validation: its structure (the contract), the catalogue, and scikit-learn's
scorer names. Run once, where a spec enters the system: at submit (CLI, Python API) and in the
planner. Decoding a message checks structure only.

scikit-learn is imported on first use only: install `tunefleet-runtime[validation]` where specs
are validated (the planner, the client); the collector never validates one.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import yaml
from pydantic import ValidationError
from tunefleet_contract.spec import (
    SpecError,
    StudySpec,
    Task,
    coherence_problem,
    format_validation_error,
    search_problems,
)

__all__ = [
    "load_spec",
    "metric_task",
    "parse_spec",
    "resolved_task",
    "scoring_key",
    "validate_spec",
    "warm_up",
]


@cache
def _scorer_tasks() -> dict[str, Task | None]:
    """Every scikit-learn scorer name, with the task its metric belongs to."""
    from sklearn.metrics import get_scorer, get_scorer_names

    tasks: dict[str, Task | None] = {}
    for name in get_scorer_names():
        module = getattr(getattr(get_scorer(name), "_score_func", None), "__module__", "")
        if "cluster" in module:
            continue  # clustering scores compare labelings, not predictions to a target
        tasks[name] = "regression" if "_regression" in module else "classification"
    return tasks


def warm_up() -> None:
    """Load scikit-learn's scorer names now; a service's first spec would otherwise wait ~1 s."""
    _scorer_tasks()


def metric_task(metric: str) -> Task | None:
    """The task a scikit-learn scorer belongs to (None: not a scorer)."""
    return _scorer_tasks().get(metric)


def resolved_task(spec: StudySpec) -> Task | None:
    """The task, where the spec, its dataset or its metric tells it; None means infer it from
    the file's target column (the worker does)."""
    if spec.task is not None:
        return spec.task
    return spec.dataset_task() or (metric_task(spec.metric) if spec.metric else None)


def scoring_key(spec: StudySpec) -> str:
    """What a trial's score depends on besides its parameters: the data, the task, the metric
    and the folds (resolved, so `metric: accuracy` and no metric agree).

    Trial ids include it: a spec fix that changes how trials are scored reruns them all
    instead of ranking scores of two set-ups side by side."""
    task = resolved_task(spec)
    scoring: dict[str, object] = {
        "dataset": spec.dataset.model_dump(mode="json"),
        "task": task,
        "metric": spec.resolved_metric(task) if task else spec.metric,
        "cv": spec.cv.model_dump(mode="json"),
    }
    stopping = {
        library: part.early_stopping.canonical()
        for library, part in spec.search.items()
        if part.early_stopping is not None
    }
    if stopping:
        # Only when given, so that every study without it keeps its trial ids. Early stopping
        # decides how a trial of the same parameters is trained and scored.
        scoring["early_stopping"] = stopping
    text = json.dumps(scoring, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _metric_problem(metric: str | None) -> str | None:
    if metric is None or metric in _scorer_tasks():
        return None
    near = difflib.get_close_matches(metric, list(_scorer_tasks()), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"metric: unknown scikit-learn scorer {metric!r}{hint}"


def validate_spec(spec: StudySpec) -> StudySpec:
    """The spec, if it can be run; else SpecError naming each field and what is wrong.

    The per-field problems all at once (metric, then search); what concerns the spec as a
    whole only when every field is right."""
    problems = [p for p in [_metric_problem(spec.metric)] if p is not None]
    found = search_problems(spec.search)
    if found:
        problems.append("search: " + "; ".join(found))
    if not problems:
        task = resolved_task(spec)
        whole = coherence_problem(
            spec, task, metric_task(spec.metric) if spec.metric is not None else None
        )
        if whole is not None:
            problems.append(whole)
    if problems:
        raise SpecError("; ".join(problems))
    return spec


def parse_spec(data: object) -> StudySpec:
    """Validate a spec given as a mapping (the Python API's form)."""
    if not isinstance(data, Mapping):
        raise SpecError(f"a spec is a mapping of fields, not {type(data).__name__}")
    try:
        spec = StudySpec.model_validate(dict(data))
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc)) from None
    return validate_spec(spec)


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a YAML or JSON spec file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{file}: cannot read: {exc}") from None
    try:
        # JSON is YAML, but a JSON file deserves JSON's error messages.
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"{file}: not valid {file.suffix.lstrip('.') or 'YAML'}: {exc}") from None
    except RecursionError:
        raise SpecError(f"{file}: nested too deeply to be a spec") from None
    return parse_spec(data)
