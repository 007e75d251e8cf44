"""Fixtures every test folder may use."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache
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


# -- tiers: `pytest -m unit` (no AWS at all, in-process), `-m moto` (the product against moto), `-m process` (the
# job scripts, a fresh interpreter or Chromium as processes), `-m tools` (sam, cfn-lint, checkov, bandit and the
# benchmarks' own environments, as subprocesses), `-m localcloud` --------------------------------------------------

LOCAL_CLOUD_FOLDERS = {"e2e", "reliability", "localcloud", "benchmarks"}
TOOL_FILES = {"test_lint.py", "test_deploy.py", "test_bandit_rules.py", "test_no_secrets.py", "test_product_wheel.py"}
LOCAL_CLOUD_FIXTURES = {"hosting", "container_hosting", "jobs", "serve", "run_job", "module_hosting", "inbox",
                        "local_cloud"}
LOCAL_CLOUD_WORDS = ("LocalCloud(", 'main(["local"', 'main(["demo"', "selfheal_bench.localcloud")
# A job script run as SageMaker runs it (tests/ml's Sandbox), or the report in a browser; a test that starts a
# process through a helper of its module says so with @pytest.mark.process.
PROCESS_FIXTURES = {"sandbox", "new_sandbox", "pipelines", "chromium_page"}


@cache
def _source(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def tier(item: pytest.Item) -> str:
    """The tier a test belongs to, from where it lives and what it uses."""
    path = Path(str(item.fspath))
    source = _source(path)  # once per module, not once per test
    fixtures = set(getattr(item, "fixturenames", ()))
    if (path.parent.name in LOCAL_CLOUD_FOLDERS or fixtures & LOCAL_CLOUD_FIXTURES
            or any(word in source for word in LOCAL_CLOUD_WORDS)):
        return "localcloud"
    if path.name in TOOL_FILES:
        return "tools"
    if (item.get_closest_marker("process") or fixtures & PROCESS_FIXTURES
            or "subprocess." in inspect.getsource(item.function)):
        return "process"
    if "aws_env" in fixtures or "mock_aws" in source:
        return "moto"
    return "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(tier(item))
        if Path(str(item.fspath)).parent.name == "e2e":
            item.add_marker("e2e")
