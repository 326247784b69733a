"""`tunefleet`: submit studies, watch them, read, export and report their results.

Exit codes: 0 success; 1 the operation failed (service unreachable, unknown study or trial,
timeout); 2 bad usage, configuration or spec; 3 `--wait` saw the study end with failed trials;
4 `--wait` saw it cancelled. Human output goes to stdout (progress to stderr); `--json` prints
one JSON document (or JSON lines for lists) to stdout for scripts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from rich.table import Table
from tunefleet_contract.documents import finite
from tunefleet_contract.messages import ModelStored
from tunefleet_contract.search.views import trial_search
from tunefleet_contract.spec import SpecError
from tunefleet_runtime.broker import CONNECTION_ERRORS
from tunefleet_runtime.deadletters import (
    format_dead_letter,
    list_dead_letters,
    requeue_dead_letters,
)
from tunefleet_runtime.records import StudyStatus, TrialRecord, study_state
from tunefleet_runtime.settings import ClientSettings
from tunefleet_runtime.store import STORE_ERRORS
from tunefleet_runtime.validation import load_spec

from tunefleet.client import (
    Client,
    DatasetInUseError,
    Study,
    StudyNotFoundError,
    describe_search,
    format_duration,
)
from tunefleet.progress import Progress

__all__ = ["app", "main"]

app = typer.Typer(
    name="tunefleet",
    help="Distributed hyperparameter tuning for XGBoost, LightGBM and CatBoost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console()
err = Console(stderr=True)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TRIALS_FAILED = 3
EXIT_CANCELLED = 4

StudyArg = Annotated[str, typer.Argument(help="Study id (as `submit` and `studies` print it).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    one_line = re.sub(r"\s+", " ", message).strip()
    err.print(f"error: {one_line}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """The failures every command can meet, as one-line messages and exit codes."""
    try:
        yield
    except BrokenPipeError:
        # `tunefleet ... | head`: the reader has all it wanted; not an error, and not RabbitMQ's
        # (BrokenPipeError is a ConnectionError). Silence the flush at exit too.
        sys.stdout = Path(os.devnull).open("w")  # noqa: SIM115 - lives until the process exits
        raise typer.Exit(0) from None
    except StudyNotFoundError as exc:
        _fail(str(exc))
    except SpecError as exc:
        _fail(str(exc), EXIT_USAGE)
    except CONNECTION_ERRORS as exc:
        _fail(f"cannot reach RabbitMQ: {exc or type(exc).__name__}")
    except STORE_ERRORS as exc:
        _fail(f"cannot read MongoDB: {str(exc).split(',')[0]}")
    except TimeoutError as exc:
        _fail(str(exc))


def _client() -> Client:
    try:
        return Client(ClientSettings())
    except ValidationError as exc:
        names = ", ".join(".".join(map(str, e["loc"])).upper() for e in exc.errors())
        _fail(
            f"configuration: set {names} (e.g. RABBITMQ_URL=amqp://..., MONGODB_URL=mongodb://...)",
            EXIT_USAGE,
        )


def _json(value: Any) -> None:
    # finite: pandas turns a missing score into NaN, which JSON does not have (null does).
    sys.stdout.write(json.dumps(finite(value), default=_jsonable, allow_nan=False) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy / pandas scalars
        return value.item()
    return str(value)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _score(value: Any, digits: int = 6) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def _params(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items())
    )


def _state(p: Progress) -> str:
    return study_state(
        registered=p.registered,
        cancelled=p.cancelled,
        complete=p.finished >= p.n_trials > 0,
        started=bool(p.finished or p.running),
    )


def _status_table(p: Progress) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("study", p.study_id)
    table.add_row("state", _state(p))
    table.add_row(
        "trials",
        f"{p.finished}/{p.n_trials} finished: {p.done} done, {p.failed} failed; "
        f"{p.running} running, {p.queued} {'left' if p.cancelled else 'queued'}"
        + (f", {p.undecided} yet to decide" if p.undecided else ""),
    )
    table.add_row(
        "redelivered", f"{p.redelivered} trials, {p.redeliveries} extra deliveries in all"
    )
    table.add_row("workers seen", str(p.workers))
    table.add_row("throughput", f"{p.throughput:.2f} trials/s" if p.throughput else "-")
    eta = p.eta_s if p.eta_s is not None and p.finished < p.n_trials and not p.cancelled else None
    table.add_row("ETA", format_duration(eta) if eta is not None else "-")
    best = "-"
    if p.best_score is not None:
        best = f"{p.metric or 'score'} {p.best_score:.6f} (trial {p.best_trial_id})"
    table.add_row("best so far", best)
    for search in p.searches:
        table.add_row(search.library, describe_search(search, p.metric))
    return table


def _finish(status: StudyStatus, as_json: bool) -> None:
    """After --wait: the summary line and the exit code it deserves."""
    summary = {
        "study_id": status.study_id,
        "n_trials": status.n_trials,
        "done": status.done,
        "failed": status.failed,
        "cancelled": status.cancelled,
        "best_score": status.best_score,
        "metric": status.metric,
    }
    if as_json:
        _json(summary)
    else:
        best = f"{status.best_score:.6f}" if status.best_score is not None else "-"
        out.print(
            f"{status.study_id}: {status.done} done, {status.failed} failed of "
            f"{status.n_trials}{' (cancelled)' if status.cancelled else ''}; "
            f"best {status.metric or 'score'} {best}",
            highlight=False,
        )
    if status.cancelled:
        raise typer.Exit(EXIT_CANCELLED)
    if status.failed:
        raise typer.Exit(EXIT_TRIALS_FAILED)


def _wait(
    client: Client, study_id: str, timeout: float | None, as_json: bool, revision: int = 0
) -> None:
    if as_json:
        status = client.wait(study_id, timeout_s=timeout, revision=revision)
    else:
        # Not client.study(): the study may not be registered yet, right after submit.
        study = Study(study_id, client, revision=revision)
        status = study.wait(progress=True, timeout_s=timeout)
    _finish(status, as_json)


WaitOpt = Annotated[bool, typer.Option("--wait", help="Show live progress until the study ends.")]
TimeoutOpt = Annotated[
    float | None, typer.Option(help="With --wait: give up after this many seconds (exit 1).")
]


@app.command()
def submit(
    spec: Annotated[Path, typer.Argument(help="Study spec, YAML or JSON (see docs/spec.md).")],
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate a study spec and publish it; nothing is published if it is invalid."""
    with _errors():
        load_spec(spec)  # a bad spec is a usage error before any connection is tried
        client = _client()
        # A local dataset path is uploaded now (relative to the spec): the study id follows it.
        study = client.publishable(spec)
        before = client.store.study(study.study_id())
        study_id = client.submit(study)
        # The planner decides the trials; until it has, the spec's count is an upper bound.
        record = before or client.registered(study_id)
        n_trials = record.n_trials if record is not None else None
        if as_json:
            _json(
                {
                    "study_id": study_id,
                    "n_trials": n_trials,
                    "at_most": study.n_trials(),
                    "submitted_before": before is not None,
                }
            )
        elif before is not None:
            out.print(
                f"{study_id} was submitted before ({before.n_trials} trials): nothing runs "
                f"again; `tunefleet resume {study_id}` runs what is missing",
                highlight=False,
            )
        elif n_trials is None:
            out.print(
                f"submitted {study_id} (at most {study.n_trials()} trials; not registered yet)",
                highlight=False,
            )
        else:
            out.print(f"submitted {study_id} ({n_trials} trials)", highlight=False)
        if wait:
            _wait(client, study_id, timeout, as_json)


