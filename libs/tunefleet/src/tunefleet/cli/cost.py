"""`tunefleet cost`: a study's cost ledger (`tunefleet.cost`), and the cost line of `status`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import typer
from rich.table import Table
from tunefleet_contract.cost import PriceTable, spent

from tunefleet.cli import common
from tunefleet.cli.common import JsonOpt, StudyArg, emit, errors, out
from tunefleet.cost import Ledger, Line, money, number

__all__ = ["cost", "cost_line"]


def _hours(core_s: float) -> str:
    return number(core_s / 3600)


def cost_line(core_s_by_pool: Mapping[str, float], prices: PriceTable | None) -> str:
    """What `status` shows: core-hours (per pool) and, with a price table, money."""
    total = spent(((s, pool) for pool, s in core_s_by_pool.items()), prices)
    pools = ", ".join(f"{pool} {_hours(s)}" for pool, s in sorted(core_s_by_pool.items()))
    text = f"{_hours(total.core_s)} core-hours" + (f" ({pools})" if pools else "")
    if total.money is not None and prices is not None:
        text += f", {money(total.money, prices.currency)}"
    return text


def _lines(title: str, lines: list[Line], currency: str | None) -> Table:
    table = Table(title=title)
    for column in ("", "trials", "core-hours", "cost"):
        table.add_column(column, justify="left" if not column else "right")
    for line in lines:
        table.add_row(line.name, str(line.trials), _hours(line.core_s), money(line.money, currency))
    return table


def _summary(ledger: Ledger) -> Table:
    currency = ledger.currency
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("study", ledger.study_id)
    table.add_row("state", ledger.state or "-")
    prices = ledger.prices
    table.add_row(
        "prices",
        ", ".join(f"{pool} {p:g}" for pool, p in prices.per_core_hour.items())
        + f" {prices.currency} per core-hour"
        if prices
        else "none (set TUNEFLEET_PRICES for money)",
    )
    total = ledger.total
    table.add_row(
        "spent",
        f"{_hours(total.core_s)} core-hours, {money(total.money, currency)} "
        f"over {total.trials} trials",
    )
    if ledger.budget is not None:
        used = ledger.budget_used()
        limit = (
            f"{ledger.budget.core_hours:g} core-hours"
            if ledger.budget.core_hours is not None
            else money(ledger.budget.cost, currency)
        )
        table.add_row("budget", f"{limit}; {used:.0%} used" if used is not None else limit)
    waste = ledger.waste
    table.add_row(
        "preemptions",
        f"{waste.redeliveries} extra deliveries of {waste.trials} trials; wasted "
        f"{waste.qualifier}{_hours(waste.core_s)} core-hours, "
        f"{money(waste.money, currency)}",
    )
    gain = ledger.improvement
    if gain is not None:
        per_hours, per_money = gain.per_unit()
        table.add_row(
            "improvement",
            f"{gain.first_score:.6f} -> {gain.best_score:.6f} (+{gain.gain:.6f}) for "
            f"{_hours(gain.to_best.core_s)} core-hours; "
            f"{_hours(gain.after_best.core_s)} more since the best",
        )
        table.add_row(
            "per unit of score",
            "-"
            if per_hours is None
            else f"{number(per_hours)} core-hours, {money(per_money, currency)}",
        )
    return table


def cost(
    study: StudyArg,
    n: Annotated[int, typer.Option("-n", min=0, help="How many trials, dearest first.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """What a study cost: per pool, library and trial, preemptions' waste, cost per score gain."""
    with errors():
        client = common.client()
        ledger = client.cost(study)
        if as_json:
            emit(ledger.as_dict())
            return
        currency = ledger.currency
        out.print(_summary(ledger))
        out.print(_lines("per pool", ledger.by_pool, currency))
        out.print(_lines("per library", ledger.by_library, currency))
        if n:
            out.print(
                _lines(f"dearest {min(n, len(ledger.trials))} trials", ledger.trials[:n], currency)
            )
