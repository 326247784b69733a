"""The commands for what a study leaves besides results: refitted models, uploaded datasets,
and the messages nothing could process (dead letters)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from tunefleet_contract.messages import ModelStored
from tunefleet_runtime.deadletters import (
    format_dead_letter,
    list_dead_letters,
    requeue_dead_letters,
)

from tunefleet.cli import common
from tunefleet.cli.common import (
    JsonOpt,
    StudyArg,
    TimeoutOpt,
    TrialOpt,
    emit,
    errors,
    fail,
    out,
    params,
    when,
)
from tunefleet.client import DatasetInUseError

__all__ = ["datasets", "dead_letters", "model", "refit"]


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
    with errors():
        settings = common.client().settings
        if requeue:
            moved = requeue_dead_letters(settings, limit=n, reason_contains=reason)
            out.print(f"requeued {moved} dead letters", highlight=False)
            return
        letters = list_dead_letters(settings, limit=n, reason_contains=reason)
        for letter in letters:
            if as_json:
                emit(letter.as_dict())
            else:
                out.print(format_dead_letter(letter), markup=False, highlight=False, soft_wrap=True)
        if not letters and not as_json:
            out.print("no dead letters")


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
        f"params           {params(model.params)}",
        f"features         {', '.join(model.feature_names) or '-'}",
        f"categorical      {', '.join(c.feature for c in model.categories) or '-'}",
        f"classes          {', '.join(map(str, model.classes)) or '-'}",
    ]
    return "\n".join(lines)


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
    with errors():
        client = common.client()
        try:
            trial_id = client.refit(study, trial)
        except LookupError as exc:
            fail(str(exc))
        if not wait:
            if as_json:
                emit({"study_id": study, "trial_id": trial_id})
            else:
                out.print(f"refit of trial {trial_id} requested", highlight=False)
            return
        try:
            model = client.wait_model(study, trial_id, timeout_s=timeout or 3600)
        except RuntimeError as exc:
            fail(str(exc))
        if as_json:
            emit(model.model_dump(mode="json"))
        else:
            out.print(_describe_model(model), markup=False, highlight=False)


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
    with errors():
        client = common.client()
        try:
            found = client.model(study, trial)
        except LookupError as exc:
            fail(str(exc))
        if found is None:
            fail(f"study {study}: no stored model of that trial; run `tunefleet refit {study}`")
        if output is not None:
            if found.status != "done":
                fail(f"trial {found.trial_id}: the refit failed: {found.error}")
            output.write_bytes(client.model_bytes(found))
        if as_json:
            emit({**found.model_dump(mode="json"), "path": str(output) if output else None})
            return
        out.print(_describe_model(found), markup=False, highlight=False)
        if output is not None:
            out.print(f"wrote {output}", highlight=False)


def datasets(
    delete: Annotated[
        str | None, typer.Option("--delete", help="Delete this dataset (8+ hex digits).")
    ] = None,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="Delete every dataset no study uses and every model blob no stored model names.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Uploaded datasets: size, when, and the studies that use them; delete unused ones."""
    with errors():
        client = common.client()
        if delete is not None:
            try:
                gone = client.delete_dataset(delete)
            except (LookupError, DatasetInUseError) as exc:
                fail(str(exc))
            out.print(f"deleted dataset {gone.sha256} ({gone.size:,} bytes)", highlight=False)
            return
        rows = client.datasets()
        if prune:
            unused = [info for info, users in rows if not users]
            for info in unused:
                client.delete_dataset(info.sha256)
            models = client.prune_models()
            orphans = client.blobs.prune_orphans()
            out.print(
                f"deleted {len(unused)} unused datasets "
                f"({sum(i.size for i in unused):,} bytes) and {len(models)} model files no "
                f"stored model names ({sum(i.size for i in models):,} bytes); "
                f"{orphans} broken uploads removed",
                highlight=False,
            )
            return
        if as_json:
            for info, users in rows:
                emit({**dataclasses.asdict(info), "studies": users})
            return
        # A block per dataset, each study id on a line of its own: a table's last column cut
        # the ids ("h10-frame-74…") in an 80-column terminal, and an id is what one types next.
        for info, users in rows:
            line = (
                f"{info.sha256[:12]}  {info.format}  {info.size:,} bytes  "
                f"uploaded {when(info.created_at)}  {info.name}"
            )
            out.print(line, markup=False, highlight=False, soft_wrap=True)
            for user in users:
                out.print(f"  study {user}", markup=False, highlight=False, soft_wrap=True)
            if not users:
                out.print("  studies: (none)", highlight=False)
        if not rows:
            out.print("no uploaded datasets", highlight=False)
