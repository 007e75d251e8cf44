"""A serving container that does not answer in time: InvokeEndpoint's ModelError with no status from the
container, counted as a server error. The local cloud then gives the container up (stricter than Multi Model
Server, which replaces a worker it timed out): every wait on a container is bounded."""

from __future__ import annotations

from selfheal_bench.localcloud import serving
from selfheal_bench.localcloud.hosting import ModelError

from .user_code import IN_MODEL, ISOLATED_ENV


def test_a_request_the_container_does_not_answer_in_time_is_a_server_error(serve, hosting, monkeypatch):
    # Given a serving container, and a model that takes longer than the container may (here 1 s, not 60)
    endpoint = serve(IN_MODEL, ISOLATED_ENV)
    assert endpoint.status == "InService", endpoint.failure_reason
    monkeypatch.setattr(serving, "INVOKE_TIMEOUT_SECONDS", 1)
    # When a request makes it that slow
    try:
        hosting.invoke("m", b"slow", "text/csv", "text/csv")
    except ModelError as error:
        raised = error
    # Then the client gets SageMaker's timeout, with no status from the container, and it counts as a 5xx
    assert raised.original_status_code == 0
    assert raised.message.startswith("Received server error (0) from primary with message \"Your invocation timed out")
    stats = endpoint.metrics["m/AllTraffic"]
    assert (stats.errors_4xx, stats.errors_5xx) == (0, 1)
