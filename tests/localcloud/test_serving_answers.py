"""A serving container's answers, as the XGBoost 3.0-5 container gives them for a script-mode model: every
invocation is answered by the real serving toolkit (sagemaker-inference 1.5.5's Transformer, as the container's
handler_service.py builds it), so a client sees the status and content type the container would give, and the
endpoint's CloudWatch counters count that. (Where the code is found: test_serving_code.py.)"""

from __future__ import annotations

import json

import pytest
from selfheal_bench.fixtures.containers import serve_model
from selfheal_bench.fixtures.endpoint import answer, endpoint_fixture, hosting_fixture  # noqa: F401 (fixtures)

from .user_code import IN_MODEL, ISOLATED_ENV


@pytest.fixture(scope="module")
def served(module_hosting):
    """One isolated endpoint for the module, serving the code packed in the model under code/."""
    s3, hosting = module_hosting
    endpoint = serve_model(s3, hosting, IN_MODEL, ISOLATED_ENV)
    assert endpoint.status == "InService", endpoint.failure_reason
    return endpoint


@pytest.mark.parametrize(("request_text", "status"), [
    ("fine", 200),
    ("client", 400),  # the toolkit's own error type keeps its status
    ("bug", 500),  # any other exception is a 500: a ValueError is not a client error there
    ("unsupported", 500),  # this toolkit's UnsupportedFormatError is no toolkit error either (sagemaker-containers'
                           # worker would answer 415; the XGBoost 3.0-5 container does not serve with it)
])
def test_the_containers_serving_toolkit_decides_the_status_and_cloudwatch_counts_it(hosting, endpoint, request_text,
                                                                                     status):
    # When a request makes the model answer, or raise
    got, _, _ = answer(hosting, request_text.encode())
    # Then the client gets the container's status, and the variant's 4xx/5xx counters count it
    assert got == status
    stats = endpoint.metrics["m/AllTraffic"]
    assert (stats.errors_4xx, stats.errors_5xx) == (int(400 <= status < 500), int(status >= 500))


def test_an_error_answer_carries_the_toolkits_message_and_trace(hosting, endpoint):
    status, _, message = answer(hosting, b"client")
    assert status == 400 and message.startswith("this row is malformed\nTraceback (most recent call last):")


def test_the_response_content_type_is_what_output_fn_returns_else_the_accept_header(hosting, endpoint):
    assert answer(hosting, b"tuple", accept="application/json")[:2] == (200, "text/csv")
    assert answer(hosting, b"fine", accept="text/csv, application/json")[:2] == (200, "text/csv, application/json")


@pytest.mark.parametrize("accept", [None, "*/*"])
def test_no_accept_or_any_means_the_containers_default(hosting, endpoint, accept):
    assert answer(hosting, b"accept", accept=accept) == (200, "application/json", "accept was application/json")


def test_an_answer_that_is_not_text_or_bytes_is_sent_as_json(hosting, endpoint):
    assert answer(hosting, b"object") == (200, "text/csv", json.dumps({"answer": 42}, indent=2))


@pytest.mark.parametrize(("content_type", "arrives_as"), [
    ("text/csv", "str"), ("application/json", "str"),
    ("text/csv; charset=utf-8", "bytes"), ("application/x-npy", "bytes"),
])
def test_only_csv_and_json_bodies_arrive_decoded(hosting, endpoint, content_type, arrives_as):
    assert answer(hosting, b"type", content_type=content_type)[2] == arrives_as


def test_a_csv_body_that_is_not_utf8_is_a_server_error_before_the_model_sees_it(hosting, endpoint):
    # The toolkit decodes text/csv before input_fn: no inference script can turn this into a client error
    assert answer(hosting, b"\xff\xfe", content_type="text/csv")[0] == 500


def test_code_packed_in_the_model_is_served_from_opt_ml_model_code_under_isolation(hosting, endpoint):
    assert answer(hosting, b"fine") == (200, "text/csv", "fine")


def test_a_model_that_fails_every_request_answers_500_by_the_toolkits_rule(hosting, endpoint):
    endpoint.serving["AllTraffic"].fail_every_request = True
    status, _, message = answer(hosting, b"fine")
    assert status == 500 and message.startswith("injected fault: the model raises on every request")
