"""What a trial cost: core-seconds on a pool of nodes, priced per core-hour.

A worker measures each trial's core-seconds and names its node's pool (`TrialResult.core_s`,
`TrialResult.pool`); the store keeps those, never money. Money is computed where it is read,
from a price table (`PriceTable`): the study's own, recorded with a cost budget, or the
reader's (`TUNEFLEET_PRICES`). One computation (`spent`) serves the planner's budget check and
the client's ledger, so that both count alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "BUDGET_SPENT",
    "PLANNER",
    "POOLS",
    "BudgetSpec",
    "Pool",
    "PriceTable",
    "Spent",
    "is_budget_stop",
    "spent",
]

Pool = Literal["spot", "on-demand"]
POOLS: tuple[str, ...] = get_args(Pool)

# A study whose budget is spent is stopped as a cancel is (workers skip what is queued, the
# planner decides nothing more), by the planner, with a reason that starts with this.
BUDGET_SPENT = "budget spent"
PLANNER = "planner"


def is_budget_stop(by: str | None, reason: str | None) -> bool:
    """Whether a cancel is the planner's for a spent budget (the study ends "budget spent")."""
    return by == PLANNER and (reason or "").startswith(BUDGET_SPENT)


class PriceTable(BaseModel):
    """Price per core-hour of each pool, in `currency`; every pool has one, so that any
    result can be priced."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    per_core_hour: dict[str, float] = Field(min_length=1)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")

    @field_validator("per_core_hour")
    @classmethod
    def _known_pools(cls, value: dict[str, float]) -> dict[str, float]:
        for pool, price in value.items():
            if pool not in POOLS:
                raise ValueError(
                    f"unknown pool {pool!r} in the price table; pools are {', '.join(POOLS)}"
                )
            if not price >= 0 or price == float("inf"):
                raise ValueError(f"the price of pool {pool!r} must be a finite number >= 0")
        missing = [pool for pool in POOLS if pool not in value]
        if missing:
            raise ValueError(f"the price table has no price for pool {', '.join(missing)}")
        return value

    @classmethod
    def parse(cls, text: str) -> PriceTable:
        """The environment's form, `spot=0.012,on-demand=0.049` or with a currency,
        `spot=0.012,on-demand=0.049,currency=EUR`; ValueError naming what is wrong."""
        prices: dict[str, float] = {}
        currency = "USD"
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            name, sep, value = (s.strip() for s in item.partition("="))
            if not sep:
                raise ValueError(f"{item!r} is not POOL=PRICE (e.g. spot=0.012,on-demand=0.049)")
            if name == "currency":
                currency = value
                continue
            try:
                prices[name] = float(value)
            except ValueError:
                raise ValueError(f"the price of pool {name!r} is not a number: {value!r}") from None
        return cls(per_core_hour=prices, currency=currency)

    def money(self, core_s: float, pool: str | None) -> float:
        """What `core_s` cost on `pool`. A result without a pool (from a worker of the release
        before) is priced as on-demand, the dearer: a budget errs on the side of stopping."""
        return core_s / 3600 * self.per_core_hour[pool if pool in POOLS else "on-demand"]


class BudgetSpec(BaseModel):
    """What a study may spend: core-hours, or money at `prices` (one of the two). Once its
    results have spent it, the planner decides no more trials and the study ends as
    "budget spent" (docs/spec.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    core_hours: float | None = Field(default=None, gt=0, le=1e9)
    cost: float | None = Field(default=None, gt=0, le=1e12)
    prices: PriceTable | None = Field(
        default=None,
        description="The prices `cost` is counted at: given in the spec, or filled in at "
        "submit from the submitter's TUNEFLEET_PRICES.",
    )

    @model_validator(mode="after")
    def _one_limit(self) -> BudgetSpec:
        if (self.core_hours is None) == (self.cost is None):
            raise ValueError("a budget sets exactly one of core_hours and cost")
        if self.prices is not None and self.cost is None:
            raise ValueError("budget.prices only goes with budget.cost")
        return self

    def problem(self) -> str | None:
        """What keeps this budget from being counted (None: nothing)."""
        if self.cost is not None and self.prices is None:
            return (
                "budget.cost needs a price table: set TUNEFLEET_PRICES where the study is "
                "submitted, or give budget.prices in the spec"
            )
        return None

    def limit(self) -> float:
        """The budget in its own unit: core-hours, or money."""
        return self.core_hours if self.core_hours is not None else float(self.cost or 0)


@dataclass(frozen=True)
class Spent:
    core_s: float
    money: float | None  # None: no price table

    @property
    def core_hours(self) -> float:
        return self.core_s / 3600

    def over(self, budget: BudgetSpec) -> bool:
        """Whether `budget` is spent: reached or passed."""
        if budget.core_hours is not None:
            return self.core_hours >= budget.core_hours
        return self.money is not None and self.money >= budget.limit()


def spent(usage: Iterable[tuple[float | None, str | None]], prices: PriceTable | None) -> Spent:
    """Core-seconds and money of (core_s, pool) pairs (`PriceTable.money`). A result without
    core-seconds (from a worker of the release before) counts as none."""
    core_s = money = 0.0
    for seconds, pool in usage:
        if seconds:
            core_s += seconds
            money += prices.money(seconds, pool) if prices is not None else 0.0
    return Spent(core_s, money if prices is not None else None)
