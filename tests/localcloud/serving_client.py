"""A module's endpoint on the local cloud as its tests use it: a module defines `served` (its model, InService,
on module_hosting) and imports these fixtures; `answer` is what a client of the endpoint, named "m", sees."""

from __future__ import annotations

from typing import Any

import pytest

from selfheal.localcloud.hosting import Endpoint, HostingService, ModelError


@pytest.fixture(name="hosting")
def hosting_fixture(module_hosting: tuple[Any, HostingService]) -> HostingService:
    return module_hosting[1]


@pytest.fixture(name="endpoint")
def endpoint_fixture(served: Endpoint) -> Endpoint:
    """The module's endpoint, with fresh counters (each test counts its own requests) and a model that does not fail."""
    served.metrics.clear()
    served.serving["AllTraffic"].fail_every_request = False
    return served


def answer(hosting: HostingService, body: bytes, content_type: str | None = "text/csv",
           accept: str | None = "text/csv") -> tuple[int, str | None, str]:
    """(status, content type, body) as the client sees them."""
    try:
        out, out_type, _ = hosting.invoke("m", body, content_type, accept)
    except ModelError as error:
        return error.original_status_code, None, error.original_message
    return 200, out_type, out.decode()
