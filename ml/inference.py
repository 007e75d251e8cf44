"""Serving code for SageMaker's XGBoost framework container (model_fn, input_fn, predict_fn, output_fn).

Requests   text/csv: no header, one row per line, values in the training feature order (target left out).
           application/json: {"instances": [[...], ...]} (feature order), [{"feature": value, ...}, ...]
           or a single {"feature": value, ...} object.
Responses  application/json: {"predictions": [...]}; text/csv: one prediction per line. output_fn returns the body
           with its media type, the first of the Accept header's types it can give: the serving toolkit labels the
           response with it (without one, it would echo the whole Accept header).
           binary → probability of the positive class (the transform's second label);
           multiclass → {"label", "probabilities"} per row in JSON (probabilities in "labels" order), the label in CSV;
           regression → the predicted value.
Errors     a bad request raises a PayloadError subclass (a ValueError) with a message for the client and an
           HTTP status_code (400, 406, 413 or 415). The XGBoost container serves script mode with
           sagemaker-inference's Transformer, which answers a BaseInferenceToolkitError with its status_code and
           any other exception with a 500 (Invocation5XXErrors, which rolls a deployment back): PayloadError is a
           BaseInferenceToolkitError there, so a client's mistake is a 4xx and only the model's own faults are 5xx.
"""

from __future__ import annotations

import gc
import io
import json
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http import HTTPStatus
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import xgboost as xgb

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # features.py ships beside this script in model.tar.gz
    sys.path.insert(0, str(HERE))

from features import NUMERIC, FeatureTransform, NonNumericError  # noqa: E402

CSV = "text/csv"
JSON = "application/json"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # SageMaker real-time endpoints refuse larger requests
_ROW_COUNT = re.compile(r"Expected (\d+) columns, got (\d+)")

try:
    from sagemaker_inference.errors import BaseInferenceToolkitError as _ServingError
except ImportError:  # outside SageMaker's serving stack: same shape, so callers see one interface

    class _ServingError(Exception):  # type: ignore[no-redef]
        def __init__(self, status_code: int, message: str, phrase: str) -> None:
            super().__init__(status_code, message, phrase)
            self.status_code, self.message, self.phrase = status_code, message, phrase


class PayloadError(_ServingError, ValueError):
    """A request this model cannot answer; the client's fault (HTTP 4xx)."""

    status = HTTPStatus.BAD_REQUEST

    def __init__(self, message: str) -> None:
        super().__init__(self.status.value, message, self.status.phrase)

    def __str__(self) -> str:
        return self.message


class EmptyPayloadError(PayloadError):
    """The request has no rows."""


