"""selfheal's drift monitor (ml/monitor.py): baselines, checks, data capture reading, the job's contract."""

from __future__ import annotations

import base64
import csv
import importlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from itertools import pairwise
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd
import pytest
from selfheal_shared.config import CheckType

ML_DIR = Path(__file__).resolve().parents[2] / "ml"
monitor = importlib.import_module("monitor")
capture = importlib.import_module("capture")
build_baseline = importlib.import_module("baseline").build_baseline
BaselineError = importlib.import_module("baseline").BaselineError

FEATURES = ["income", "age", "score", "plan", "region"]
PLANS = ["basic", "plus", "pro", "team"]
REGIONS = ["north", "south", "west"]
CHECK_TYPES = set(get_args(CheckType))  # Model Monitor's check types, as a model's monitor.check_types names them
HOUR = "2026-11-26T05"


def customers(rows: int, seed: int, shift: tuple[str, ...] = ()) -> pd.DataFrame:
    """Seeded feature rows; `shift` names the features whose distribution moves clearly."""
    rng = np.random.default_rng(seed)
    plan_p = [0.1, 0.2, 0.3, 0.4] if "plan" in shift else [0.4, 0.3, 0.2, 0.1]
    return pd.DataFrame(
        {
            "income": rng.lognormal(10.5 + (0.5 if "income" in shift else 0.0), 0.4, rows).round(2),
            "age": rng.integers(18, 80, rows) + (15 if "age" in shift else 0),
            "score": rng.normal(3.0 if "score" in shift else 0.0, 1.0, rows).round(4),
            "plan": rng.choice(PLANS, rows, p=plan_p),
            "region": rng.choice(REGIONS, rows, p=[0.2, 0.3, 0.5] if "region" in shift else [0.5, 0.3, 0.2]),
        }
    )


@pytest.fixture(scope="module")
def baseline() -> tuple[dict[str, Any], dict[str, Any]]:
    return build_baseline(customers(5000, seed=1))


def checks(violations: dict[str, Any]) -> set[tuple[str, str]]:
    return {(v["feature_name"], v["constraint_check_type"]) for v in violations["violations"]}


def csv_payload(frame: pd.DataFrame) -> str:
    return frame.to_csv(header=False, index=False).rstrip("\n")


def capture_line(data: str, content_type: str = "text/csv", encoding: str = "CSV", time: str = f"{HOUR}:10:00Z") -> str:
    """One line of SageMaker endpoint data capture, as the endpoint writes it (compact JSON)."""
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": content_type,
                    "mode": "INPUT",
                    "data": data,
                    "encoding": encoding,
                },
                "endpointOutput": {
                    "observedContentType": "text/csv; charset=utf-8",
                    "mode": "OUTPUT",
                    "data": "0.42",
                    "encoding": "CSV",
                },
            },
            "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": time},
            "eventVersion": "0",
        },
        separators=(",", ":"),
    )


def csv_lines(frame: pd.DataFrame, rows_per_record: int = 1, **fields: str) -> list[str]:
    rows = csv_payload(frame).split("\n")
    return [
        capture_line("\n".join(rows[i : i + rows_per_record]), **fields) for i in range(0, len(rows), rows_per_record)
    ]


def opt_ml(root: Path, baseline: tuple[dict, dict], lines: list[str], hour: str = "05") -> Path:
    """A processing container's /opt/ml with the baseline and capture files under SageMaker's prefix layout."""
    inputs = root / "processing" / "input"
    (inputs / "baseline").mkdir(parents=True, exist_ok=True)
    (inputs / "baseline" / "statistics.json").write_text(json.dumps(baseline[0]))
    (inputs / "baseline" / "constraints.json").write_text(json.dumps(baseline[1]))
    capture = inputs / "capture" / "churn-endpoint" / "AllTraffic" / "2026" / "11" / "26" / hour
    capture.mkdir(parents=True, exist_ok=True)
    (capture / f"{uuid.uuid4()}.jsonl").write_text("".join(line + "\n" for line in lines))
    return root


def run(root: Path, **kwargs: Any) -> tuple[dict, dict, dict]:
    monitor.run_job(root, **kwargs)
    report = root / "processing" / "output" / "report"
    return tuple(
        json.loads((report / name).read_text())  # type: ignore[return-value]
        for name in ("statistics.json", "constraint_violations.json", "drift_metrics.json")
    )


