"""Serving: CSV and JSON in, predictions out, the training transform in between, and named client errors."""

from __future__ import annotations

import gc
import json
import re
import subprocess
import sys

import inference
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


def _invoke(model: inference.Model, body: str | bytes, content_type: str, accept: str = "application/json") -> str:
    """The serving container's request path: input_fn → predict_fn → output_fn; the response body."""
    answer, media_type = inference.output_fn(inference.predict_fn(inference.input_fn(body, content_type), model),
                                             accept)
    assert media_type in (inference.CSV, inference.JSON)
    return answer


def _csv(rows: pd.DataFrame) -> str:
    return rows.to_csv(header=False, index=False)


@pytest.fixture(scope="module")
def binary(binary_model) -> tuple[inference.Model, pd.DataFrame, np.ndarray]:
    """The served model, raw request rows (features only, training order), and the booster's own answers."""
    model = inference.model_fn(str(binary_model.model_dir))
    rows = binary_model.test_rows[model.transform.feature_names]
    return model, rows, model.booster.inplace_predict(model.transform.apply(rows))


def test_csv_rows_get_the_boosters_positive_class_probabilities(binary) -> None:
    model, rows, expected = binary
    # When the test rows are sent as CSV, without header or target
    answer = _invoke(model, _csv(rows), "text/csv", accept="text/csv")
    # Then there is one probability per line, the booster's own for the transformed rows
    assert np.array_equal(np.array(answer.splitlines(), dtype=np.float32), expected)
    assert ((expected > 0) & (expected < 1)).all()


def test_every_json_shape_gets_the_same_predictions(binary) -> None:
    model, rows, expected = binary
    records = json.loads(rows.to_json(orient="records"))
    instances = {"instances": json.loads(rows.to_json(orient="values"))}
    for body in (json.dumps(instances), json.dumps(records)):
        answer = json.loads(_invoke(model, body, "application/json; charset=utf-8"))
        assert np.array_equal(np.array(answer["predictions"], dtype=np.float32), expected)
    one = json.loads(_invoke(model, json.dumps(records[0]), "application/json"))
    assert np.array_equal(np.array(one["predictions"], dtype=np.float32), expected[:1])


def test_one_row_is_answered_the_same_from_csv_and_json_with_missing_and_unseen_values(binary) -> None:
    model, _, _ = binary
    # Given a row with a missing age, an unseen plan and a lower-case boolean
    row = {"age": None, "visits": 4, "income": 21000.5, "plan": "platinum", "region": "north", "active": "true"}
    csv_line = ",".join("" if row[name] is None else str(row[name]) for name in model.transform.feature_names)
    from_csv = float(_invoke(model, csv_line, "text/csv", accept="text/csv"))
    from_json = json.loads(_invoke(model, json.dumps(row), "application/json"))["predictions"][0]
    expected = model.booster.inplace_predict(model.transform.apply({name: [value] for name, value in row.items()}))
    assert from_csv == from_json == pytest.approx(float(expected[0]), abs=0)


def test_json_rows_get_the_same_predictions_whether_or_not_their_values_have_the_features_types(binary) -> None:
    model, rows, expected = binary
    values = json.loads(rows.head(20).to_json(orient="values"))
    # Given the rows typed as the features are (numbers, text: Arrow's fast path; booleans sent as text),
    typed = [[str(value) if isinstance(value, bool) else value for value in row] for row in values]
    # as they come from pandas (booleans in a categorical feature), and with every number sent as text
    # (those two are encoded by the transform, as training encoded them)
    as_text = [[str(value) if isinstance(value, int | float) else value for value in row] for row in values]
    for instances in (typed, values, as_text):
        answer = json.loads(_invoke(model, json.dumps({"instances": instances}), "application/json"))
        # Then the predictions are the booster's own for the rows
        assert np.array_equal(np.array(answer["predictions"], dtype=np.float32), expected[:20])


def test_multiclass_answers_label_and_probabilities(multiclass_model) -> None:
    model = inference.model_fn(str(multiclass_model.model_dir))
    rows = multiclass_model.test_rows[model.transform.feature_names].head(20)
    probabilities = model.booster.inplace_predict(model.transform.apply(rows))
    labels = np.array(model.transform.labels)[probabilities.argmax(axis=1)].tolist()
    answer = json.loads(_invoke(model, _csv(rows), "text/csv"))
    assert answer["labels"] == ["high", "low", "mid"]
    assert [item["label"] for item in answer["predictions"]] == labels
    assert np.allclose([item["probabilities"] for item in answer["predictions"]], probabilities, rtol=0, atol=0)
    assert _invoke(model, _csv(rows), "text/csv", accept="text/csv").splitlines() == labels


def test_regression_answers_values(regression_model) -> None:
    model = inference.model_fn(str(regression_model.model_dir))
    rows = regression_model.test_rows[model.transform.feature_names].head(20)
    answer = json.loads(_invoke(model, _csv(rows), "text/csv", accept="*/*"))
    assert np.array_equal(
        np.array(answer["predictions"], dtype=np.float32), model.booster.inplace_predict(model.transform.apply(rows))
    )


