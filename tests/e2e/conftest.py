"""End to end on the local cloud: the real template, ASL, handlers and job scripts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from selfheal.datagen import churn_frame
from selfheal.localcloud import LocalCloud
from selfheal.reliability import Inbox as Notifications
from selfheal.report import build_report, ledger_items

CHURN_CONFIG: dict[str, Any] = {
    "target": "churned",
    "problem": "binary",
    "metric": {"name": "auc", "threshold": 0.75},
    "hyperparameters": {"num_round": 40, "max_depth": 4},
    "validation": {"min_rows": 50},
}
IDLE_TIMEOUT = 300  # seconds: a bound on every wait, far above a run's ~20 s here


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[LocalCloud]:
    with LocalCloud(tmp_path / "cloud") as local:
        yield local


@pytest.fixture
def churn_csv(tmp_path: Path) -> Path:
    path = tmp_path / "churn.csv"
    churn_frame(1500, seed=7).to_csv(path, index=False)
    return path


@pytest.fixture
def inbox(cloud: LocalCloud) -> Notifications:
    return Notifications(cloud)


def report(cloud: LocalCloud, *models: str) -> dict[str, Any]:
    return build_report(cloud, models or ["churn"])


__all__ = ["CHURN_CONFIG", "IDLE_TIMEOUT", "Notifications", "ledger_items", "report"]