# ------------------------------------------------------------- Model Monitor's documented shapes, as asserts


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def assert_statistics_shape(statistics: dict[str, Any]) -> None:
    """Schema for Statistics (statistics.json file), SageMaker developer guide."""
    assert statistics["version"] == 0
    assert is_number(statistics["dataset"]["item_count"])
    for feature in statistics["features"]:
        assert isinstance(feature["name"], str)
        if feature["inferred_type"] in ("Integral", "Fractional"):
            numerical = feature["numerical_statistics"]
            assert set(numerical["common"]) == {"num_present", "num_missing"}
            assert all(is_number(numerical[key]) for key in ("mean", "sum", "std_dev", "min", "max"))
            kll = numerical["distribution"]["kll"]
            for bucket in kll["buckets"]:
                assert set(bucket) == {"lower_bound", "upper_bound", "count"}
                assert all(is_number(v) for v in bucket.values())
                assert bucket["lower_bound"] <= bucket["upper_bound"]
            assert set(kll["sketch"]["parameters"]) == {"c", "k"}
            assert all(isinstance(level, list) and all(is_number(v) for v in level) for level in kll["sketch"]["data"])
        else:
            assert feature["inferred_type"] == "String"
            string = feature["string_statistics"]
            assert set(string["common"]) == {"num_present", "num_missing"}
            assert is_number(string["distinct_count"])
            for bucket in string["distribution"]["categorical"]["buckets"]:
                assert isinstance(bucket["value"], str) and is_number(bucket["count"])


def assert_constraints_shape(constraints: dict[str, Any]) -> None:
    """Schema for Constraints (constraints.json file), SageMaker developer guide."""
    assert constraints["version"] == 0
    for feature in constraints["features"]:
        assert isinstance(feature["name"], str)
        assert feature["inferred_type"] in ("Integral", "Fractional", "String", "Unknown")
        assert 0.0 <= feature["completeness"] <= 1.0
        if "num_constraints" in feature:
            assert isinstance(feature["num_constraints"]["is_non_negative"], bool)
        if "string_constraints" in feature:
            assert all(isinstance(v, str) for v in feature["string_constraints"]["domains"])
    config = constraints["monitoring_config"]
    assert config["evaluate_constraints"] in ("Enabled", "Disabled")
    assert config["emit_metrics"] in ("Enabled", "Disabled")
    assert is_number(config["datatype_check_threshold"]) and is_number(config["domain_content_threshold"])
    distribution = config["distribution_constraints"]
    assert distribution["perform_comparison"] in ("Enabled", "Disabled")
    assert distribution["comparison_threshold"] == 0.1
    assert distribution["comparison_method"] in ("Simple", "Robust")
    assert is_number(distribution["categorical_comparison_threshold"])
    assert distribution["categorical_drift_method"] == "LInfinity"


def assert_violations_shape(violations: dict[str, Any]) -> None:
    """Schema for Violations (constraint_violations.json file), SageMaker developer guide."""
    assert list(violations) == ["violations"]
    for violation in violations["violations"]:
        assert set(violation) == {"feature_name", "constraint_check_type", "description"}
        assert violation["constraint_check_type"] in CHECK_TYPES
        assert isinstance(violation["feature_name"], str) and violation["description"]


def assert_drift_metrics_shape(metrics: dict[str, Any], features: list[str]) -> None:
    """selfheal's drift_metrics.json, which a Lambda publishes to CloudWatch."""
    assert is_number(metrics["rows"]) and isinstance(metrics["empty"], bool)
    assert set(metrics["window"]) == {"start", "end", "first_event", "last_event"}
    assert list(metrics["features"]) == features
    for feature in metrics["features"].values():
        assert feature["distance"] is None or 0.0 <= feature["distance"] <= 1.0
        assert is_number(feature["threshold"]) and isinstance(feature["drifted"], bool)
        assert feature["method"] in ("linf_simple", "linf_robust")


# ------------------------------------------------------------------------------------------------ baseline


def test_the_baseline_is_in_model_monitors_formats(baseline):
    statistics, constraints = baseline

    assert_statistics_shape(statistics)
    assert_constraints_shape(constraints)
    assert statistics["dataset"]["item_count"] == 5000
    types = {f["name"]: f["inferred_type"] for f in constraints["features"]}
    assert types == {
        "income": "Fractional",
        "age": "Integral",
        "score": "Fractional",
        "plan": "String",
        "region": "String",
    }
    by_name = {f["name"]: f for f in constraints["features"]}
    assert by_name["plan"]["string_constraints"]["domains"] == sorted(PLANS)
    assert by_name["income"]["num_constraints"]["is_non_negative"] is True
    assert by_name["score"]["num_constraints"]["is_non_negative"] is False
    assert all(f["completeness"] == 1.0 for f in constraints["features"])


def test_baseline_statistics_describe_the_training_data(baseline):
    training = customers(5000, seed=1)
    statistics = {f["name"]: f for f in baseline[0]["features"]}

    score = statistics["score"]["numerical_statistics"]
    assert score["common"] == {"num_present": 5000, "num_missing": 0}
    assert score["mean"] == pytest.approx(training["score"].mean())
    assert score["std_dev"] == pytest.approx(training["score"].std(ddof=0))
    assert (score["min"], score["max"]) == (training["score"].min(), training["score"].max())
    assert sum(b["count"] for b in score["distribution"]["kll"]["buckets"]) == 5000
    plan = statistics["plan"]["string_statistics"]["distribution"]["categorical"]["buckets"]
    assert {b["value"]: b["count"] for b in plan} == training["plan"].value_counts().to_dict()


