"""A small table like real ones: string and categorical columns, missing values everywhere."""

from __future__ import annotations

import numpy as np
import pandas as pd


def mixed_table(rows: int = 240, seed: int = 3, regression: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, rows)
    income = rng.lognormal(10, 0.5, rows)
    plan = rng.choice(["basic", "plus", "pro"], rows).astype(object)
    region = pd.Categorical(rng.choice(["north", "south", "east", "west"], rows))
    signal = (
        np.nan_to_num(age, nan=40) / 40
        + (plan == "pro") * 0.8
        + np.asarray(region == "south") * 0.5
        + rng.normal(0, 0.4, rows)
    )
    age[rng.random(rows) < 0.1] = np.nan
    income[rng.random(rows) < 0.05] = np.nan
    plan[rng.random(rows) < 0.1] = None
    region[rng.random(rows) < 0.08] = np.nan
    target = signal if regression else (signal > np.median(signal)).astype(int)
    return pd.DataFrame(
        {"age": age, "income": income, "plan": plan, "region": region, "target": target}
    )
