"""Fixtures for the functions' tests: the moto account and helpers of
tests/shared/selfheal_aws_fixtures.py (and serving_fixtures.py for the serving side), and
`load_handler`, which imports functions/<name>/app.py."""

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))

from hosting_fixtures import hosting  # noqa: E402, F401 - fixture
from selfheal_aws_fixtures import ROOT, aws_env, cloud, lambda_context  # noqa: E402, F401 - fixtures
from serving_fixtures import endpoint, serving_cloud, serving_env  # noqa: E402, F401 - fixtures

# As in Lambda, where a function's folder is its code root, its modules import their siblings by
# name (`from ingest import ...`); the sibling module names are distinct across functions.
for folder in sorted((ROOT / "functions").iterdir()):
    if folder.is_dir() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

_LOADED: dict[str, ModuleType] = {}


def _load(function: str) -> ModuleType:
    """Every functions/<name>/ has an app.py: each is imported under a module name of its own."""
    if function not in _LOADED:
        folder = ROOT / "functions" / function
        spec = importlib.util.spec_from_file_location(f"selfheal_function_{function}", folder / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _LOADED[function] = module
    return _LOADED[function]


@pytest.fixture
def load_handler(request: pytest.FixtureRequest) -> Callable[[str], ModuleType]:
    """Handlers load under the functions' environment: Powertools reads it at import."""
    request.getfixturevalue("aws_env")
    return _load
