"""Seeded, realistic tabular data with a learnable target, for the demo and the tests.

A churn-style table: numeric and categorical features, some missing values, and a binary target that
depends on several of them. `shift` moves the distribution of a few features (covariate shift, what a drift
monitor sees); `concept` changes the relation the target has to them (concept shift, what only labels
reveal): a model trained before a concept shift does worse after it. By default the two move together.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "usage_gb", "age", "plan", "region", "payment"]
SHIFTED_FEATURES = ["monthly_charges", "support_calls", "usage_gb", "plan"]
TARGET = "churned"


# The model configuration the generated churn data trains under (the stories and the e2e tests start from it).
CHURN_CONFIG: dict[str, Any] = {
    "target": "churned",
    "problem": "binary",
    "metric": {"name": "auc", "threshold": 0.75},
    "hyperparameters": {"num_round": 40, "max_depth": 4},
    "validation": {"min_rows": 50},
}


def churn_frame(rows: int, seed: int, shift: float = 0.0, with_target: bool = True,
                concept: float | None = None) -> pd.DataFrame:
    """`shift` and `concept` in [0, 1]: 0 is the original population (relation), 1 a clearly drifted one;
    `concept` is `shift` unless given."""
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 12.0, rows).round()
    charges = rng.normal(70 + 45 * shift, 20, rows).clip(10, None).round(2)
    calls = rng.poisson(1.5 + shift, rows)
    usage = rng.lognormal(3.0 + 0.8 * shift, 0.5, rows).round(1)
    age = rng.integers(18, 80, rows)
    plan = rng.choice(["basic", "standard", "premium", "family"], rows,
                      p=_mix([0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4], shift))
    region = rng.choice(["north", "south", "east", "west"], rows)
    payment = rng.choice(["card", "transfer", "cash"], rows, p=[0.6, 0.3, 0.1])
    frame = pd.DataFrame({"tenure_months": tenure, "monthly_charges": charges, "support_calls": calls,
                          "usage_gb": usage, "age": age, "plan": plan, "region": region, "payment": payment})
    # A few missing values, as real exports have.
    frame.loc[rng.random(rows) < 0.02, "usage_gb"] = np.nan
    if with_target:
        frame[TARGET] = _churn(frame, rng, shift if concept is None else concept)
    return frame


def _mix(before: list[float], after: list[float], shift: float) -> list[float]:
    return [(1 - shift) * b + shift * a for b, a in zip(before, after, strict=True)]


def _churn(frame: pd.DataFrame, rng: np.random.Generator, concept: float) -> np.ndarray:
    plan_risk = frame["plan"].map({"basic": 0.6, "standard": 0.0, "premium": -0.5, "family": -0.2 + 1.2 * concept})
    # After a concept shift, heavy usage predicts churn instead of loyalty: the old model's signal turns around.
    usage = (frame["usage_gb"].fillna(20) - 20) / 10
    logit = (-0.05 * frame["tenure_months"] + 0.03 * (frame["monthly_charges"] - 70 - 45 * concept)
             + 0.5 * frame["support_calls"] - usage * (1 - 3 * concept) + plan_risk
             + (frame["payment"] == "cash") * 0.4 - 0.2 - 4.0 * concept)
    probability = 1 / (1 + np.exp(-1.6 * logit.to_numpy()))  # sharper: a model can learn it from ~1k rows
    return (rng.random(len(frame)) < probability).astype(int)
