"""End to end on the local cloud: the real template, ASL, handlers and job scripts."""

from __future__ import annotations

from pathlib import Path

import pytest
from selfheal_bench.datagen import churn_frame
from selfheal_bench.localcloud import LocalCloud


@pytest.fixture
def cloud(local_cloud: LocalCloud) -> LocalCloud:
    """The whole local cloud (the bench's `local_cloud`; `inbox` reads its notifications)."""
    return local_cloud


@pytest.fixture
def churn_csv(tmp_path: Path) -> Path:
    path = tmp_path / "churn.csv"
    churn_frame(1500, seed=7).to_csv(path, index=False)
    return path
