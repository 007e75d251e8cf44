"""EvaluateGateFunction: passes only on the threshold and, with a champion, on the improvement."""

import pytest
from pydantic import ValidationError
from selfheal_bench.fixtures.aws import BUCKET, event_files, load_event
from selfheal_shared import ledger
from selfheal_shared.errors import EvaluationNotFound, InvalidEvaluation


def evaluation(challenger: dict, champion: dict | None = None) -> dict:
    """evaluation.json as ml/evaluate.py writes it."""
    return {
        "binary_classification_metrics": {name: {"value": value, "standard_deviation": "NaN"}
                                          for name, value in challenger.items()},
        "selfheal": {"problem": "binary", "metric": "auc", "greater_is_better": True, "test_rows": 500,
                     "test_sha256": "ab" * 32, "challenger": challenger, "champion": champion,
                     "champion_model_package_arn": None if champion is None else
                     "arn:aws:sagemaker:us-east-1:123456789012:model-package/selfheal-churn/1"},
    }


# What each sample event's evaluation.json holds, and what the gate must answer.
CASES = {
    "pass.json": (evaluation({"auc": 0.91, "accuracy": 0.86, "f1": 0.8, "logloss": 0.3}), True,
                  ["auc 0.91 meets the threshold 0.75", "no champion"]),
    "fail_threshold.json": (evaluation({"auc": 0.62, "accuracy": 0.7, "f1": 0.4, "logloss": 0.6}), False,
                            ["auc 0.62 does not meet the threshold 0.75"]),
    "fail_champion.json": (evaluation({"auc": 0.885, "logloss": 0.3}, champion={"auc": 0.88, "logloss": 0.31}),
                           False, ["meets the threshold", "does not beat the champion's 0.88 by min_improvement 0.01"]),
    "missing_metric.json": (evaluation({"accuracy": 0.86, "f1": 0.8}), False,
                            ["auc is missing or not a finite number"]),
}


@pytest.fixture
def gate(load_handler, cloud, lambda_context):
    handler = load_handler("evaluate_gate").lambda_handler
    return lambda event: handler(event, lambda_context)


def given_evaluation(cloud, event: dict, document: dict) -> None:
    cloud.put_json(event["evaluation_uri"].removeprefix(f"s3://{BUCKET}/"), document)
    ledger.put_run(event["model"], event["run_id"], status="RUNNING")


def test_every_sample_event_has_a_case():
    assert set(event_files("evaluate_gate")) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_sample_event(cloud, gate, name):
    document, passed, reason_fragments = CASES[name]
    event = load_event("evaluate_gate", name)
    given_evaluation(cloud, event, document)

    result = gate(event)

    assert result["passed"] is passed
    assert result["reasons"]
    for fragment in reason_fragments:
        assert any(fragment in reason for reason in result["reasons"]), (fragment, result["reasons"])
    assert result["metrics"] == document["selfheal"]["challenger"]
    assert result["champion_metrics"] == document["selfheal"]["champion"]
    run = ledger.get_run(event["model"], event["run_id"])
    assert run["gate"] == {"passed": passed, "reasons": result["reasons"]}
    assert run["metrics"] == result["metrics"]


@pytest.mark.parametrize(("metric", "challenger", "champion", "passed"), [
    ({"name": "logloss", "threshold": 0.4}, {"logloss": 0.35}, None, True),
    ({"name": "logloss", "threshold": 0.4}, {"logloss": 0.45}, None, False),
    ({"name": "logloss", "threshold": 0.4, "min_improvement": 0.02}, {"logloss": 0.30}, {"logloss": 0.33}, True),
    ({"name": "logloss", "threshold": 0.4, "min_improvement": 0.02}, {"logloss": 0.32}, {"logloss": 0.33}, False),
    ({"name": "auc", "threshold": 0.7, "min_improvement": 0.03}, {"auc": 0.91}, {"auc": 0.88}, True),
    ({"name": "auc", "threshold": 0.7}, {"auc": 0.88}, {"auc": 0.88}, False),  # a tie keeps the champion
    ({"name": "auc", "threshold": 0.7}, {"auc": 0.8801}, {"auc": 0.88}, True),
    ({"name": "logloss", "threshold": 0.4}, {"logloss": 0.33}, {"logloss": 0.33}, False),
    ({"name": "auc", "threshold": 0.7}, {"auc": 0.87}, {"auc": 0.88}, False),
    ({"name": "auc", "threshold": 0.7}, {"auc": 0.9}, {"auc": None}, False),
    ({"name": "auc", "threshold": 0.7}, {"auc": "NaN"}, None, False),
    ({"name": "auc", "threshold": 0.7}, {"auc": True}, None, False),
])
def test_the_gate_is_direction_aware_and_compares_with_the_champion(cloud, gate, metric, challenger, champion,
                                                                     passed):
    event = load_event("evaluate_gate", "pass.json") | {"metric": metric}
    given_evaluation(cloud, event, evaluation(challenger, champion))

    result = gate(event)

    assert result["passed"] is passed, result["reasons"]
    assert result["reasons"]


