"""`tunefleet`: submit studies, watch them, read their results."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tunefleet.broker import CONNECTION_ERRORS
from tunefleet.client import Client
from tunefleet.settings import ClientSettings
from tunefleet.spec import SpecError, load_spec
from tunefleet.store import StudyStatus

__all__ = ["app", "main"]

app = typer.Typer(
    name="tunefleet",
    help="Distributed hyperparameter tuning for XGBoost, LightGBM and CatBoost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    one_line = re.sub(r"\s+", " ", message).strip()
    err.print(f"error: {one_line}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _client() -> Client:
    try:
        return Client(ClientSettings())
    except ValidationError as exc:
        names = ", ".join(".".join(map(str, e["loc"])).upper() for e in exc.errors())
        _fail(
            f"configuration: set {names} (e.g. RABBITMQ_URL=amqp://..., MONGODB_URL=mongodb://...)",
            2,
        )


def _status_line(status: StudyStatus) -> str:
    best = f"{status.best_score:.6g}" if status.best_score is not None else "-"
    return (
        f"{status.study_id}: {status.done} done, {status.failed} failed, {status.running} running, "
        f"{status.queued} queued of {status.n_trials}; redelivered {status.redelivered}; "
        f"best {status.metric or 'score'} {best}"
    )


def _wait(client: Client, study_id: str, timeout: float | None) -> StudyStatus:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as progress:
        bar = progress.add_task(study_id, total=None, detail="")

        def show(status: StudyStatus) -> None:
            best = f"best {status.best_score:.5g}" if status.best_score is not None else ""
            progress.update(
                bar,
                total=status.n_trials,
                completed=status.finished,
                detail=f"{status.failed} failed {best}",
            )

        try:
            return client.wait(study_id, timeout_s=timeout, on_progress=show)
        except TimeoutError as exc:
            _fail(str(exc))


@app.command()
def submit(
    spec: Annotated[Path, typer.Argument(help="Study spec, YAML or JSON.")],
    wait: Annotated[
        bool, typer.Option("--wait", help="Show progress until the study ends.")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(help="Give up waiting after this many seconds.")
    ] = None,
) -> None:
    """Validate a study spec and publish it; nothing is published if it is invalid."""
    try:
        study = load_spec(spec)
    except SpecError as exc:
        _fail(str(exc), 2)
    client = _client()
    try:
        study_id = client.submit(study)
    except CONNECTION_ERRORS as exc:
        _fail(f"cannot reach RabbitMQ: {exc}")
    out.print(f"submitted {study_id} ({study.n_trials()} trials)", highlight=False)
    if wait:
        status = _wait(client, study_id, timeout)
        out.print(_status_line(status), highlight=False)


@app.command()
def status(study: Annotated[str, typer.Argument(help="Study id.")]) -> None:
    """Trials done, failed, running and queued, and the best score so far."""
    result = _client().status(study)
    if result is None:
        _fail(f"no study {study!r}")
    out.print(_status_line(result), highlight=False)


@app.command()
def results(
    study: Annotated[str, typer.Argument(help="Study id.")],
    n: Annotated[int, typer.Option("-n", min=1, help="Show this many trials.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, for scripts.")] = False,
) -> None:
    """The study's trials, best first."""
    client = _client()
    if client.status(study) is None:
        _fail(f"no study {study!r}")
    rows = client.trials(study)[:n]
    if as_json:
        for row in rows:
            sys.stdout.write(json.dumps(row, default=str) + "\n")
        return
    table = Table(title=study)
    for column in ("rank", "library", "score", "std", "status", "fit s", "params"):
        table.add_column(
            column, justify="right" if column in {"rank", "score", "std", "fit s"} else "left"
        )
    for rank, row in enumerate(rows, 1):
        score = row.get("score")
        std = row.get("score_std")
        params = ", ".join(f"{k}={v}" for k, v in sorted(row["params"].items()))
        table.add_row(
            str(rank),
            row["library"],
            "-" if score is None else f"{score:.6f}",
            "-" if std is None else f"{std:.4f}",
            row["status"] if row["status"] == "done" else f"{row['status']}: {row.get('reason')}",
            f"{row.get('fit_time_s') or 0:.2f}",
            params,
        )
    out.print(table)


def main() -> None:
    app()