@pytest.mark.parametrize(
    ("body", "content_type", "error", "message"),
    [
        ("", "text/csv", inference.EmptyPayloadError, "empty"),
        ("  \n\n", "text/csv", inference.EmptyPayloadError, "empty"),
        ('{"instances": []}', "application/json", inference.EmptyPayloadError, "no instances"),
        ("1,2,3\n", "text/csv", inference.ColumnCountError, "a CSV row has 3 values; this model takes 6"),
        ("30,2,100,pro,north,true,extra\n", "text/csv", inference.ColumnCountError, "has 7 values"),
        ('{"instances": [[30, 2, 100, "pro"]]}', "application/json", inference.ColumnCountError, "instance 1 has 4"),
        (
            "30,two,100,pro,north,true\n",
            "text/csv",
            inference.NonNumericValueError,
            "feature 'visits' expects a number, got 'two' (row 1",
        ),
        (
            '[{"age": 30, "visits": 2, "income": "lots", "plan": "pro", "region": "north", "active": true}]',
            "application/json",
            inference.NonNumericValueError,
            "feature 'income' expects a number, got 'lots'",
        ),
        (
            '[{"age": 30, "plan": "pro"}]',
            "application/json",
            inference.MissingFeaturesError,
            "instance 1 lacks features visits, income, region, active",
        ),
        ('{"instances": [[30, 2', "application/json", inference.MalformedPayloadError, "not valid JSON"),
        ('"hello"', "application/json", inference.MalformedPayloadError, "JSON must be"),
        ('[[1, 2, 3, 4, 5, 6], {"age": 1}]', "application/json", inference.MalformedPayloadError, "all be lists"),
        ("30,2,100,pro,north,true", "application/x-npy", inference.UnsupportedContentTypeError, "not supported"),
        ("30,2,100,pro,north,true", None, inference.UnsupportedContentTypeError, "not supported"),
    ],
)
def test_bad_payloads_get_named_client_errors(binary, body, content_type, error, message) -> None:
    model, _, _ = binary
    with pytest.raises(error, match=re.escape(message)) as raised:
        _invoke(model, body, content_type)
    # A ValueError with an HTTP status, so the serving layer answers 4xx, never a traceback-only 500
    assert isinstance(raised.value, ValueError)
    assert raised.value.status_code == (415 if error is inference.UnsupportedContentTypeError else 400)
    assert str(raised.value) == raised.value.message


@pytest.mark.parametrize("collector_on", [True, False])
def test_json_requests_leave_the_servers_garbage_collector_as_they_found_it(binary, collector_on) -> None:
    model, rows, expected = binary
    instances = json.dumps({"instances": json.loads(rows.to_json(orient="values"))})
    bad = ['{"instances": [[30, 2', '[{"age": 30, "plan": "pro"}]', '{"instances": [[30, 2, 100, "pro"]]}',
           '[{"age": 30, "visits": 2, "income": "lots", "plan": "pro", "region": "north", "active": true}]']
    # Given a serving process whose collector is on (or was turned off by its host)
    was = gc.isenabled()
    (gc.enable if collector_on else gc.disable)()
    try:
        # When JSON requests are answered, and bad ones refused mid-way through decoding or encoding
        answer = json.loads(_invoke(model, instances, "application/json"))
        for body in bad:
            with pytest.raises(inference.PayloadError):
                _invoke(model, body, "application/json")
        # Then the answers are the model's, and the collector is as it was before them
        assert np.array_equal(np.array(answer["predictions"], dtype=np.float32), expected)
        assert gc.isenabled() is collector_on
    finally:
        (gc.enable if was else gc.disable)()


def test_a_body_over_six_megabytes_is_refused(binary) -> None:
    model, rows, _ = binary
    line = _csv(rows.head(1))
    body = line * (6 * 1024 * 1024 // len(line) + 1)
    with pytest.raises(inference.PayloadTooLargeError, match="limit is 6291456") as raised:
        _invoke(model, body, "text/csv")
    assert raised.value.status_code == 413


def test_an_unsupported_accept_type_is_refused(binary) -> None:
    model, rows, _ = binary
    with pytest.raises(inference.UnsupportedAcceptError) as raised:
        _invoke(model, _csv(rows.head(1)), "text/csv", accept="application/x-protobuf")
    assert raised.value.status_code == 406


def test_the_model_directory_serves_on_its_own(binary_model, binary, tmp_path) -> None:
    # Given only the files of model.tar.gz, loaded the way a serving host may: a bare importlib exec_module
    _, rows, expected = binary
    script = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('served', sys.argv[1] + '/code/inference.py')\n"
        "served = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(served)\n"
        "model = served.model_fn(sys.argv[1])\n"
        "print(sys.modules['features'].__file__)\n"
        "prediction = served.predict_fn(served.input_fn(sys.stdin.read(), 'text/csv'), model)\n"
        "print(served.output_fn(prediction, 'text/csv')[0])\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(binary_model.model_dir)],
        input=_csv(rows.head(3)),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
        timeout=60,
    )
    # Then it answers with its own features.py and transform.json, as the booster would
    features_file, *answers = run.stdout.split()
    assert features_file == str(binary_model.model_dir / "code" / "features.py")
    assert np.array_equal(np.array(answers, dtype=np.float32), expected[:3])


# Property: whatever a client sends, the answer is predictions or a named client error (4xx), never a crash.
cells = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True).map(str), st.text(max_size=6),
                  st.sampled_from(["", "pro", "north", "true", "NaN", "inf", "1e309", "-0"]))
csv_rows = st.lists(st.lists(cells, min_size=0, max_size=9).map(",".join), min_size=0, max_size=4).map("\n".join)
json_values = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=6), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(st.binary(max_size=200), csv_rows.map(str.encode), json_values.map(json.dumps).map(str.encode)),
       content_type=st.sampled_from(["text/csv", "application/json", "text/csv; charset=utf-8", "text/plain", None]),
       accept=st.sampled_from(["text/csv", "application/json", "*/*", "image/png"]))
def test_any_request_gets_predictions_or_a_named_client_error(binary, body, content_type, accept) -> None:
    model, _, _ = binary
    try:
        answer = _invoke(model, body, content_type, accept)
    except inference.PayloadError as error:
        assert 400 <= error.status_code < 500 and str(error)
    else:
        assert answer
