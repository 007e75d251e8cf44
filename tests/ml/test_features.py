"""The feature transform: fitted on training rows, applied identically wherever the model runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from features import FeatureTransform, MissingColumnsError, NonNumericError, UnknownLabelError, key_codes, key_counts


@pytest.fixture
def rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [30.0, np.nan, 50.0, 40.0, 20.0],
            "plan": ["pro", "basic", "pro", None, "plus"],
            "active": [True, False, True, True, False],
            "churned": ["yes", "no", "no", "yes", "no"],
        }
    )


def test_numeric_missing_values_take_the_training_median(rows: pd.DataFrame) -> None:
    # Given a transform fitted on rows whose ages have median 35
    transform = FeatureTransform.fit(rows, "churned", "binary")
    # When rows with a missing and an infinite age are encoded
    matrix = transform.apply(pd.DataFrame({"age": [np.nan, np.inf, 61.5], "plan": ["pro"] * 3, "active": [True] * 3}))
    # Then both take the median and real values pass through as float32
    assert matrix.dtype == np.float32
    assert matrix[:, 0].tolist() == [35.0, 35.0, 61.5]


def test_categorical_levels_are_coded_most_frequent_first_and_unknowns_are_minus_one(rows: pd.DataFrame) -> None:
    transform = FeatureTransform.fit(rows, "churned", "binary")
    plan = transform.to_dict()["features"][1]
    assert plan == {"name": "plan", "kind": "categorical", "levels": ["pro", "basic", "plus"]}
    # Seen levels get their rank; unseen, missing and NaN get -1
    encoded = transform.apply(
        pd.DataFrame({"age": [1.0] * 5, "plan": ["pro", "plus", "gold", None, np.nan], "active": [True] * 5})
    )
    assert encoded[:, 1].tolist() == [0, 2, -1, -1, -1]


def test_rare_levels_beyond_the_cap_are_treated_as_unseen() -> None:
    # Given 60 distinct cities, the first one most frequent
    cities = ["c00"] * 5 + [f"c{i:02d}" for i in range(1, 60)]
    frame = pd.DataFrame({"city": cities, "y": np.arange(len(cities), dtype=float)})
    transform = FeatureTransform.fit(frame, "y", "regression", max_levels=50)
    levels = transform.to_dict()["features"][0]["levels"]
    assert len(levels) == 50 and levels[0] == "c00"
    assert transform.apply({"city": ["c00", "c59"]})[:, 0].tolist() == [0, -1]


def test_boolean_levels_match_however_a_client_spells_them(rows: pd.DataFrame) -> None:
    # Given a boolean column (pandas reads True/true/TRUE alike as booleans)
    transform = FeatureTransform.fit(rows, "churned", "binary")
    # When a client sends the values as text, in any case, or as JSON booleans
    encoded = transform.apply({"age": [1.0] * 4, "plan": ["pro"] * 4, "active": ["true", "FALSE", True, "True"]})
    # Then they get the codes the training booleans got
    assert encoded[:, 2].tolist() == [0, 1, 0, 0]


def test_columns_may_come_reordered_with_extras_as_a_frame_or_a_mapping(rows: pd.DataFrame) -> None:
    transform = FeatureTransform.fit(rows, "churned", "binary")
    expected = transform.apply(rows)
    shuffled = rows[["churned", "active", "plan", "age"]].assign(extra=1)
    mapping = {name: rows[name].tolist() for name in ["plan", "active", "age"]}
    assert np.array_equal(transform.apply(shuffled), expected)
    assert np.array_equal(transform.apply(mapping), expected)


def test_missing_feature_columns_are_named(rows: pd.DataFrame) -> None:
    transform = FeatureTransform.fit(rows, "churned", "binary")
    with pytest.raises(MissingColumnsError, match="plan, active") as raised:
        transform.apply(rows[["age"]])
    assert isinstance(raised.value, ValueError)


def test_text_that_is_not_a_number_is_refused_with_the_feature_and_value(rows: pd.DataFrame) -> None:
    transform = FeatureTransform.fit(rows, "churned", "binary")
    # Numbers as text and blanks (missing) are fine
    encoded = transform.apply({"age": ["41.5", " 7", ""], "plan": ["pro"] * 3, "active": [True] * 3})
    assert encoded[:, 0].tolist() == [41.5, 7.0, 35.0]
    with pytest.raises(NonNumericError, match=r"feature 'age' expects a number, got 'forty' \(row 2"):
        transform.apply({"age": ["41", "forty"], "plan": ["pro"] * 2, "active": [True] * 2})


def test_targets_encode_to_class_indices_or_floats(rows: pd.DataFrame) -> None:
    binary = FeatureTransform.fit(rows, "churned", "binary")
    assert binary.labels == ["no", "yes"]
    assert binary.encode_target(rows["churned"]).tolist() == [1, 0, 0, 1, 0]
    with pytest.raises(UnknownLabelError, match="maybe"):
        binary.encode_target(["maybe"])
    # Labels read back as text (test.csv) still match numeric classes
    numeric = FeatureTransform.fit(rows.assign(churned=[1, 0, 2, 2, 1]), "churned", "multiclass")
    assert numeric.labels == [0, 1, 2]
    assert numeric.encode_target(pd.Series(["2", "0"])).tolist() == [2, 0]
    regression = FeatureTransform.fit(rows.assign(churned=[1.5, 2, 3, 4, 5]), "churned", "regression")
    assert regression.labels is None
    assert regression.encode_target(rows.assign(churned=[1.5, 2, 3, 4, 5])["churned"]).tolist() == [1.5, 2, 3, 4, 5]


def test_a_binary_problem_needs_exactly_two_classes(rows: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="exactly 2 classes"):
        FeatureTransform.fit(rows.assign(churned=["a", "b", "c", "a", "b"]), "churned", "binary")


def test_transform_json_is_plain_json_and_round_trips(tmp_path, rows: pd.DataFrame) -> None:
    # Given a transform whose numeric column is entirely missing (no median to learn)
    transform = FeatureTransform.fit(rows.assign(empty=np.nan), "churned", "binary")
    path = tmp_path / "transform.json"
    transform.save(path)
    # Then the file is strict JSON (no NaN) and loads back to the same encoding
    document = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}"))
    assert document["target"] == "churned" and document["problem"] == "binary"
    assert [feature["name"] for feature in document["features"]] == ["age", "plan", "active", "empty"]
    loaded = FeatureTransform.load(path)
    assert np.array_equal(loaded.apply(rows.assign(empty=np.nan)), transform.apply(rows.assign(empty=np.nan)))
    assert loaded.labels == ["no", "yes"]


@pytest.mark.parametrize(("values", "counts"), [
    (["b", "a", "b"], {"a": 1, "b": 2}),
    ([2, 1, 2], {"1": 1, "2": 2}),
    ([True, False, True], {"False": 1, "True": 2}),
    # pandas takes 1, 1.0 and True for one value, and 0.0 and -0.0: each keeps its own text here
    ([1, 1.0, True, "1"], {"1": 2, "1.0": 1, "True": 1}),
    ([0.0, -0.0, 0.0], {"0.0": 2, "-0.0": 1}),
], ids=["text", "integers", "booleans", "mixed", "signed zeros"])
def test_values_are_counted_and_coded_by_their_text_whatever_their_type(values, counts) -> None:
    # Given values as a reader may give them, in an object column
    column = pd.Series(values, dtype=object)
    # When they are counted, and coded against codes by text
    codes = {key: position for position, key in enumerate(sorted(counts))}
    # Then each value counts under, and is coded by, the text _key gives it
    assert dict(key_counts(column)) == counts
    assert key_codes(column.to_numpy(), codes).tolist() == [codes[value if isinstance(value, str) else str(value)]
                                                           for value in values]
    assert key_codes(column.to_numpy(), {}).tolist() == [-1] * len(values)
