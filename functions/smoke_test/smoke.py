"""SmokeTest: the new model answers held-out rows the way a client would ask, with sane values.

Reads the first rows of the run's test.csv (raw rows with a header, as ml/preprocess.py writes it),
leaves the target out, sends them as one text/csv request without a header (ml/inference.py's
contract) and checks the JSON answer: one prediction per row, every value finite, probabilities
within [0, 1] for classification. Any mismatch, or a model error, raises SmokeTestFailed: the ASL
catches it by name and rolls the endpoint back."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import math
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError
from selfheal_shared import aws
from selfheal_shared.errors import HeldOutRowsNotFound, SmokeTestFailed
from selfheal_shared.s3uri import S3Uri
from selfheal_shared.serving_events import SmokeTestRequest

metrics = Metrics()


def smoke_test(request: SmokeTestRequest) -> dict[str, Any]:
    header, rows = read_rows(request.test_uri, request.max_rows)
    body = request_body(header, rows, request.target)
    predictions = invoke(request.endpoint_name, body)
    check_predictions(predictions, len(rows), request.problem)
    metrics.add_metric(name="SmokeTestsPassed", unit=MetricUnit.Count, value=1)
    return {"endpoint_name": request.endpoint_name, "rows": len(rows), "passed": True}


def read_rows(test_uri: str, limit: int) -> tuple[list[str], list[list[str]]]:
    """The header and the first `limit` rows, streamed: the test set may be large."""
    uri = S3Uri.parse(test_uri)
    try:
        response = aws.client("s3").get_object(Bucket=uri.bucket, Key=uri.key)
    except ClientError as error:
        if error.response["Error"]["Code"] in {"NoSuchKey", "404"}:
            raise HeldOutRowsNotFound(f"no held-out rows at {test_uri}") from None
        raise
    with response["Body"] as body:
        reader = csv.reader(codecs.getreader("utf-8")(body))
        header = next(reader, None)
        rows = list(itertools.islice(reader, limit))
    if not header or not rows:
        raise HeldOutRowsNotFound(f"{test_uri} has no rows")
    return header, rows


def request_body(header: list[str], rows: list[list[str]], target: str) -> bytes:
    """The rows as a client sends them: CSV without a header, the target left out."""
    keep = [i for i, name in enumerate(header) if name != target]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([row[i] if i < len(row) else "" for i in keep] for row in rows)
    return buffer.getvalue().encode("utf-8")


def invoke(endpoint_name: str, body: bytes) -> list[Any]:
    try:
        response = aws.client("sagemaker-runtime").invoke_endpoint(EndpointName=endpoint_name, Body=body,
                                                       ContentType="text/csv", Accept="application/json")
    except ClientError as error:
        if error.response["Error"]["Code"] == "ModelError":
            raise SmokeTestFailed(f"the model failed held-out rows: {error.response['Error'].get('Message')}") from None
        raise
    with response["Body"] as stream:
        text = stream.read().decode("utf-8")
    try:
        predictions = json.loads(text)["predictions"]
    except (ValueError, KeyError, TypeError):
        raise SmokeTestFailed(f"the answer is not {{\"predictions\": [...]}}: {text[:200]!r}") from None
    if not isinstance(predictions, list):
        raise SmokeTestFailed("predictions is not a list")
    return predictions


def check_predictions(predictions: list[Any], rows: int, problem: str) -> None:
    if len(predictions) != rows:
        raise SmokeTestFailed(f"{len(predictions)} predictions for {rows} rows")
    for number, prediction in enumerate(predictions, start=1):
        problem_found = prediction_problem(prediction, problem)
        if problem_found:
            raise SmokeTestFailed(f"prediction {number} ({json.dumps(prediction)[:200]}): {problem_found}")


def prediction_problem(prediction: Any, problem: str) -> str | None:
    """What is wrong with one prediction, or None."""
    if problem == "multiclass":
        if not isinstance(prediction, dict) or "label" not in prediction:
            return 'not {"label", "probabilities"}'
        probabilities = prediction.get("probabilities")
        if not isinstance(probabilities, list) or not probabilities:
            return "no probabilities"
        return next((p for p in map(probability_problem, probabilities) if p), None)
    if problem == "binary":
        return probability_problem(prediction)
    return None if is_finite(prediction) else "not a finite number"


def probability_problem(value: Any) -> str | None:
    if not is_finite(value):
        return "not a finite number"
    return None if 0.0 <= value <= 1.0 else f"probability {value} outside [0, 1]"


def is_finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
