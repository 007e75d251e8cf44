"""SmokeTestFunction: a new endpoint answers held-out rows as a client expects, or the rollout rolls back."""

import csv
import io

import pytest
from selfheal_bench.fixtures.aws import BUCKET, emitted_metrics, event_files, load_event

HEADER = ["tenure_months", "monthly_charges", "plan", "churned"]
ROWS = [["12", "70.5", "basic", "yes"], ["3", "", "premium, annual", "no"], ["40", "99.9", "family", "no"]]


@pytest.fixture
def smoke(load_handler, cloud, serving_env, lambda_context):
    handler = load_handler("smoke_test").lambda_handler

    def run(name: str, rows: list[list[str]] = ROWS, **overrides) -> dict:
        event = load_event("smoke_test", name) | overrides
        bucket, _, key = event["test_uri"].removeprefix("s3://").partition("/")
        assert bucket == BUCKET
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([HEADER, *rows])
        cloud.s3.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue().encode())
        return handler(event, lambda_context)

    return run


def rows_in(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode())))


def answering(values):
    """An endpoint that returns `values(row)` for each CSV row it gets."""
    return lambda body: (200, {"predictions": [values(row) for row in rows_in(body)]})


def test_every_sample_event_has_a_test():
    assert set(event_files("smoke_test")) == {"binary.json", "multiclass.json", "regression.json"}


def test_binary(smoke, endpoint, capsys):
    # Given an endpoint that answers a probability per row
    fake = endpoint(answering(lambda row: 0.25))
    # When the held-out rows are sent
    result = smoke("binary.json")
    # Then they went as a client sends them: CSV, no header, the target left out, quoting kept
    (request,) = fake.requests
    assert request["headers"]["Content-Type"] == "text/csv" and request["headers"]["Accept"] == "application/json"
    assert rows_in(request["body"]) == [row[:3] for row in ROWS]
    # and the test passed
    assert result == {"endpoint_name": "selfheal-churn", "rows": 3, "passed": True}
    assert emitted_metrics(capsys.readouterr().out)["SmokeTestsPassed"] == [1.0]


def test_multiclass(smoke, endpoint):
    # Given a multiclass model whose target ("plan") sits inside the header, answering labels and probabilities
    fake = endpoint(answering(lambda row: {"label": "basic", "probabilities": [0.7, 0.2, 0.1]}))
    # Then the test passes, with that column left out of the rows
    assert smoke("multiclass.json")["passed"]
    assert rows_in(fake.requests[0]["body"]) == [[row[0], row[1], row[3]] for row in ROWS]


def test_regression(smoke, endpoint):
    # Given a regression model answering a value per row; then the test passes
    endpoint(answering(lambda row: 71.5))
    assert smoke("regression.json")["rows"] == 3


@pytest.mark.parametrize(("event", "answer", "message"), [
    ("binary.json", lambda body: (200, {"predictions": [0.5]}), "1 predictions for 3 rows"),
    ("binary.json", answering(lambda row: 1.7), "probability 1.7 outside"),
    ("binary.json", answering(lambda row: None), "not a finite number"),
    ("binary.json", lambda body: (200, {"scores": []}), "not {\"predictions\""),
    ("regression.json", lambda body: (200, "NaN"), "not {\"predictions\""),
    ("multiclass.json", answering(lambda row: {"label": "a", "probabilities": [1.2, -0.2]}), "outside"),
    ("multiclass.json", answering(lambda row: 0.3), 'not {"label"'),
    ("binary.json", lambda body: (424, "Received server error (500) from primary"), "the model failed"),
])
def test_any_mismatch_or_model_error_fails_by_name(smoke, endpoint, event, answer, message):
    # Given an endpoint whose answer is wrong in one way
    endpoint(answer)
    # Then SmokeTestFailed, which the ASL catches to roll back
    with pytest.raises(Exception, match=message) as raised:
        smoke(event)
    assert type(raised.value).__name__ == "SmokeTestFailed"


def test_at_most_max_rows_are_sent(smoke, endpoint):
    # Given a large held-out set; then only the first max_rows go out, in one request
    fake = endpoint(answering(lambda row: 0.5))
    assert smoke("binary.json", rows=ROWS * 10, max_rows=4)["rows"] == 4
    assert len(rows_in(fake.requests[0]["body"])) == 4


def test_missing_held_out_rows_are_named(load_handler, cloud, serving_env, lambda_context, endpoint):
    # Given a run without test.csv; then the error names it (and the ASL rolls back)
    endpoint(answering(lambda row: 0.5))
    with pytest.raises(Exception, match="no held-out rows") as raised:
        load_handler("smoke_test").lambda_handler(load_event("smoke_test", "binary.json"), lambda_context)
    assert type(raised.value).__name__ == "HeldOutRowsNotFound"
