"""Fixtures for the shared layer's tests (defined in selfheal_aws_fixtures.py and serving_fixtures.py,
beside this file)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from selfheal_aws_fixtures import aws_env, cloud, lambda_context  # noqa: E402, F401 - fixtures
from serving_fixtures import serving_env  # noqa: E402, F401 - fixtures