def test_an_integer_column_with_gaps_is_still_integral():
    frame = pd.DataFrame({"visits": [1.0, None, 3.0, 4.0], "ratio": [0.5, 1.0, None, 2.0]})

    _, constraints = build_baseline(frame)

    assert [(f["inferred_type"], f["completeness"]) for f in constraints["features"]] == [
        ("Integral", 0.75),
        ("Fractional", 0.75),
    ]


# ------------------------------------------------------------------------------------------------- checks


def test_a_window_like_the_baseline_has_no_violations(baseline):
    statistics, violations, metrics = monitor.analyze_frame(customers(2000, seed=2), *baseline)

    assert violations == {"violations": []}
    assert metrics["rows"] == 2000
    assert not any(feature["drifted"] for feature in metrics["features"].values())
    assert statistics["dataset"]["item_count"] == 2000


@pytest.mark.parametrize("shifted", [("score",), ("age", "plan"), ("income", "region")])
def test_drift_is_found_on_exactly_the_shifted_features(baseline, shifted):
    _, violations, metrics = monitor.analyze_frame(customers(2000, seed=3, shift=shifted), *baseline)

    assert checks(violations) == {(name, "baseline_drift_check") for name in shifted}
    assert {name for name, f in metrics["features"].items() if f["drifted"]} == set(shifted)
    for name in shifted:
        assert metrics["features"][name]["distance"] > metrics["features"][name]["threshold"]


def test_robust_distance_subtracts_the_kolmogorov_smirnov_sample_size_term(baseline):
    statistics, constraints = baseline
    simple = json.loads(json.dumps(constraints))
    simple["monitoring_config"]["distribution_constraints"]["comparison_method"] = "Simple"
    window = customers(60, seed=4)

    robust_metrics = monitor.analyze_frame(window, statistics, constraints)[2]["features"]
    simple_metrics = monitor.analyze_frame(window, statistics, simple)[2]["features"]

    term = 1.8 * np.sqrt((5000 + 60) / (5000 * 60))
    for name in FEATURES:
        assert simple_metrics[name]["method"] == "linf_simple"
        assert robust_metrics[name]["method"] == "linf_robust"
        assert robust_metrics[name]["distance"] == pytest.approx(max(0.0, simple_metrics[name]["distance"] - term))


def test_a_feature_missing_from_the_requests_is_a_missing_column(baseline):
    window = customers(300, seed=5).drop(columns=["region"])

    _, violations, metrics = monitor.analyze_frame(window, *baseline)

    assert checks(violations) == {("region", "missing_column_check")}
    assert metrics["features"]["region"]["distance"] is None


def test_a_column_the_baseline_does_not_know_is_an_extra_column(baseline):
    window = customers(300, seed=6).assign(coupon="SPRING")

    _, violations, _ = monitor.analyze_frame(window, *baseline)

    assert checks(violations) == {("coupon", "extra_column_check")}


def test_text_in_a_numeric_feature_fails_the_data_type_check(baseline):
    window = customers(300, seed=7).astype({"age": object})
    window.loc[::10, "age"] = "unknown"

    _, violations, _ = monitor.analyze_frame(window, *baseline)

    assert checks(violations) == {("age", "data_type_check")}
    [violation] = violations["violations"]
    assert "Expected data type: Integral" in violation["description"]
    assert "90%" in violation["description"]


def test_fractions_in_an_integral_feature_fail_the_data_type_check(baseline):
    window = customers(300, seed=7).astype({"age": float})
    window.loc[::4, "age"] += 0.5

    _, violations, _ = monitor.analyze_frame(window, *baseline)

    assert ("age", "data_type_check") in checks(violations)


def test_many_missing_values_fail_the_completeness_check(baseline):
    window = customers(300, seed=8)
    window.loc[::3, "income"] = np.nan

    _, violations, _ = monitor.analyze_frame(window, *baseline)

    assert checks(violations) == {("income", "completeness_check")}
    assert "66.67% of data is not null" in violations["violations"][0]["description"]


def with_gaps(frame: pd.DataFrame, seed: int, share: float) -> pd.DataFrame:
    """`share` of income and plan values missing, at random."""
    rng = np.random.default_rng(seed)
    frame = frame.copy()
    frame.loc[rng.random(len(frame)) < share, "income"] = np.nan
    frame.loc[rng.random(len(frame)) < share, "plan"] = None
    return frame


