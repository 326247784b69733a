"""The report's cost section: the study's ledger (`tunefleet.cost`), as `tunefleet cost` has it."""

from __future__ import annotations

import html

from tunefleet.cost import Ledger, Line, number
from tunefleet.cost import money as _money

__all__ = ["cost_section"]

_DEAREST = 10


def _rows(lines: list[Line], currency: str | None) -> str:
    return "".join(
        f"<tr><td>{html.escape(line.name)}</td><td class='num'>{line.trials}</td>"
        f"<td class='num'>{number(line.core_hours)}</td>"
        f"<td class='num'>{_money(line.money, currency)}</td></tr>"
        for line in lines
    )


def cost_section(ledger: Ledger) -> str:
    currency = ledger.currency
    head = "<tr><th></th><th>trials</th><th>core-hours</th><th>cost</th></tr>"
    prices = (
        ", ".join(f"{pool} {p:g}" for pool, p in ledger.prices.per_core_hour.items())
        + f" {ledger.prices.currency} per core-hour"
        if ledger.prices
        else "none: core-hours only (set TUNEFLEET_PRICES for money)"
    )
    notes = [f"Prices: {prices}."]
    if ledger.budget is not None:
        used = ledger.budget_used()
        notes.append(f"Budget: {used:.0%} used." if used is not None else "Budget set.")
    waste = ledger.waste
    notes.append(
        f"Preemptions: {waste.redeliveries} extra deliveries of {waste.trials} trials, "
        f"{waste.qualifier}{number(waste.core_s / 3600)} core-hours wasted "
        f"({_money(waste.money, currency)})."
    )
    gain = ledger.improvement
    if gain is not None:
        per_hours, per_money = gain.per_unit()
        per = (
            "no improvement over the first result"
            if per_hours is None
            else f"{number(per_hours)} core-hours ({_money(per_money, currency)}) per unit of score"
        )
        notes.append(
            f"Score {gain.first_score:.6f} → {gain.best_score:.6f}: {per}; "
            f"{number(gain.after_best.core_hours)} core-hours spent after the best was found."
        )
    dearest = ledger.trials[:_DEAREST]
    return (
        "<h2>Cost</h2>"
        + "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes)
        + f"<table>{head}{_rows([ledger.total, *ledger.by_pool, *ledger.by_library], currency)}"
        "</table>"
        + f"<h3>Dearest {len(dearest)} trials</h3><table>{head}{_rows(dearest, currency)}</table>"
    )
