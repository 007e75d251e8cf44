"""Fixtures for the reliability suite: the whole local cloud as `cloud` (as in tests/e2e; the bench's plugin
serves it, its inbox and SageMaker hosting on moto as `hosting`) and the sizes the scenarios run at.
SELFHEAL_FULL=1 runs the full sizes (200 uploads, 48 hours of storm, the slow faults); by default they keep this
folder to a few minutes."""

from __future__ import annotations

import pytest
from selfheal_bench.localcloud import LocalCloud
from selfheal_bench.reliability import Sizes, sizes


@pytest.fixture
def cloud(local_cloud: LocalCloud) -> LocalCloud:
    return local_cloud


@pytest.fixture(scope="session")
def size() -> Sizes:
    return sizes()
