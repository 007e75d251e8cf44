"""Fixtures every test folder may use."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


class MissingTool(AssertionError):
    """A tool `make setup` installs is not there: the test fails (it does not skip) and says how to get it."""


@pytest.fixture(scope="session")
def setup_tool() -> Callable[[Path, str], Path]:
    """setup_tool(path, what) -> path, or fail naming `make setup`: a missing tool must not pass as a skip."""

    def require(path: Path, what: str) -> Path:
        if not path.exists():
            raise MissingTool(f"{what} is missing ({path}): run `make setup`, which installs it")
        return path

    return require