class PayloadTooLargeError(PayloadError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class UnsupportedContentTypeError(PayloadError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class UnsupportedAcceptError(PayloadError):
    status = HTTPStatus.NOT_ACCEPTABLE


class MalformedPayloadError(PayloadError):
    """Not parseable as the declared content type, or not one of the accepted shapes."""


class ColumnCountError(PayloadError):
    """A row with more or fewer values than the model has features."""


class MissingFeaturesError(PayloadError):
    """A JSON object without some of the model's features."""


class NonNumericValueError(PayloadError):
    """A value that is not a number where the feature is numeric."""


# NamedTuples, not dataclasses: a dataclass needs its module in sys.modules, and a serving host may
# load this file with a bare importlib exec_module.
class Model(NamedTuple):
    booster: xgb.Booster
    transform: FeatureTransform
    value_sets: dict[str, pa.Array]  # each categorical feature's levels as pyarrow looks them up: built at load


class Request(NamedTuple):
    """A request checked as far as possible without the model: CSV text or rows decoded from JSON."""

    content_type: str
    csv: bytes = b""
    rows: list[Any] | None = None


class Prediction(NamedTuple):
    values: np.ndarray
    problem: str
    labels: list[Any] | None


def _media_type(header: str | None) -> str:
    return (header or "").split(";")[0].strip().lower()


def model_fn(model_dir: str) -> Model:
    folder = Path(model_dir)
    booster = xgb.Booster()
    booster.load_model(bytearray((folder / "xgboost-model").read_bytes()))
    # The container runs one worker per CPU: one thread each avoids oversubscription and is fastest for small batches.
    booster.set_param({"nthread": 1})
    transform = FeatureTransform.load(folder / "transform.json")
    value_sets = {feature.name: pa.array(feature.keys, type=pa.string())
                  for feature in transform.features if feature.kind != NUMERIC}
    return Model(booster, transform, value_sets)


def input_fn(request_body: str | bytes, request_content_type: str | None) -> Request:
    content_type = _media_type(request_content_type)
    if content_type not in (CSV, JSON):
        raise UnsupportedContentTypeError(
            f"content type {request_content_type!r} is not supported; use {CSV} or {JSON}"
        )
    body = request_body.encode("utf-8") if isinstance(request_body, str) else bytes(request_body or b"")
    if len(body) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeError(f"request body is {len(body)} bytes; the limit is {MAX_PAYLOAD_BYTES} (6 MB)")
    if not body.strip():
        raise EmptyPayloadError("request body is empty")
    if content_type == CSV:
        return Request(CSV, csv=body)
    return Request(JSON, rows=_json_rows(body))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a request's rows are decoded and turned into columns: a decoded
    JSON document holds no cycles, yet its thousands of new lists would trigger collections, full ones included,
    each walking every object of the serving process (its libraries, the model): at 10,000 rows that was a third
    of the request's time. The collector is left as it was found."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _json_rows(body: bytes) -> list[Any]:
    try:
        with _collector_paused():
            document = json.loads(body)
    except ValueError as error:
        raise MalformedPayloadError(f"request body is not valid JSON: {error}") from error
    rows = document.get("instances") if isinstance(document, dict) and "instances" in document else document
    if isinstance(rows, dict):
        rows = [rows]
    if not isinstance(rows, list):
        raise MalformedPayloadError('JSON must be {"instances": [[...], ...]}, a list of objects, or one object')
    if not rows:
        raise EmptyPayloadError("request has no instances")
    # json.loads makes exact lists and dicts: their types compared in one pass in C, not an isinstance per row.
    if set(map(type, rows)) not in ({list}, {dict}):
        raise MalformedPayloadError("instances must all be lists (feature order) or all be objects (feature names)")
    return rows


def predict_fn(input_data: Request, model: Model) -> Prediction:
    transform = model.transform
    try:
        matrix = (
            _csv_matrix(input_data.csv, transform, model.value_sets)
            if input_data.content_type == CSV
            else _json_matrix(input_data.rows or [], transform, model.value_sets)
        )
    except NonNumericError as error:
        raise NonNumericValueError(str(error)) from error
    values = np.asarray(model.booster.inplace_predict(matrix))
    return Prediction(values, transform.problem, transform.labels)


# The fast path: columns as Arrow arrays typed by the transform, straight into the model's float32 matrix (numbers
# with medians for the missing, categories looked up by pyarrow), with no object arrays or DataFrame in between.
def _arrow_matrix(columns: dict[str, pa.Array | pa.ChunkedArray], transform: FeatureTransform,
                  value_sets: dict[str, pa.Array]) -> np.ndarray:
    rows = len(columns[transform.features[0].name])
    matrix = np.empty((rows, len(transform.features)), dtype=np.float32)
    for position, feature in enumerate(transform.features):
        column = columns[feature.name]
        if feature.kind == NUMERIC:
            matrix[:, position] = feature.encode(np.asarray(column))  # nulls come as NaN: the median
        else:
            found = pc.index_in(column, value_set=value_sets[feature.name])
            matrix[:, position] = feature.codes_at(np.asarray(pc.fill_null(found, -1)))
    return matrix


def _arrow_types(transform: FeatureTransform) -> dict[str, pa.DataType]:
    return {feature.name: pa.float64() if feature.kind == NUMERIC else pa.string() for feature in transform.features}


def _read_csv(body: bytes, names: list[str], types: dict[str, pa.DataType]) -> pa.Table:
    return pa_csv.read_csv(
        io.BytesIO(body),
        read_options=pa_csv.ReadOptions(column_names=names, use_threads=False),
        convert_options=pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True),
    )


def _csv_matrix(body: bytes, transform: FeatureTransform, value_sets: dict[str, pa.Array]) -> np.ndarray:
    names = transform.feature_names
    try:
        table = _read_csv(body, names, _arrow_types(transform))
    except pa.ArrowInvalid:
        # A value pyarrow cannot read as a number: read everything as text so the transform names the culprit.
        try:
            table = _read_csv(body, names, dict.fromkeys(names, pa.string()))
        except pa.ArrowInvalid as error:
            raise _csv_shape_error(error, names) from error
        _check_rows(table.num_rows)
        return transform.apply({name: table.column(name).to_numpy() for name in names})
    _check_rows(table.num_rows)
    return _arrow_matrix({name: table.column(name) for name in names}, transform, value_sets)


def _check_rows(rows: int) -> None:
    if rows == 0:
        raise EmptyPayloadError("request has no CSV rows")


def _csv_shape_error(error: pa.ArrowInvalid, names: list[str]) -> PayloadError:
    counts = _ROW_COUNT.search(str(error))
    if counts:
        return ColumnCountError(
            f"a CSV row has {counts.group(2)} values; this model takes {counts.group(1)} "
            f"(no header, in this order: {', '.join(names)})"
        )
    return MalformedPayloadError(f"request body is not valid CSV: {error}")


def _json_matrix(rows: list[Any], transform: FeatureTransform, value_sets: dict[str, pa.Array]) -> np.ndarray:
    with _collector_paused():
        columns = _json_columns(rows, transform)
        arrays = _typed_arrays(columns, _arrow_types(transform))
    if arrays is None:
        # Values Arrow does not take as the feature's type (numbers as text, numbers in a categorical feature,
        # nested values): the transform reads them as training did, or names the culprit.
        return transform.apply({name: _json_column(values, name) for name, values in columns.items()})
    return _arrow_matrix(arrays, transform, value_sets)


def _typed_arrays(columns: dict[str, Sequence[Any]], types: dict[str, pa.DataType]) -> dict[str, pa.Array] | None:
    """Each column as an Arrow array of its feature's type; None when a value does not fit it."""
    try:
        return {name: pa.array(values, type=types[name]) for name, values in columns.items()}
    except (pa.ArrowException, TypeError, ValueError):
        return None


def _json_columns(rows: list[Any], transform: FeatureTransform) -> dict[str, Sequence[Any]]:
    names = transform.feature_names
    if isinstance(rows[0], dict):
        required = set(names)
        for number, row in enumerate(rows, start=1):
            if not row.keys() >= required:
                absent = [name for name in names if name not in row]
                raise MissingFeaturesError(
                    f"instance {number} lacks feature{'s' if len(absent) > 1 else ''} {', '.join(absent)}"
                )
        return {name: [row[name] for row in rows] for name in names}
    if set(map(len, rows)) != {len(names)}:
        number, row = next((number, row) for number, row in enumerate(rows, start=1) if len(row) != len(names))
        raise ColumnCountError(
            f"instance {number} has {len(row)} values; this model takes {len(names)}, "
            f"in this order: {', '.join(names)}"
        )
    return {name: list(map(itemgetter(position), rows)) for position, name in enumerate(names)}


def _json_column(values: Sequence[Any], name: str) -> np.ndarray:
    column = np.array(values, dtype=object)
    if column.ndim != 1:
        raise MalformedPayloadError(f"feature '{name}' must hold one number, string, boolean or null per instance")
    return column


def output_fn(prediction: Prediction, accept: str | None) -> tuple[str, str]:
    """The response body and its media type (the toolkit takes a (body, content type) pair as the response's)."""
    media = _accepted(accept)
    return _encoded(prediction, media), media


def _encoded(prediction: Prediction, media: str) -> str:
    values, labels = prediction.values, prediction.labels or []
    if prediction.problem == "multiclass":
        winners = values.argmax(axis=1)
        if media == CSV:
            return "".join(f"{labels[winner]}\n" for winner in winners)
        probabilities = values.tolist()
        rows = [
            {"label": labels[winner], "probabilities": probabilities[row]}
            for row, winner in enumerate(winners.tolist())
        ]
        return json.dumps({"predictions": rows, "labels": labels})
    if media == CSV:
        return "\n".join(map(repr, values.tolist())) + "\n"
    return json.dumps({"predictions": values.tolist()})


def _accepted(accept: str | None) -> str:
    """The first supported type in the Accept header; JSON when the client takes anything."""
    for option in (accept or "*/*").split(","):
        media = _media_type(option)
        if media in (CSV, JSON):
            return media
        if media in ("*/*", "application/*", ""):
            return JSON
    raise UnsupportedAcceptError(f"cannot answer in {accept!r}; accept {JSON} or {CSV}")
