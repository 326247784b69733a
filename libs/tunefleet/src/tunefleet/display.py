"""How the client shows a study to people: the live progress bar (rich in a terminal, an
updating HTML bar in Jupyter) and the one-line descriptions the CLI's tables reuse."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from tunefleet_contract.search.views import SearchStatus

from tunefleet.progress import Progress

__all__ = ["describe", "describe_search", "format_duration", "progress_display"]


class progress_display:  # noqa: N801 - used as a context manager, like `open`
    """A live progress bar: rich in a terminal, an updating HTML bar in Jupyter (through
    IPython's display handles, so it needs no widget extension)."""

    def __init__(self, study_id: str) -> None:
        self.study_id = study_id
        self._handle: Any = None
        self._rich: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[Progress], None]:
        from rich.console import Console

        console = Console(stderr=True)
        if console.is_jupyter:
            # IPython has no type hints; only Jupyter ever takes this branch.
            self._ipython: Any = importlib.import_module("IPython.display")
            self._handle = self._ipython.display(
                self._ipython.HTML(self._html(None)), display_id=True
            )
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=console,
            )
            self._rich.start()
            self._task = self._rich.add_task(self.study_id, total=None, detail="")
        return self.update

    def update(self, p: Progress) -> None:
        if self._handle is not None:
            self._handle.update(self._ipython.HTML(self._html(p)))
        elif self._rich is not None:
            self._rich.update(
                self._task,
                total=p.n_trials or None,
                completed=p.finished,
                detail=describe(p),
            )

    def _html(self, p: Progress | None) -> str:
        import html

        total = p.n_trials if p else 0
        value = p.finished if p else 0
        text = describe(p) if p else "waiting for the study to register"
        return (
            f"<div><b>{html.escape(self.study_id)}</b> "
            f'<progress max="{max(total, 1)}" value="{value}" style="width:40%"></progress> '
            f"{value}/{total} {html.escape(text)}</div>"
        )

    def __exit__(self, *_: object) -> None:
        if self._rich is not None:
            self._rich.stop()


def describe(p: Progress) -> str:
    """One line: what the bar shows next to the counts."""
    parts = [f"{p.running} running", f"{p.failed} failed"]
    if p.redelivered:
        parts.append(f"{p.redelivered} redelivered")
    if p.preempted:
        parts.append(f"{p.preempted} preempted")
    if p.workers:
        parts.append(f"{p.workers} workers")
    if p.throughput:
        parts.append(f"{p.throughput:.2f}/s")
    if p.eta_s is not None and not p.complete:
        parts.append(f"ETA {format_duration(p.eta_s)}")
    if p.best_score is not None:
        parts.append(f"best {p.metric or 'score'} {p.best_score:.5g}")
    for search in p.searches:
        if search.adaptive is not None:
            parts.append(
                f"{search.library} {search.adaptive} {search.decided}/{search.n_trials} decided"
            )
    if p.cancelled:
        parts.append("CANCELLED")
    return ", ".join(parts)


def describe_search(search: SearchStatus, metric: str | None = None) -> str:
    """One library's search in a line: its strategy, how far an adaptive one has decided, the
    results (per rung for ASHA) and its best so far."""
    text = f"{search.strategy}: "
    if search.adaptive is not None:
        text += f"{search.decided} of {search.n_trials} {search.adaptive} trials decided, "
        text += f"{search.adaptive_finished} finished"
        if search.rungs:
            pairs = zip(search.rungs, search.rung_finished, strict=True)
            per_rung = ", ".join(f"{n} at {rounds}" for rounds, n in pairs)
            text += f" ({per_rung} rounds)"
        if search.finished > search.adaptive_finished:
            text += f"; {search.finished} finished in all"
    else:
        text += f"{search.finished} finished"
    if search.best_score is not None:
        text += f"; best {metric or 'score'} {search.best_score:.6f} (trial {search.best_trial_id})"
    return text


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
