"""The model train.py saves, registered as RegisterModel registers it, in the XGBoost container's serving stack on
the local cloud: network-isolated, its code found where the toolkit looks, every request answered by the real
serving toolkit. What a client sees is what it would see on AWS, and what CloudWatch counts with it."""

from __future__ import annotations

import numpy as np
import pytest
from registry import SERVING_ENVIRONMENT  # register_model's code root: the bench puts it on the path, as Lambda
from selfheal_bench.fixtures.containers import serve_model
from selfheal_bench.fixtures.endpoint import answer, endpoint_fixture, hosting_fixture  # noqa: F401 (fixtures)

MB = 1024 * 1024
GOOD_ROW = b"<a good row>"  # stands for one of the test rows


@pytest.fixture(scope="module")
def model_tarball(binary_model, pack, tmp_path_factory) -> bytes:
    return pack(binary_model.model_dir, tmp_path_factory.mktemp("served") / "model.tar.gz").read_bytes()


@pytest.fixture(scope="module")
def served(module_hosting, model_tarball):
    # CreateModel in DeployPipeline sets EnableNetworkIsolation, with the package's environment
    s3, hosting = module_hosting
    endpoint = serve_model(s3, hosting, model_tarball, SERVING_ENVIRONMENT, isolated=True)
    assert endpoint.status == "InService", endpoint.failure_reason
    return endpoint


def test_the_registered_model_serves_its_predictions_from_an_isolated_endpoint(hosting, endpoint, binary_model):
    # When the test rows are sent as a client sends them (CSV, no header, no target)
    model_rows = binary_model.test_rows.drop(columns=[binary_model.config["target"]]).head(20)
    status, content_type, body = answer(hosting, model_rows.to_csv(header=False, index=False).encode())
    # Then they are answered with one probability per row
    assert (status, content_type) == (200, "text/csv"), body
    probabilities = np.array(body.split(), dtype=np.float64)
    assert len(probabilities) == 20 and ((probabilities > 0) & (probabilities < 1)).all()


@pytest.mark.parametrize(("accept", "answered_as"), [
    ("application/json, text/csv", "application/json"),
    ("text/csv;q=0.9, application/json", "text/csv"),
    ("*/*", "application/json"),
    (None, "application/json"),
])
def test_the_response_says_which_of_the_accepted_types_it_is(hosting, endpoint, binary_model, accept, answered_as):
    row = binary_model.test_rows.drop(columns=[binary_model.config["target"]]).head(1)
    status, content_type, body = answer(hosting, row.to_csv(header=False, index=False).encode(), accept=accept)
    assert (status, content_type) == (200, answered_as), body


@pytest.mark.parametrize(("name", "body", "content_type", "accept", "status"), [
    ("empty", b"", "text/csv", "text/csv", 400),
    ("blank lines", b"\n \n", "text/csv", "text/csv", 400),
    ("too few columns", b"1,2,3", "text/csv", "text/csv", 400),
    ("not a number", b"ten,3,21000,basic,north,true", "text/csv", "text/csv", 400),
    ("JSON not JSON", b'{"instances": [[1, 2', "application/json", "application/json", 400),
    ("JSON missing features", b'[{"age": 30}]', "application/json", "application/json", 400),
    ("too large", b"1,2\n" * (7 * MB // 4), "text/csv", "text/csv", 413),
    ("no content type", b"1,2,3", None, "text/csv", 415),
    ("unsupported content type", b"1,2,3", "application/x-npy", "text/csv", 415),
    ("unsupported accept", GOOD_ROW, "text/csv", "image/png", 406),
])
def test_a_bad_request_is_a_client_error_in_the_container_never_a_5xx(hosting, endpoint, binary_model, name, body,
                                                                      content_type, accept, status):
    if body == GOOD_ROW:
        body = binary_model.test_rows.drop(columns=[binary_model.config["target"]]).head(1).to_csv(
            header=False, index=False).encode()
    # When a malformed request reaches the model (the toolkit decides the status from what the script raises)
    got, _, message = answer(hosting, body, content_type, accept)
    # Then the client gets a 4xx with the script's message, and only the 4xx counter moves: a rollback alarm on
    # Invocation5XXErrors never sees it
    assert got == status, message
    stats = endpoint.metrics["m/AllTraffic"]
    assert (stats.errors_4xx, stats.errors_5xx) == (1, 0)