def _ended(p: Progress) -> bool:
    return p.complete or p.cancelled


def _latest(client: Client) -> str:
    frame = client.studies(limit=1)
    if frame.empty:
        _fail("no studies yet; submit one with `tunefleet submit SPEC`")
    return str(frame["study_id"].iloc[0])


@app.command()
def status(
    study: Annotated[
        str | None, typer.Argument(help="Study id; the most recent study when omitted.")
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Keep updating from the live event stream.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Trials (queued, running, done, failed), workers, ETA, best so far, each library's search."""
    with _errors():
        client = _client()
        study_id = study or _latest(client)
        client.study(study_id)  # an unknown id fails here, before any watching
        if not watch:
            snapshot = client.snapshot(study_id)
            if as_json:
                _json(snapshot.as_dict())
            else:
                out.print(_status_table(snapshot))
            return
        if as_json:
            # JSON lines, one per update, for scripts that follow a study.
            for snapshot in client.progress(study_id, until=_ended):
                _json(snapshot.as_dict())
            return
        with Live(console=out, refresh_per_second=4, transient=False) as live:
            for snapshot in client.progress(study_id, until=_ended):
                live.update(_status_table(snapshot))


@app.command()
def top(
    study: StudyArg,
    n: Annotated[int, typer.Option("-n", min=1, help="How many trials (per library).")] = 10,
    by_library: Annotated[
        bool, typer.Option("--by-library", help="The best n of each library.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """The leaderboard: best trials first."""
    with _errors():
        client = _client()
        spec = client.stored_spec(study)
        rows: list[TrialRecord] = []
        if by_library:
            for library in spec.search:
                rows.extend(client.best(study, n, library=library))
        else:
            rows = client.best(study, n)
        decisions = client.decisions(study, [row.trial_id for row in rows])

        def search(row: TrialRecord) -> str:
            return trial_search(spec, decisions, row.library, row.params, row.trial_id)

        if as_json:
            for row in rows:
                _json({**row.as_dict(), "search": search(row)})
            return
        table = Table(
            title=f"{study}: best {n}{' per library' if by_library else ''}",
            caption="search: what decided the trial (asha N: its rung of N rounds); "
            "params: the searched ones (fixed ones are in the spec)",
        )
        for column in ("#", "trial", "library", "search", "score", "std", "fit s", "params"):
            table.add_column(
                column, justify="right" if column in {"#", "score", "std", "fit s"} else "left"
            )
        ranks: dict[str, int] = {}
        for row in rows:
            key = row.library if by_library else ""
            ranks[key] = ranks.get(key, 0) + 1
            fixed = spec.search[row.library].fixed
            table.add_row(
                str(ranks[key]),
                row.trial_id[:10],
                row.library,
                search(row),
                _score(row.score),
                _score(row.score_std, 4),
                f"{row.fit_time_s or 0:.2f}",
                _params({k: v for k, v in row.params.items() if k not in fixed}),
            )
        out.print(table)


@app.command()
def show(
    trial: Annotated[str, typer.Argument(help="Trial id, or its first 6+ hex digits.")],
    as_json: JsonOpt = False,
) -> None:
    """One trial: parameters, score per fold, timings, worker, every delivery attempt."""
    with _errors():
        try:
            detail = _client().trial(trial)
        except ValueError as exc:
            _fail(str(exc), EXIT_USAGE)
        if detail is None:
            _fail(f"no trial {trial!r} has started or finished")
        doc = detail.as_dict()
        if as_json:
            _json(doc)
            return
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        for key in ("trial_id", "study_id", "library", "status", "reason", "metric"):
            if doc.get(key) is not None:
                table.add_row(key, str(doc[key]))
        if doc["superseded"]:
            table.add_row("superseded", "yes: a resume with a fixed spec dropped this trial")
        if doc.get("score") is not None:
            table.add_row("score", f"{_score(doc['score'])} ± {_score(doc.get('score_std'), 4)}")
            folds = ", ".join(_score(s, 4) for s in doc.get("fold_scores") or [])
            table.add_row("fold scores", folds)
        for key, value in sorted((doc.get("params") or {}).items()):
            table.add_row(f"  {key}", str(value))
        if doc.get("fit_time_s") is not None:
            table.add_row(
                "fit / score s", f"{doc['fit_time_s']:.3f} / {doc.get('score_time_s') or 0:.3f}"
            )
            shared = doc.get("fit_shared_by") or 1
            if shared > 1:
                table.add_row("fit shared", f"with its family: {shared} trials, an equal part each")
        if doc.get("library_version"):
            table.add_row("library version", doc["library_version"])
        if doc.get("worker"):
            table.add_row("worker", doc["worker"])
        table.add_row("finished", _when(doc.get("finished_at")))
        for start in doc["starts"]:
            label = f"attempt {start['attempt']}"
            if start["revision"]:
                label += f" (revision {start['revision']})"
            table.add_row(label, f"{start['worker']} at {_when(start['started_at'])}")
        if doc.get("error"):
            table.add_row("error", doc["error"])
        out.print(table)


@app.command()
def results(
    study: StudyArg,
    n: Annotated[int, typer.Option("-n", min=1, help="Show this many trials.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The study's trials with a result, best first (failed ones last)."""
    with _errors():
        client = _client()
        client.study(study)
        rows = [record.as_dict() for record in client.trials(study)[:n]]
        if as_json:
            for row in rows:
                _json(row)
            return
        table = Table(title=study)
        for column in ("rank", "library", "score", "std", "status", "fit s", "params"):
            table.add_column(
                column, justify="right" if column in {"rank", "score", "std", "fit s"} else "left"
            )
        for rank, row in enumerate(rows, 1):
            table.add_row(
                str(rank),
                row["library"],
                _score(row.get("score")),
                _score(row.get("score_std"), 4),
                row["status"]
                if row["status"] == "done"
                else f"{row['status']}: {row.get('reason')}",
                f"{row.get('fit_time_s') or 0:.2f}",
                _params(row["params"]),
            )
        out.print(table)


class ExportFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"
    json = "json"


@app.command()
def export(
    study: StudyArg,
    fmt: Annotated[
        ExportFormat, typer.Option("--format", "-f", help="csv, parquet or json (records).")
    ] = ExportFormat.csv,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="File to write; default <study>.<format>; - is stdout."
        ),
    ] = None,
) -> None:
    """Every trial with a result, one row each, parameters as param_<name> columns."""
    with _errors():
        frame = _client().results(study)
        target = output or Path(f"{study}.{fmt.value}")
        if str(target) == "-":
            if fmt is ExportFormat.parquet:
                _fail("parquet is binary: give a file with -o", EXIT_USAGE)
            text = frame.to_csv(index=False) if fmt is ExportFormat.csv else _records(frame)
            sys.stdout.write(text)
            return
        if fmt is ExportFormat.csv:
            frame.to_csv(target, index=False)
        elif fmt is ExportFormat.parquet:
            frame.to_parquet(target, index=False)
        else:
            target.write_text(_records(frame), encoding="utf-8")
        err.print(f"wrote {len(frame)} trials to {target}", highlight=False)


def _records(frame: Any) -> str:
    return str(frame.to_json(orient="records", date_format="iso", indent=1)) + "\n"


@app.command()
def report(
    study: StudyArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path(
        "report.html"
    ),
) -> None:
    """One self-contained HTML file (opens offline): plots, importance, top trials, spec."""
    from tunefleet.report import write_report

    with _errors():
        client = _client()
        size = write_report(client, study, output)
        err.print(f"wrote {output} ({size / 1e6:.1f} MB)", highlight=False)


@app.command()
def cancel(
    study: StudyArg,
    reason: Annotated[str | None, typer.Option(help="Recorded with the cancel.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop a study: queued trials are skipped by workers; results so far are kept."""
    with _errors():
        client = _client()
        client.cancel(study, reason=reason)
        left = len(client.missing_trials(study))
        if as_json:
            _json({"study_id": study, "cancelled": True, "trials_without_result": left})
        else:
            out.print(
                f"cancelled {study}: {left} trials without a result will be skipped "
                f"(`tunefleet resume {study}` runs them)",
                highlight=False,
            )


@app.command()
def resume(
    study: StudyArg,
    spec: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            help="A fixed spec for this study (same name): only its trials without a result run.",
        ),
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Run the failed trials again too.")
    ] = False,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run only what is missing: after a crash, a cancel, a purge, or with a fixed --spec."""
    with _errors():
        fixed = load_spec(spec) if spec is not None else None
        client = _client()
        done = client.resume(study, fixed, rerun_failed=failed)
        if as_json:
            _json(
                {
                    "study_id": study,
                    "revision": done.revision,
                    "n_trials": done.n_trials,
                    "republished": done.republished,
                    "kept": done.kept,
                    "kept_failed": done.kept_failed,
                    "superseded": done.superseded,
                }
            )
        elif done.published:
            what = "without a result" + (" or failed" if failed else "")
            out.print(
                f"resumed {study} as revision {done.revision}: republished {done.republished} "
                f"of {done.n_trials} trials ({what}); kept {done.kept} results"
                + (f"; {done.superseded} superseded by the fixed spec" if done.superseded else ""),
                highlight=False,
            )
        else:
            hint = (
                f" ({done.kept_failed} failed: --failed runs them again)"
                if done.kept_failed
                else ""
            )
            out.print(
                f"{study}: every trial has a result{hint}; nothing to resume", highlight=False
            )
        if wait and done.published:
            _wait(client, study, timeout, as_json, revision=done.revision)


@app.command()
def studies(
    n: Annotated[int, typer.Option("-n", min=1, help="How many, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Recent studies and how far each has got."""
    with _errors():
        frame = _client().studies(limit=n)
        if as_json:
            for row in frame.to_dict(orient="records"):
                _json(row)
            return
        table = Table()
        for column in ("study", "submitted", "state", "trials", "done", "failed", "best"):
            table.add_column(
                column,
                justify="right" if column in {"trials", "done", "failed", "best"} else "left",
                no_wrap=column == "study",  # an id cut short is no id at all
            )
        for row in frame.to_dict(orient="records"):
            best = row["best_score"]
            table.add_row(
                str(row["study_id"]),
                row["submitted_at"].strftime("%Y-%m-%d %H:%M:%S"),
                str(row["state"]),
                str(row["n_trials"]),
                str(row["done"]),
                str(row["failed"]),
                "-" if best is None or best != best else f"{row['metric']} {best:.4f}",
            )
        out.print(table)


@app.command("dead-letters")
def dead_letters(
    n: Annotated[int, typer.Option("-n", "--limit", min=1, help="At most this many.")] = 50,
    reason: Annotated[
        str | None, typer.Option(help="Only those whose reason contains this text.")
    ] = None,
    requeue: Annotated[
        bool, typer.Option("--requeue", help="Send them back to the queue they came from.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Messages that could not be processed, oldest first, and why (see docs/reliability.md)."""
    with _errors():
        settings = _client().settings
        if requeue:
            moved = requeue_dead_letters(settings, limit=n, reason_contains=reason)
            out.print(f"requeued {moved} dead letters", highlight=False)
            return
        letters = list_dead_letters(settings, limit=n, reason_contains=reason)
        for letter in letters:
            if as_json:
                _json(letter.as_dict())
            else:
                out.print(format_dead_letter(letter), markup=False, highlight=False, soft_wrap=True)
        if not letters and not as_json:
            out.print("no dead letters")


TrialOpt = Annotated[
    str | None, typer.Option("--trial", help="A trial id or unique prefix (default: the best).")
]


def _describe_model(model: ModelStored) -> str:
    lines = [
        f"study            {model.study_id}",
        f"trial            {model.trial_id}",
        f"library          {model.library} {model.library_version or ''}",
        f"status           {model.status}",
    ]
    if model.status == "done":
        lines += [
            f"format           {model.format}, {model.size:,} bytes",
            f"sha256           {model.sha256}",
            f"trained on       {model.n_rows:,} rows; fit {model.fit_time_s or 0:.2f} s",
        ]
    else:
        lines.append(f"error            {model.error}")
    dataset = getattr(model.dataset, "sha256", None) or model.dataset.model_dump_json()
    lines += [
        f"dataset          {dataset}",
        f"params           {_params(model.params)}",
        f"features         {', '.join(model.feature_names) or '-'}",
        f"categorical      {', '.join(c.feature for c in model.categories) or '-'}",
        f"classes          {', '.join(map(str, model.classes)) or '-'}",
    ]
    return "\n".join(lines)


@app.command()
def refit(
    study: StudyArg,
    trial: TrialOpt = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until the model is stored (or the refit fails).")
    ] = False,
    timeout: TimeoutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a trial (the best by default) on the whole dataset; store its model, natively."""
    with _errors():
        client = _client()
        try:
            trial_id = client.refit(study, trial)
        except LookupError as exc:
            _fail(str(exc))
        if not wait:
            if as_json:
                _json({"study_id": study, "trial_id": trial_id})
            else:
                out.print(f"refit of trial {trial_id} requested", highlight=False)
            return
        try:
            model = client.wait_model(study, trial_id, timeout_s=timeout or 3600)
        except RuntimeError as exc:
            _fail(str(exc))
        if as_json:
            _json(model.model_dump(mode="json"))
        else:
            out.print(_describe_model(model), markup=False, highlight=False)


@app.command()
def model(
    study: StudyArg,
    trial: TrialOpt = None,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Write the model file (native format) here."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """A stored model's description (the best trial's by default); -o downloads it."""
    with _errors():
        client = _client()
        try:
            found = client.model(study, trial)
        except LookupError as exc:
            _fail(str(exc))
        if found is None:
            _fail(f"study {study}: no stored model of that trial; run `tunefleet refit {study}`")
        if output is not None:
            if found.status != "done":
                _fail(f"trial {found.trial_id}: the refit failed: {found.error}")
            output.write_bytes(client.model_bytes(found))
        if as_json:
            _json({**found.model_dump(mode="json"), "path": str(output) if output else None})
            return
        out.print(_describe_model(found), markup=False, highlight=False)
        if output is not None:
            out.print(f"wrote {output}", highlight=False)


@app.command()
def datasets(
    delete: Annotated[
        str | None, typer.Option("--delete", help="Delete this dataset (8+ hex digits).")
    ] = None,
    prune: Annotated[
        bool, typer.Option("--prune", help="Delete every dataset no study uses.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Uploaded datasets: size, when, and the studies that use them; delete unused ones."""
    with _errors():
        client = _client()
        if delete is not None:
            try:
                gone = client.delete_dataset(delete)
            except (LookupError, DatasetInUseError) as exc:
                _fail(str(exc))
            out.print(f"deleted dataset {gone.sha256} ({gone.size:,} bytes)", highlight=False)
            return
        rows = client.datasets()
        if prune:
            unused = [info for info, users in rows if not users]
            for info in unused:
                client.delete_dataset(info.sha256)
            orphans = client.blobs.prune_orphans()
            out.print(
                f"deleted {len(unused)} unused datasets "
                f"({sum(i.size for i in unused):,} bytes); {orphans} broken uploads removed",
                highlight=False,
            )
            return
        if as_json:
            for info, users in rows:
                _json({**dataclasses.asdict(info), "studies": users})
            return
        table = Table()
        for column in ("sha256", "name", "format", "bytes", "uploaded", "studies"):
            table.add_column(column, justify="right" if column == "bytes" else "left")
        for info, users in rows:
            table.add_row(
                info.sha256[:12],
                info.name,
                info.format,
                f"{info.size:,}",
                _when(info.created_at),
                ", ".join(users) or "(none)",
            )
        out.print(table)


# Exports, results tables and reports need the `client` extra; the services install none of it.
_CLIENT_EXTRA = {"pandas", "plotly", "pyarrow"}


def main() -> None:
    try:
        app()
    except ModuleNotFoundError as exc:
        if exc.name not in _CLIENT_EXTRA:
            raise
        err.print(
            f"error: this command needs {exc.name}: pip install 'tunefleet[client]'",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)