def test_missing_values_as_common_as_in_training_are_not_a_completeness_violation():
    gappy_baseline = build_baseline(with_gaps(customers(5000, seed=1), seed=1, share=0.05))
    completeness = {f["name"]: f["completeness"] for f in gappy_baseline[1]["features"]}
    assert 0.94 < completeness["income"] < 0.96

    # Windows of 200 rows with 5% missing: about half of them fall below 95% by chance alone.
    found = [
        monitor.analyze_frame(with_gaps(customers(200, seed=s), seed=s, share=0.05), *gappy_baseline)[1]
        for s in range(20)
    ]
    fewer = monitor.analyze_frame(with_gaps(customers(200, seed=99), seed=99, share=0.25), *gappy_baseline)[1]

    assert all(violations == {"violations": []} for violations in found)
    assert checks(fewer) == {("income", "completeness_check"), ("plan", "completeness_check")}


def test_values_outside_the_baseline_domain_fail_the_categorical_values_check(baseline):
    window = customers(1000, seed=9)
    window.loc[::5, "plan"] = "enterprise"

    _, violations, metrics = monitor.analyze_frame(window, *baseline)

    assert ("plan", "categorical_values_check") in checks(violations)
    assert {name for name, _ in checks(violations)} == {"plan"}
    # The unseen value is a category of its own: it moves the distribution by its share (20%).
    assert metrics["features"]["plan"]["drifted"]


def test_a_baseline_asking_for_an_unsupported_method_is_refused(baseline):
    statistics, constraints = baseline
    chi = json.loads(json.dumps(constraints))
    chi["monitoring_config"]["distribution_constraints"]["categorical_drift_method"] = "ChiSquared"

    with pytest.raises(BaselineError, match="ChiSquared"):
        monitor.analyze_frame(customers(10, seed=1), statistics, chi)


# ------------------------------------------------------------------------------------------- data capture


def test_the_job_writes_reports_in_model_monitors_formats(tmp_path, baseline):
    root = opt_ml(tmp_path, baseline, csv_lines(customers(500, seed=10, shift=("score",))))

    statistics, violations, metrics = run(root)

    assert_statistics_shape(statistics)
    assert_violations_shape(violations)
    assert_drift_metrics_shape(metrics, FEATURES)
    assert checks(violations) == {("score", "baseline_drift_check")}
    assert metrics["rows"] == metrics["records"] == statistics["dataset"]["item_count"] == 500
    assert metrics["window"]["first_event"] == metrics["window"]["last_event"] == f"{HOUR}:10:00Z"
    assert [f["name"] for f in statistics["features"]] == FEATURES


def json_instances(frame: pd.DataFrame) -> str:
    return json.dumps({"instances": frame.to_numpy().tolist()})


def json_objects(frame: pd.DataFrame) -> str:
    return json.dumps(frame.to_dict(orient="records"))


