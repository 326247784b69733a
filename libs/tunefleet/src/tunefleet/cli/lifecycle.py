"""The commands that move a study along: submit, status (and watch), cancel, resume."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table
from tunefleet_contract.cost import PriceTable
from tunefleet_runtime.records import StudyStatus
from tunefleet_runtime.validation import load_spec

from tunefleet.cli import common
from tunefleet.cli.common import (
    EXIT_CANCELLED,
    EXIT_TRIALS_FAILED,
    JsonOpt,
    StudyArg,
    TimeoutOpt,
    WaitOpt,
    emit,
    errors,
    fail,
    out,
)
from tunefleet.cli.cost import cost_line
from tunefleet.client import Client
from tunefleet.display import describe_search, format_duration
from tunefleet.progress import Progress
from tunefleet.study import Study

__all__ = ["cancel", "resume", "status", "submit"]


def _status_table(p: Progress, prices: PriceTable | None = None) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("study", p.study_id)
    table.add_row("state", p.state)
    table.add_row(
        "trials",
        f"{p.finished}/{p.n_trials} finished: {p.done} done, {p.failed} failed; "
        f"{p.running} running, {p.queued} {'left' if p.cancelled else 'queued'}"
        + (f", {p.undecided} yet to decide" if p.undecided else ""),
    )
    table.add_row(
        "redelivered", f"{p.redelivered} trials, {p.redeliveries} extra deliveries in all"
    )
    table.add_row(
        "preempted",
        f"{p.preempted} trials handed back, {p.preemptions} times in all (resumed, not failed)",
    )
    table.add_row("workers seen", str(p.workers))
    table.add_row("throughput", f"{p.throughput:.2f} trials/s" if p.throughput else "-")
    eta = p.eta_s if p.eta_s is not None and p.finished < p.n_trials and not p.cancelled else None
    table.add_row("ETA", format_duration(eta) if eta is not None else "-")
    best = "-"
    if p.best_score is not None:
        best = f"{p.metric or 'score'} {p.best_score:.6f} (trial {p.best_trial_id})"
    table.add_row("best so far", best)
    table.add_row("cost", cost_line(p.core_s_by_pool, prices))
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
        "state": str(status.state),
        "best_score": status.best_score,
        "metric": status.metric,
    }
    if as_json:
        emit(summary)
    else:
        best = f"{status.best_score:.6f}" if status.best_score is not None else "-"
        out.print(
            f"{status.study_id}: {status.done} done, {status.failed} failed of "
            f"{status.n_trials}{f' ({status.state})' if status.cancelled else ''}; "
            f"best {status.metric or 'score'} {best}",
            highlight=False,
        )
    if status.cancelled and not status.budget_spent:  # a spent budget is how it should end
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


def submit(
    spec: Annotated[Path, typer.Argument(help="Study spec, YAML or JSON (see docs/spec.md).")],
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate a study spec and publish it; nothing is published if it is invalid."""
    with errors():
        load_spec(spec)  # a bad spec is a usage error before any connection is tried
        client = common.client()
        # A local dataset path is uploaded now (relative to the spec): the study id follows it.
        study = client.publishable(spec)
        before = client.store.study(study.study_id())
        study_id = client.submit(study)
        # The planner decides the trials; until it has, the spec's count is an upper bound.
        record = before or client.registered(study_id)
        n_trials = record.n_trials if record is not None else None
        if as_json:
            emit(
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
        fail("no studies yet; submit one with `tunefleet submit SPEC`")
    return str(frame["study_id"].iloc[0])


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
    with errors():
        client = common.client()
        study_id = study or _latest(client)
        client.study(study_id)  # an unknown id fails here, before any watching
        prices = client.prices(study_id)
        if not watch:
            snapshot = client.snapshot(study_id)
            if as_json:
                emit(snapshot.as_dict())
            else:
                out.print(_status_table(snapshot, prices))
            return
        if as_json:
            # JSON lines, one per update, for scripts that follow a study.
            for snapshot in client.progress(study_id, until=_ended):
                emit(snapshot.as_dict())
            return
        with Live(console=out, refresh_per_second=4, transient=False) as live:
            for snapshot in client.progress(study_id, until=_ended):
                live.update(_status_table(snapshot, prices))


def cancel(
    study: StudyArg,
    reason: Annotated[str | None, typer.Option(help="Recorded with the cancel.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop a study: queued trials are skipped by workers; results so far are kept."""
    with errors():
        client = common.client()
        client.cancel(study, reason=reason)
        left = len(client.missing_trials(study))
        if as_json:
            emit({"study_id": study, "cancelled": True, "trials_without_result": left})
        else:
            out.print(
                f"cancelled {study}: {left} trials without a result will be skipped "
                f"(`tunefleet resume {study}` runs them)",
                highlight=False,
            )


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
    with errors():
        fixed = load_spec(spec) if spec is not None else None
        client = common.client()
        done = client.resume(study, fixed, rerun_failed=failed)
        if as_json:
            emit(
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