def test_a_retrain_that_only_ties_the_champion_is_not_rolled_out_and_says_so(cloud, gate):
    # Given a retrain on unchanged data: the same AUC as the champion, to the last digit
    event = load_event("evaluate_gate", "pass.json") | {"metric": {"name": "auc", "threshold": 0.75}}
    given_evaluation(cloud, event, evaluation({"auc": 0.773331}, {"auc": 0.773331}))
    # Then the gate rejects it: nothing would be gained by a rollout
    result = gate(event)
    assert result["passed"] is False
    assert any("no better than the champion's 0.773331" in reason for reason in result["reasons"])


def test_non_finite_metrics_come_back_as_null_not_nan(cloud, gate):
    event = load_event("evaluate_gate", "pass.json")
    document = evaluation({"auc": 0.9})
    document["selfheal"]["challenger"]["logloss"] = float("nan")
    cloud.put_json(event["evaluation_uri"].removeprefix(f"s3://{BUCKET}/"), document)

    result = gate(event)

    assert result["passed"] and result["metrics"] == {"auc": 0.9, "logloss": None}


def test_an_evaluation_without_the_selfheal_section_fails_with_a_reason(cloud, gate):
    event = load_event("evaluate_gate", "pass.json")
    cloud.put_json(event["evaluation_uri"].removeprefix(f"s3://{BUCKET}/"), {"regression_metrics": {}})

    result = gate(event)

    assert result == {"passed": False, "reasons": ["evaluation.json has no selfheal.challenger metrics"],
                      "metrics": {}, "champion_metrics": None}


def test_a_missing_evaluation_raises_evaluation_not_found(cloud, gate):
    with pytest.raises(EvaluationNotFound):
        gate(load_event("evaluate_gate", "pass.json"))


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"\xff\xfe"])
def test_an_unreadable_evaluation_raises_invalid_evaluation(cloud, gate, body):
    event = load_event("evaluate_gate", "pass.json")
    cloud.s3.put_object(Bucket=BUCKET, Key=event["evaluation_uri"].removeprefix(f"s3://{BUCKET}/"), Body=body)

    with pytest.raises(InvalidEvaluation):
        gate(event)


def test_a_payload_off_the_contract_is_refused(cloud, gate):
    with pytest.raises(ValidationError, match="metric.name"):
        gate(load_event("evaluate_gate", "pass.json") | {"metric": {"name": "precision", "threshold": 0.5}})


def test_small_data_is_warned_about_in_the_reasons_without_changing_the_decision(cloud, gate):
    # Given an iris-sized run: 23 test rows, a class seen once (trained on, not in the test rows), and a
    # class the training split lacks
    event = load_event("evaluate_gate", "pass.json") | {"metric": {"name": "accuracy", "threshold": 0.8}}
    document = evaluation({"accuracy": 0.87})
    document["selfheal"] |= {"problem": "multiclass", "metric": "accuracy", "test_rows": 23, "class_rows": {
        "setosa": {"train": 35, "test": 8}, "seen-once": {"train": 1, "test": 0}, "late": {"train": 0, "test": 2}}}
    given_evaluation(cloud, event, document)

    result = gate(event)

    # Then the gate decides as before, and says why its numbers deserve less trust
    assert result["passed"] is True
    assert result["reasons"] == [
        "accuracy 0.87 meets the threshold 0.8 (greater is better)",
        "no champion to compare with",
        "warning: only 23 test rows: one row moves accuracy by 0.0435, so these metrics are noisy "
        "(more data, or a larger split.test, steadies them)",
        "warning: class 'seen-once' has no test rows: the metrics say nothing about it",
        "warning: class 'late' has no training rows: the model cannot predict it",
    ]


def test_enough_rows_of_every_class_give_no_warning(cloud, gate):
    event = load_event("evaluate_gate", "pass.json")
    document = evaluation({"auc": 0.91})
    document["selfheal"]["class_rows"] = {"0": {"train": 700, "test": 150}, "1": {"train": 300, "test": 60}}
    given_evaluation(cloud, event, document)

    assert not [reason for reason in gate(event)["reasons"] if reason.startswith("warning")]
