"""The commands that read a study's results: top, show, results, export, report, studies."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from tunefleet_contract.search.views import trial_search
from tunefleet_runtime.records import TrialRecord

from tunefleet.cli import common
from tunefleet.cli.common import (
    EXIT_USAGE,
    JsonOpt,
    StudyArg,
    emit,
    err,
    errors,
    fail,
    out,
    params,
    score,
    when,
)

__all__ = ["export", "report", "results", "show", "studies", "top"]


def top(
    study: StudyArg,
    n: Annotated[int, typer.Option("-n", min=1, help="How many trials (per library).")] = 10,
    by_library: Annotated[
        bool, typer.Option("--by-library", help="The best n of each library.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """The leaderboard: best trials first."""
    with errors():
        client = common.client()
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
                emit({**row.as_dict(), "search": search(row)})
            return
        # The rounds column only where early stopping chose some: other trials name theirs.
        stopped = any(row.best_round is not None for row in rows)
        table = Table(
            title=f"{study}: best {n}{' per library' if by_library else ''}",
            caption="search: what decided the trial (asha N: its rung of N rounds); "
            "params: the searched ones (fixed ones are in the spec)"
            + ("; rounds: chosen by early stopping (best / trained)" if stopped else ""),
        )
        columns = ["#", "trial", "library", "search", "score", "std", "fit s"]
        columns += ["rounds", "params"] if stopped else ["params"]
        for column in columns:
            table.add_column(
                column,
                justify="right" if column in {"#", "score", "std", "fit s", "rounds"} else "left",
            )
        ranks: dict[str, int] = {}
        for row in rows:
            key = row.library if by_library else ""
            ranks[key] = ranks.get(key, 0) + 1
            fixed = spec.search[row.library].fixed
            cells = [
                str(ranks[key]),
                row.trial_id[:10],
                row.library,
                search(row),
                score(row.score),
                score(row.score_std, 4),
                f"{row.fit_time_s or 0:.2f}",
            ]
            if stopped:
                stop = row.early_stopping or {}
                cells.append(f"{row.best_round} / {stop['rounds_trained']}" if stop else "")
            cells.append(params({k: v for k, v in row.params.items() if k not in fixed}))
            table.add_row(*cells)
        out.print(table)


def show(
    trial: Annotated[str, typer.Argument(help="Trial id, or its first 6+ hex digits.")],
    as_json: JsonOpt = False,
) -> None:
    """One trial: parameters, score per fold, timings, worker, every delivery attempt."""
    with errors():
        try:
            detail = common.client().trial(trial)
        except ValueError as exc:
            fail(str(exc), EXIT_USAGE)
        if detail is None:
            fail(f"no trial {trial!r} has started or finished")
        doc = detail.as_dict()
        if as_json:
            emit(doc)
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
            table.add_row("score", f"{score(doc['score'])} ± {score(doc.get('score_std'), 4)}")
            folds = ", ".join(score(s, 4) for s in doc.get("fold_scores") or [])
            table.add_row("fold scores", folds)
        if doc.get("resumed_folds"):
            table.add_row("resumed", f"{doc['resumed_folds']} folds taken from fold checkpoints")
        if doc.get("resumed_at_round"):
            table.add_row(
                "resumed at round",
                f"{doc['resumed_at_round']}: a fold continued from a round checkpoint (exact "
                "for XGBoost and LightGBM without subsampling only: docs/spec.md, Checkpoints)",
            )
        for key, value in sorted((doc.get("params") or {}).items()):
            table.add_row(f"  {key}", str(value))
        if doc.get("fit_time_s") is not None:
            table.add_row(
                "fit / score s", f"{doc['fit_time_s']:.3f} / {doc.get('score_time_s') or 0:.3f}"
            )
            shared = doc.get("fit_shared_by") or 1
            if shared > 1:
                table.add_row("fit shared", f"with its family: {shared} trials, an equal part each")
        if doc.get("early_stopping"):
            for label, text in _stopping_rows(doc["early_stopping"]):
                table.add_row(label, text)
        if doc.get("library_version"):
            table.add_row("library version", doc["library_version"])
        if doc.get("worker"):
            table.add_row("worker", doc["worker"])
        table.add_row("finished", when(doc.get("finished_at")))
        for start in doc["starts"]:
            label = f"attempt {start['attempt']}"
            if start["revision"]:
                label += f" (revision {start['revision']})"
            table.add_row(label, f"{start['worker']} at {when(start['started_at'])}")
        if doc.get("error"):
            table.add_row("error", doc["error"])
        out.print(table)


_BARS = "▁▂▃▄▅▆▇█"


def _stopping_rows(stop: dict[str, Any], width: int = 60) -> list[tuple[str, str]]:
    """How early stopping chose the rounds, and the mean validation curve as a line of bars
    (higher bar: better), the best round marked under it."""
    rows = [
        (
            "early stopping",
            f"best round {stop['best_round']} (stopped after {stop['stop_round']}, "
            f"{stop['rounds_trained']} trained, limit {stop['max_rounds']}, "
            f"patience {stop['rounds']})",
        ),
        (
            "  metric",
            f"{stop['metric']} (mean over folds at the best round: "
            f"{score(stop.get('best_value'), 6)})",
        ),
    ]
    rounds, means = stop.get("curve_rounds") or [], stop.get("curve_mean") or []
    points = [(r, m) for r, m in zip(rounds, means, strict=False) if m is not None]
    if len(points) < 2:
        return rows
    step = max(1, -(-len(points) // width))
    shown = points[::step]
    values = [m if stop["greater_is_better"] else -m for _, m in shown]
    # The first rounds are far below the rest: scaled from the tenth percentile up, the bars
    # show the part of the curve where the best round is chosen.
    low, high = sorted(values)[len(values) // 10], max(values)
    span = (high - low) or 1.0
    bars = "".join(_BARS[round((max(v, low) - low) / span * (len(_BARS) - 1))] for v in values)
    best = min(range(len(shown)), key=lambda i: abs(shown[i][0] - stop["best_round"]))
    rows.append(("  curve", f"{bars}  rounds {shown[0][0]}..{shown[-1][0]}"))
    rows.append(("", " " * best + f"^ {stop['best_round']}"))
    return rows


def results(
    study: StudyArg,
    n: Annotated[int, typer.Option("-n", min=1, help="Show this many trials.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The study's trials with a result, best first (failed ones last)."""
    with errors():
        client = common.client()
        client.study(study)
        rows = [record.as_dict() for record in client.trials(study)[:n]]
        if as_json:
            for row in rows:
                emit(row)
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
                score(row.get("score")),
                score(row.get("score_std"), 4),
                row["status"]
                if row["status"] == "done"
                else f"{row['status']}: {row.get('reason')}",
                f"{row.get('fit_time_s') or 0:.2f}",
                params(row["params"]),
            )
        out.print(table)


class ExportFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"
    json = "json"


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
    with errors():
        frame = common.client().results(study)
        target = output or Path(f"{study}.{fmt.value}")
        if str(target) == "-":
            if fmt is ExportFormat.parquet:
                fail("parquet is binary: give a file with -o", EXIT_USAGE)
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


def report(
    study: StudyArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path(
        "report.html"
    ),
) -> None:
    """One self-contained HTML file (opens offline): plots, importance, top trials, spec."""
    from tunefleet.report import write_report

    with errors():
        client = common.client()
        size = write_report(client, study, output)
        err.print(f"wrote {output} ({size / 1e6:.1f} MB)", highlight=False)


def studies(
    n: Annotated[int, typer.Option("-n", min=1, help="How many, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Recent studies and how far each has got."""
    with errors():
        frame = common.client().studies(limit=n)
        if as_json:
            for row in frame.to_dict(orient="records"):
                emit(row)
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
