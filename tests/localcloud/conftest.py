"""The local cloud's own contracts, checked against the real containers' toolkits."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "shared"))

from container_fixtures import hosting, jobs, module_hosting, run_job, s3, serve  # noqa: E402, F401 - fixtures