def base64_of(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def encodings(frame: pd.DataFrame) -> dict[str, list[str]]:
    """The same rows, captured in each format an endpoint may receive."""
    halves = [frame.iloc[:100], frame.iloc[100:]]
    return {
        "csv, a row a request": csv_lines(frame),
        "csv, many rows a request": csv_lines(frame, rows_per_record=7),
        "json instances": [capture_line(json_instances(h), "application/json", "JSON") for h in halves],
        "json objects": [capture_line(json_objects(h), "application/json", "JSON") for h in halves],
        "jsonlines": [
            capture_line("\n".join(json.dumps(r) for r in frame.to_numpy().tolist()), "application/jsonlines", "JSON")
        ],
        "base64 csv": [capture_line(base64_of(csv_payload(h)), "text/csv", "BASE64") for h in halves],
        "base64 json": [capture_line(base64_of(json_instances(h)), "application/json", "BASE64") for h in halves],
    }


@pytest.mark.parametrize("encoding", list(encodings(customers(1, seed=0))))
def test_csv_json_and_base64_capture_records_read_the_same(tmp_path, baseline, encoding):
    frame = customers(200, seed=11)
    expected = monitor.analyze_frame(frame, *baseline)[0]

    statistics, violations, metrics = run(opt_ml(tmp_path, baseline, encodings(frame)[encoding]))

    assert metrics["rows"] == 200 and metrics["invalid_records"] == 0
    assert statistics == expected
    assert violations == {"violations": []}


def test_capture_lines_with_other_spacing_and_key_order_read_the_same(tmp_path, baseline):
    frame = customers(50, seed=12)
    lines = [
        json.dumps(
            {
                "eventVersion": "0",
                "eventMetadata": {"inferenceTime": f"{HOUR}:20:00Z"},
                "captureData": {
                    "endpointOutput": {"data": "1", "encoding": "CSV"},
                    "endpointInput": {
                        "data": row,
                        "encoding": "CSV",
                        "mode": "INPUT",
                        "observedContentType": "text/csv",
                    },
                },
            }
        )
        for row in csv_payload(frame).split("\n")
    ]

    statistics, _, metrics = run(opt_ml(tmp_path, baseline, lines))

    assert metrics["rows"] == 50 and metrics["invalid_records"] == 0
    assert statistics == monitor.analyze_frame(frame, *baseline)[0]


def test_unreadable_records_are_counted_and_the_rest_analysed(tmp_path, baseline):
    good = csv_lines(customers(100, seed=13))
    no_data = capture_line("1,2,3").replace('"data":"1,2,3",', "")
    lines = good[:50] + ["not json at all", good[50][:40], no_data] + good[50:]

    _, violations, metrics = run(opt_ml(tmp_path, baseline, lines))

    assert (metrics["rows"], metrics["records"], metrics["invalid_records"]) == (100, 100, 3)
    assert violations == {"violations": []}


def test_quoted_csv_fields_read_as_unquoted_ones(tmp_path, baseline):
    frame = customers(100, seed=20)
    quoted = frame.to_csv(header=False, index=False, quoting=csv.QUOTE_ALL).rstrip("\n").split("\n")

    statistics, _, metrics = run(opt_ml(tmp_path, baseline, [capture_line(row) for row in quoted]))

    assert metrics["rows"] == 100
    assert statistics == monitor.analyze_frame(frame, *baseline)[0]


def test_a_malformed_csv_request_spoils_only_itself(tmp_path, baseline):
    good = csv_lines(customers(100, seed=21))
    bad = [capture_line('1,"unterminated,3'), capture_line('"' + "x" * 200_000 + '",1,2,pro,north')]

    _, violations, metrics = run(opt_ml(tmp_path, baseline, good[:50] + bad + good[50:]))

    assert (metrics["rows"], metrics["invalid_records"]) == (100, 2)
    assert violations == {"violations": []}


def test_csv_requests_with_fewer_or_more_columns(tmp_path, baseline):
    frame = customers(100, seed=14)
    lines = csv_lines(frame.drop(columns=["region"])) + csv_lines(frame.assign(coupon="X", channel="web"))

    _, violations, _ = run(opt_ml(tmp_path, baseline, lines))

    # region is absent from half the rows (not from the window): those rows count as missing values.
    assert checks(violations) == {
        ("region", "completeness_check"),
        ("_c5", "extra_column_check"),
        ("_c6", "extra_column_check"),
    }


def test_requests_without_the_last_column_after_whole_ones_count_it_missing(tmp_path, baseline):
    # Given whole CSV requests, then requests that leave out the last column (region)
    frame = customers(100, seed=28, shift=("plan",))
    lines = csv_lines(frame[:60]) + csv_lines(frame[60:].drop(columns=["region"]))
    # When the job reads them
    statistics, violations, _ = run(opt_ml(tmp_path, baseline, lines))
    # Then region is missing from those rows, as in the same rows analysed in memory with no region there
    expected = monitor.analyze_frame(frame.assign(region=frame["region"][:60]), *baseline)
    assert rounded(statistics) == rounded(expected[0])
    assert checks(violations) == checks(expected[1]) >= {("region", "completeness_check")}


def test_only_records_inside_the_time_window_are_analysed(tmp_path, baseline):
    frame = customers(40, seed=15)
    times = ["2026-11-26T04:59:59Z", "2026-11-26T05:00:00Z", "2026-11-26T05:30:00.250Z", "2026-11-26T06:00:00Z"]
    lines = [line for i, time in enumerate(times) for line in csv_lines(frame.iloc[i * 10 : (i + 1) * 10], time=time)]
    start, end = capture.parse_time("2026-11-26T05:00:00Z"), capture.parse_time("2026-11-26T06:00:00Z")

    _, _, metrics = run(opt_ml(tmp_path, baseline, lines), start=start, end=end)

    assert (metrics["rows"], metrics["skipped_records"]) == (20, 20)
    assert metrics["window"] == {
        "start": "2026-11-26T05:00:00Z",
        "end": "2026-11-26T06:00:00Z",
        "first_event": "2026-11-26T05:00:00Z",
        "last_event": "2026-11-26T05:30:00.250000Z",
    }


@pytest.mark.parametrize(
    "lines",
    [[], csv_lines(customers(5, seed=16), time="2026-11-26T09:00:00Z")],
    ids=["no capture files", "no records in the window"],
)
def test_an_empty_window_is_a_report_of_zero_rows(tmp_path, baseline, lines):
    root = opt_ml(tmp_path, baseline, lines)
    start, end = capture.parse_time(f"{HOUR}:00:00Z"), capture.parse_time("2026-11-26T06:00:00Z")

    statistics, violations, metrics = run(root, start=start, end=end)

    assert violations == {"violations": []}
    assert statistics == {"version": 0, "dataset": {"item_count": 0}, "features": []}
    assert metrics["rows"] == 0 and metrics["empty"] is True
    assert all(f["distance"] is None and not f["drifted"] for f in metrics["features"].values())
    assert_drift_metrics_shape(metrics, FEATURES)


def spied_blocks(monkeypatch, read_in_one_piece: bool = True) -> list[bool]:
    """Record whether each block was read in one piece; with read_in_one_piece False, read none that way."""
    taken: list[bool] = []
    whole = capture._add_block

    def add_block(*args: Any) -> bool:
        taken.append(read_in_one_piece and whole(*args))
        return taken[-1]

    monkeypatch.setattr(capture, "_add_block", add_block)
    return taken


WINDOW = {"start": capture.parse_time(f"{HOUR}:05:00Z"), "end": capture.parse_time(f"{HOUR}:30:00Z")}


def with_json_outputs(lines: list[str]) -> list[str]:
    """The lines with endpointOutput's data a JSON response, of more or fewer (escaped) quotes from line to line."""
    records = [json.loads(line) for line in lines]
    for number, record in enumerate(records):
        output = record["captureData"]["endpointOutput"]
        output["observedContentType"], output["encoding"] = "application/json", "JSON"
        output["data"] = json.dumps({"predictions": [{"score": 0.4, "labels": ["yes"] * (number % 3)}]})
    return [json.dumps(record) for record in records]


@pytest.mark.parametrize("mix", ["plain", "times", "json_outputs", "base64", "quoted", "multirow", "times_multirow",
                                 "uneven", "broken"])
def test_a_block_read_in_one_piece_gives_the_report_a_line_at_a_time_gives(tmp_path, baseline, monkeypatch, mix):
    # Given capture blocks of plain CSV records, or ones mixed with what a single pattern cannot read
    frame = customers(600, seed=18, shift=("plan",))
    lines = csv_lines(frame[:400], time=f"{HOUR}:10:00Z")
    extra = {
        "plain": [],
        "times": csv_lines(frame[400:], time=f"{HOUR}:40:00Z"),
        "json_outputs": with_json_outputs(csv_lines(frame[400:], time=f"{HOUR}:20:00Z")),
        "base64": [capture_line(base64_of(csv_payload(frame[400:401])), encoding="BASE64")],
        "quoted": [capture_line('1200.5,"41",0.3,"pro","north"')],
        "multirow": csv_lines(frame[400:], rows_per_record=4),
        "times_multirow": csv_lines(frame[400:500], time=f"{HOUR}:40:00Z") + csv_lines(frame[500:], rows_per_record=4),
        "uneven": csv_lines(frame[400:500].drop(columns=["region"])) + csv_lines(frame[500:].assign(coupon="X")),
        "broken": ['{"captureData": {"endpointInput": ', ""],
    }[mix]
    if mix == "json_outputs":
        lines = with_json_outputs(lines)
    root = opt_ml(tmp_path, baseline, lines + extra)
    # When it is read both ways
    in_one_piece = spied_blocks(monkeypatch)
    fast = run(root, **WINDOW)
    line_by_line = spied_blocks(monkeypatch, read_in_one_piece=False)
    slow = run(root, **WINDOW)
    # Then the reports are the same; plain CSV records are read in one piece
    assert rounded(fast) == rounded(slow)
    assert in_one_piece == [mix in ("plain", "times", "json_outputs", "uneven")] and line_by_line == [False]
    assert fast[2]["rows"] + fast[2]["skipped_records"] + fast[2]["invalid_records"] > 0


def test_a_capture_file_split_at_any_byte_has_each_record_read_once(tmp_path):
    path = tmp_path / "capture.jsonl"
    lines = [f'{{"n": {i}, "pad": "{"x" * (i % 7)}"}}' for i in range(40)]
    path.write_text("\n".join(lines) + "\n")
    size = path.stat().st_size

    for cuts in ([0, size], [0, 1, size], [0, 37, 38, 39, 200, size], list(range(0, size, 13)) + [size]):
        read = [
            line
            for a, b in pairwise(cuts)
            for block in capture._owned_blocks(str(path), a, b)
            for line in block.decode().split("\n")
            if line
        ]
        assert read == lines


def rounded(document: Any) -> Any:
    """Floats to 9 significant digits: moments merged in another order differ in the last bits."""
    if isinstance(document, float):
        return float(f"{document:.9g}")
    if isinstance(document, dict):
        return {key: rounded(value) for key, value in document.items()}
    if isinstance(document, (list, tuple)):
        return [rounded(value) for value in document]
    return document


def test_worker_processes_give_the_same_report(tmp_path, baseline, monkeypatch):
    frame = customers(3000, seed=17, shift=("plan",))
    root = opt_ml(tmp_path, baseline, csv_lines(frame[:1000], rows_per_record=3))
    opt_ml(tmp_path, baseline, csv_lines(frame[1000:]), hour="06")
    single = run(root, workers=1)

    monkeypatch.setattr(capture, "PARALLEL_MIN_BYTES", 0)  # split even this small window in byte ranges
    parallel = run(root, workers=2)

    assert parallel[2]["rows"] == 3000
    assert rounded(parallel) == rounded(single)
    assert checks(parallel[1]) == {("plan", "baseline_drift_check")}


def test_the_pool_is_sized_by_the_cpus_the_job_may_use_not_the_machines(tmp_path, baseline, monkeypatch):
    # Given a container allowed 4 of its host machine's 64 CPUs (its cpuset: what sched_getaffinity shows)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    sized = []
    monkeypatch.setattr(capture, "plan", lambda paths, workers: sized.append(workers) or [[]])
    # When the job plans its reading with the default pool
    run(opt_ml(tmp_path, baseline, []))
    # Then it plans one worker per 2 of its own vCPUs, not per 2 of the machine's
    assert sized == [2]


# ------------------------------------------------------------------ several instances: shares, then a merge

BOTH_HOSTS = ["algo-1", "algo-2"]


def host_root(root: Path, host: str, hosts: list[str], baseline: tuple[dict, dict], lines: list[str]) -> Path:
    """One host's /opt/ml: its share of the capture files and resourceconfig.json as SageMaker writes it."""
    opt_ml(root, baseline, lines)
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": hosts}))
    return root


def merged_run(tmp_path: Path, baseline: tuple[dict, dict], shares: dict[str, list[str]],
               **window: Any) -> tuple[dict, dict, dict]:
    """Each host analyses its share, then a 1-instance merge job reads every host's partial: the report."""
    merge = opt_ml(tmp_path / "merge", baseline, [])
    partials = merge / "processing" / "input" / "partials"
    partials.mkdir(parents=True)
    for host, lines in shares.items():
        root = host_root(tmp_path / host, host, sorted(shares), baseline, lines)
        monitor.run_job(root, **window)
        assert not (root / "processing" / "output" / "report").exists()  # a share, not a report
        for partial in (root / "processing" / "output" / "partials").iterdir():
            partial.rename(partials / partial.name)
    monitor.merge_job(merge, **window)
    report = merge / "processing" / "output" / "report"
    return tuple(json.loads((report / name).read_text())  # type: ignore[return-value]
                 for name in ("statistics.json", "constraint_violations.json", "drift_metrics.json"))


def test_a_window_analysed_in_shares_on_two_hosts_and_merged_gives_the_one_host_report(tmp_path, baseline):
    # Given a window with drift on two features, some broken records and records outside the time window
    frame = customers(3000, seed=21, shift=("score", "plan"))
    lines = csv_lines(frame, rows_per_record=2)
    lines[10:10] = ["not json at all", csv_lines(customers(4, seed=22), time="2026-11-26T09:00:00Z")[0]]
    window = {"start": capture.parse_time(f"{HOUR}:00:00Z"), "end": capture.parse_time("2026-11-26T06:00:00Z")}
    single = run(opt_ml(tmp_path / "one", baseline, lines), **window)
    # When two hosts each analyse a share of the capture files (one host gets all but a few records) and merge
    shares = {"algo-1": lines[:7], "algo-2": lines[7:]}
    merged = merged_run(tmp_path, baseline, shares, **window)
    # Then the merged report is the one host's: the same counts at the baseline's edges, the same verdicts
    assert merged[2]["rows"] == 3000 and merged[2]["invalid_records"] == 1 and merged[2]["skipped_records"] == 1
    drifted = {("score", "baseline_drift_check"), ("plan", "baseline_drift_check")}
    assert checks(merged[1]) == checks(single[1]) == drifted
    assert rounded(merged) == rounded(single)


def test_a_host_with_no_capture_files_still_sends_its_share(tmp_path, baseline):
    # Given fewer capture files than hosts (ShardedByS3Key then leaves a host without any)
    lines = csv_lines(customers(200, seed=23))
    # When host algo-2 has nothing to read
    merged = merged_run(tmp_path, baseline, {"algo-1": lines, "algo-2": []})
    # Then the report counts algo-1's rows, as one host would have
    assert rounded(merged) == rounded(run(opt_ml(tmp_path / "one", baseline, lines)))


def test_the_merge_refuses_when_a_hosts_share_is_missing(tmp_path, baseline):
    # Given a two-host analysis of which only algo-1's share arrived
    root = host_root(tmp_path / "algo-1", "algo-1", BOTH_HOSTS, baseline, csv_lines(customers(50, seed=24)))
    monitor.run_job(root)
    merge = opt_ml(tmp_path / "merge", baseline, [])
    (root / "processing" / "output" / "partials").rename(merge / "processing" / "input" / "partials")
    # When the merge runs, then it refuses rather than report on half the window
    with pytest.raises(monitor.PartialWindowError, match=r"hosts \['algo-1'\], expected one from each of "
                                                         r"\['algo-1', 'algo-2'\]"):
        monitor.merge_job(merge)
    assert not (merge / "processing" / "output" / "report").exists()


def test_a_share_of_another_baselines_window_is_refused(tmp_path, baseline):
    # Given algo-1's share, counted on this baseline's bucket edges
    root = host_root(tmp_path / "algo-1", "algo-1", BOTH_HOSTS, baseline, csv_lines(customers(50, seed=25)))
    monitor.run_job(root)
    (state,) = [json.loads(p.read_text()) for p in (root / "processing" / "output" / "partials").iterdir()]
    # When it is merged on a baseline of other training data (the same features, other bucket edges)
    other = monitor.read_baseline(*build_baseline(customers(5000, seed=26, shift=("income",))))
    # Then it is refused: its counts mean nothing on other edges
    with pytest.raises(monitor.PartialWindowError, match="not a partial window of this baseline"):
        monitor.WindowAccumulator.from_dict(other, state)


# ------------------------------------------------------------------------------------- the job as a script

PEAK_MEMORY = """
import runpy, sys
sys.argv = [{script!r}, *sys.argv[1:]]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    # VmHWM: this address space's peak RSS (ru_maxrss would carry the parent's across fork and exec).
    status = open("/proc/self/status").read()
    print("VmHWM", [line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")][0])
"""


def run_script(root: Path, *arguments: str) -> tuple[str, int]:
    """Run ml/monitor.py as the processing container does; (its output, its peak RSS in kB)."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY.format(script=str(ML_DIR / "monitor.py")), *arguments],
        env={**os.environ, "SELFHEAL_OPT_ML": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    *output, peak = done.stdout.strip().splitlines()
    return "\n".join(output), int(peak.split()[1])


@pytest.mark.process
def test_the_script_runs_under_the_container_contract(tmp_path, baseline):
    frame = customers(60, seed=18, shift=("score",))
    lines = csv_lines(frame[:30], time=f"{HOUR}:59:59Z") + csv_lines(frame[30:], time="2026-11-26T06:00:00Z")
    root = opt_ml(tmp_path, baseline, lines)

    output, _ = run_script(root, "--start-time", f"{HOUR}:00:00Z", "--end-time", "2026-11-26T06:00:00Z")

    report = root / "processing" / "output" / "report"
    metrics = json.loads((report / "drift_metrics.json").read_text())
    assert (metrics["rows"], metrics["skipped_records"]) == (30, 30)
    assert sorted(p.name for p in report.iterdir()) == [
        "constraint_violations.json",
        "drift_metrics.json",
        "statistics.json",
    ]
    assert "analysed 30 rows" in output


LOADED_MODULES = """
import runpy, sys
sys.argv = [{script!r}, *sys.argv[1:]]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print("loaded", " ".join(sorted(name for name in sys.modules if "." not in name)))
"""


@pytest.mark.process
def test_the_merge_job_reads_the_hosts_shares_without_loading_pandas(tmp_path, baseline):
    # Given two hosts' shares of a window (the merge's input: JSON counts at the baseline's edges)
    lines = csv_lines(customers(200, seed=27, shift=("plan",)))
    single = run(opt_ml(tmp_path / "one", baseline, lines))
    merged_run(tmp_path, baseline, {"algo-1": lines[:120], "algo-2": lines[120:]})
    merge = tmp_path / "merge"
    shutil.rmtree(merge / "processing" / "output")
    # When the 1-instance merge job runs as the container runs it
    done = subprocess.run([sys.executable, "-c", LOADED_MODULES.format(script=str(ML_DIR / "monitor.py")), "--merge"],
                          env={**os.environ, "SELFHEAL_OPT_ML": str(merge)}, capture_output=True, text=True,
                          timeout=120)
    # Then it writes the one-host report, and never imports pandas: its import was most of the merge's time
    assert done.returncode == 0, done.stderr
    report = json.loads((merge / "processing" / "output" / "report" / "drift_metrics.json").read_text())
    assert rounded(report) == rounded(single[2])
    loaded = done.stdout.strip().splitlines()[-1].split()
    assert loaded[0] == "loaded" and "json" in loaded and "pandas" not in loaded


@pytest.mark.process
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS is read from /proc")
def test_memory_stays_bounded_however_large_the_window(tmp_path):
    """Given windows of 60,000 and 600,000 rows (90 MB of CSV payload, ~3x that in capture files),
    when the job analyses each, then its peak memory is the same: the big one is never held whole."""
    rng = np.random.default_rng(19)
    wide = pd.DataFrame(rng.normal(size=(60_000, 20)).round(6), columns=[f"f{i}" for i in range(20)])
    wide_baseline = build_baseline(wide[:5000])
    small, big = opt_ml(tmp_path / "small", wide_baseline, []), opt_ml(tmp_path / "big", wide_baseline, [])
    capture = tmp_path / "capture.jsonl"
    capture.write_text("".join(line + "\n" for line in csv_lines(wide, rows_per_record=10)))
    for root, copies in ((small, 1), (big, 10)):
        folder = next((root / "processing" / "input" / "capture").rglob("05"))
        for copy in range(copies):
            os.link(capture, folder / f"part-{copy}.jsonl")  # the same records, hour after hour

    _, small_peak = run_script(small, "--workers", "1")
    output, big_peak = run_script(big, "--workers", "1")

    assert "analysed 600000 rows" in output
    assert big_peak - small_peak < 30 * 1024, (small_peak, big_peak)
