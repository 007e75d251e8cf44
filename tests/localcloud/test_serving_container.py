"""A serving container, as the XGBoost 3.0-5 container runs a script-mode model: the code is found where
SAGEMAKER_PROGRAM and SAGEMAKER_SUBMIT_DIRECTORY say (fetched by the real script-mode toolkit, with no route to
AWS under network isolation), and every invocation is answered by the real serving toolkit (sagemaker-inference
1.5.5's Transformer), so a client sees the status the container would give, and CloudWatch counts that."""

from __future__ import annotations

import json

import pytest
from container_fixtures import BUCKET, tarball

from selfheal.localcloud.hosting import ModelError

# A user module whose answer is chosen by the request's text, to drive each of the toolkit's rules.
MODULE = '''
from sagemaker_inference import errors
from helper import GREETING  # a sibling module, installed with the code


def model_fn(model_dir):
    return {"dir": model_dir}


def input_fn(body, content_type):
    return {"type": type(body).__name__, "text": body if isinstance(body, str) else body.decode("utf-8", "replace")}


def predict_fn(data, model):
    return data


def output_fn(data, accept):
    text = data["text"]
    if text == "client":
        raise errors.GenericInferenceToolkitError(400, "this row is malformed")
    if text == "bug":
        raise ValueError("a bug in the model's own code")
    if text == "unsupported":
        raise errors.UnsupportedFormatError("text/plain")
    if text == "tuple":
        return "1,2\\n", "text/csv"
    if text == "object":
        return {"answer": 42}
    if text == "accept":
        return f"accept was {accept}"
    if text == "type":
        return data["type"]
    return GREETING
'''
CODE = {"inference.py": MODULE, "helper.py": "GREETING = 'fine'\n"}
IN_MODEL = {f"code/{name}": text for name, text in CODE.items()} | {"model.json": "{}"}
ISOLATED_ENV = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}


@pytest.fixture
def endpoint(serve):
    served = serve(IN_MODEL, ISOLATED_ENV)
    assert served.status == "InService", served.failure_reason
    return served


def answer(hosting, body: bytes, content_type: str | None = "text/csv", accept: str | None = "text/csv"):
    """(status, content type, body) as the client sees them."""
    try:
        out, out_type, _ = hosting.invoke("m", body, content_type, accept)
    except ModelError as error:
        return error.original_status_code, None, error.original_message
    return 200, out_type, out.decode()


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


def test_a_model_that_fails_every_request_answers_500_by_the_toolkits_rule(hosting, endpoint):
    endpoint.serving["AllTraffic"].fail_every_request = True
    status, _, message = answer(hosting, b"fine")
    assert status == 500 and message.startswith("injected fault: the model raises on every request")


# -- where the code is found ----------------------------------------------------------------------------------


def test_under_isolation_the_code_packed_in_the_model_is_served_from_opt_ml_model_code(hosting, endpoint):
    assert answer(hosting, b"fine") == (200, "text/csv", "fine")


def test_under_isolation_an_s3_submit_directory_never_passes_the_health_check(serve):
    # Given the code's S3 URL as SAGEMAKER_SUBMIT_DIRECTORY on an isolated model
    endpoint = serve(IN_MODEL, ISOLATED_ENV | {"SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{BUCKET}/models/m/"
                                                                            "model.tar.gz"})
    # Then the toolkit cannot download it, the server never starts, and the endpoint fails
    assert endpoint.status == "Failed"
    assert "NoCredentialsError: Unable to locate credentials" in endpoint.failure_reason


def test_with_network_access_an_s3_submit_directory_is_fetched(s3, serve):
    s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=tarball(CODE))
    endpoint = serve({"model.json": "{}"}, ISOLATED_ENV | {
        "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{BUCKET}/code/sourcedir.tar.gz"}, isolated=False)
    assert endpoint.status == "InService", endpoint.failure_reason


def test_code_at_the_model_root_is_not_where_the_toolkit_looks(serve):
    # Given inference.py beside the model files, and no SAGEMAKER_SUBMIT_DIRECTORY
    endpoint = serve(CODE | {"model.json": "{}"}, {"SAGEMAKER_PROGRAM": "inference.py"})
    # Then the toolkit's code directory is empty: the module is not found and the model never loads
    assert endpoint.status == "Failed"
    assert "Please provide a model_fn implementation" in endpoint.failure_reason
