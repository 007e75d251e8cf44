"""End to end on the local cloud: the real template, ASL, handlers and job scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from selfheal_bench.datagen import CHURN_CONFIG, churn_frame
from selfheal_bench.localcloud import LocalCloud
from selfheal_bench.report import build_report, ledger_items

IDLE_TIMEOUT = 300  # seconds: a bound on every wait, far above a run's ~20 s here


@pytest.fixture
def cloud(local_cloud: LocalCloud) -> LocalCloud:
    """The whole local cloud (the bench's `local_cloud`; `inbox` reads its notifications)."""
    return local_cloud


@pytest.fixture
def churn_csv(tmp_path: Path) -> Path:
    path = tmp_path / "churn.csv"
    churn_frame(1500, seed=7).to_csv(path, index=False)
    return path


def report(cloud: LocalCloud, *models: str) -> dict[str, Any]:
    return build_report(cloud, models or ["churn"])


__all__ = ["CHURN_CONFIG", "IDLE_TIMEOUT", "ledger_items", "report"]
