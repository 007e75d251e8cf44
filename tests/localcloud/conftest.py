"""The local cloud's own contracts, checked against the real containers' toolkits (the bench's plugin serves the
fixtures: S3, jobs, run_job, serve, module_hosting)."""

import pytest
from selfheal_bench.localcloud.hosting import HostingService


@pytest.fixture
def hosting(container_hosting: HostingService) -> HostingService:
    """Here, the containers' hosting service alone (elsewhere `hosting` is SageMaker hosting on moto)."""
    return container_hosting
