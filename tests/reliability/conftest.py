"""Fixtures for the reliability suite: the end-to-end fixtures (a fresh local cloud per test, its
notifications) and the sizes the scenarios run at. SELFHEAL_FULL=1 runs the full sizes (200 uploads,
48 hours of storm, the slow faults); by default they keep this folder to a few minutes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from selfheal.reliability import Sizes, sizes

from ..e2e.conftest import cloud, inbox  # noqa: F401 - fixtures, shared with the end-to-end tests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))

from hosting_fixtures import hosting  # noqa: E402, F401 - fixture: SageMaker hosting alone, with a toy model


@pytest.fixture(scope="session")
def size() -> Sizes:
    return sizes()
