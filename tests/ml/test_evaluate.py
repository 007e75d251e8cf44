"""Evaluate: the challenger and the champion scored on the same held-out rows, in the model registry's form."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import quality_metrics
import xgboost as xgb
from features import FeatureTransform
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

ARN = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/churn/3"


def _evaluate(trained, sandbox, champion: Path | None, record: Any) -> dict[str, Any]:
    """Lay out Evaluate's inputs as the TrainingPipeline does, run it, return evaluation.json."""
    sandbox.write_json(sandbox.input("config", "config.json"), trained.config)
    for name, source in (("model", trained.tarball), ("test", trained.prep.output("test", "test.csv"))):
        sandbox.input(name).mkdir(parents=True)
        shutil.copy(source, sandbox.input(name, source.name))
    sandbox.write_json(sandbox.input("champion", "champion.json"), record)
    if champion:
        shutil.copy(champion, sandbox.input("champion", "model.tar.gz"))
    sandbox.process("evaluate.py")
    return json.loads(sandbox.output("evaluation", "evaluation.json").read_text())


def _by_hand(tarball_dir: Path, test: pd.DataFrame) -> tuple[FeatureTransform, np.ndarray, np.ndarray]:
    """What a user would do: load the saved model and score the test rows themselves."""
    booster = xgb.Booster()
    booster.load_model(bytearray((tarball_dir / "xgboost-model").read_bytes()))
    transform = FeatureTransform.load(tarball_dir / "transform.json")
    return transform, transform.encode_target(test[transform.target]), booster.inplace_predict(transform.apply(test))


def _binary_metrics(truth: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    predicted = (probability >= 0.5).astype(int)
    return {
        "auc": roc_auc_score(truth, probability),
        "accuracy": accuracy_score(truth, predicted),
        "f1": f1_score(truth, predicted),
        "logloss": log_loss(truth, probability),
    }


def _weak_champion(trained, folder: Path, pack) -> Path:
    """A champion trained on the same data with two stumps: scorable, and clearly worse."""
    train = pd.read_csv(trained.prep.output("train", "train.csv"), header=None).to_numpy()
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 1}, xgb.DMatrix(train[:, 1:], label=train[:, 0]), 2
    )
    folder.mkdir(parents=True)
    (folder / "xgboost-model").write_bytes(bytes(booster.save_raw(raw_format="json")))
    shutil.copy(trained.model_dir / "transform.json", folder / "transform.json")
    return pack(folder, folder.parent / "champion.tar.gz")


@pytest.fixture(scope="module")
def binary_evaluation(binary_model, tmp_path_factory, new_sandbox, pack) -> tuple[dict[str, Any], Path]:
    # Given a challenger and a weaker champion of the same run's data, with its model package ARN
    root = tmp_path_factory.mktemp("evaluate-binary")
    champion_dir = root / "champion-model"
    tarball = _weak_champion(binary_model, champion_dir, pack)
    record = {"model_package_arn": ARN, "run_id": "churn-upload-000000000000", "model_data_url": "s3://b/k"}
    # When Evaluate runs
    return _evaluate(binary_model, new_sandbox(root / "opt_ml"), tarball, record), champion_dir


def test_challenger_metrics_match_sklearn_on_the_test_rows(binary_model, binary_evaluation) -> None:
    evaluation, _ = binary_evaluation
    _, truth, probability = _by_hand(binary_model.model_dir, binary_model.test_rows)
    expected = _binary_metrics(truth, probability)
    registry = evaluation["binary_classification_metrics"]
    assert set(registry) == {"auc", "accuracy", "f1", "logloss"}
    for name, value in expected.items():
        assert registry[name] == {"value": pytest.approx(value, rel=1e-9), "standard_deviation": "NaN"}
        assert evaluation["selfheal"]["challenger"][name] == pytest.approx(value, rel=1e-9)
    assert registry["auc"]["value"] > 0.85


def test_champion_is_scored_on_the_same_rows_through_its_own_model(binary_model, binary_evaluation) -> None:
    evaluation, champion_dir = binary_evaluation
    _, truth, probability = _by_hand(champion_dir, binary_model.test_rows)
    selfheal = evaluation["selfheal"]
    assert selfheal["champion"] == pytest.approx(_binary_metrics(truth, probability), rel=1e-9)
    assert selfheal["champion_model_package_arn"] == ARN
    assert selfheal["champion_error"] is None
    assert selfheal["challenger"]["auc"] > selfheal["champion"]["auc"]


def test_the_run_is_described_for_the_gate(binary_model, binary_evaluation) -> None:
    selfheal = binary_evaluation[0]["selfheal"]
    test_file = binary_model.prep.output("test", "test.csv")
    assert selfheal["problem"] == "binary"
    assert (selfheal["metric"], selfheal["greater_is_better"]) == ("auc", True)
    assert selfheal["test_rows"] == len(binary_model.test_rows)
    assert selfheal["test_sha256"] == hashlib.sha256(test_file.read_bytes()).hexdigest()
    # Each class's rows in the training split and in the test rows, for the gate's small-data warnings
    labels = json.loads(binary_model.prep.output("transform", "transform.json").read_text())["labels"]
    train = pd.read_csv(binary_model.prep.output("train", "train.csv"), header=None)[0].map(dict(enumerate(labels)))
    test = binary_model.test_rows["churned"]
    assert selfheal["class_rows"] == {
        str(label): {"train": int((train == label).sum()), "test": int((test == label).sum())} for label in labels}
    assert all(counts["train"] and counts["test"] for counts in selfheal["class_rows"].values())


def test_the_quality_monitor_gets_the_models_classes_features_and_score_calibration(binary_model,
                                                                                   binary_evaluation) -> None:
    _, champion_dir = binary_evaluation
    output = champion_dir.parent / "opt_ml" / "processing" / "output" / "evaluation"
    baseline = json.loads((output / "quality_baseline.json").read_text())
    transform, truth, probability = _by_hand(binary_model.model_dir, binary_model.test_rows)
    assert (baseline["problem"], baseline["target"]) == ("binary", transform.target)
    assert baseline["features"] == transform.feature_names
    assert baseline["labels"] == [str(label) for label in transform.labels]
    # Calibrated on these very rows, the scores' mean is the rows' positive rate
    calibrated = quality_metrics.calibrate(baseline["calibration"], probability)
    assert calibrated.mean() == pytest.approx(truth.mean(), abs=0.01)


def test_multiclass_metrics_and_a_champion_that_cannot_score_the_rows(
    multiclass_model, sandbox, tmp_path, pack
) -> None:
    # Given a champion whose transform needs a column the new test rows lack
    champion_dir = tmp_path / "champion"
    shutil.copytree(multiclass_model.model_dir, champion_dir)
    spec = json.loads((champion_dir / "transform.json").read_text())
    spec["features"].append({"name": "loyalty_years", "kind": "numeric", "median": 2.0})
    (champion_dir / "transform.json").write_text(json.dumps(spec))
    champion = pack(champion_dir, tmp_path / "champion.tar.gz")
    # When Evaluate runs
    evaluation = _evaluate(multiclass_model, sandbox, champion, {"model_package_arn": ARN})
    # Then the job succeeds: the champion has no metrics and the reason names the column
    selfheal = evaluation["selfheal"]
    assert selfheal["champion"] is None
    assert "loyalty_years" in selfheal["champion_error"]
    # And the challenger's metrics are sklearn's (macro F1, one-vs-rest macro AUC)
    _, truth, probabilities = _by_hand(multiclass_model.model_dir, multiclass_model.test_rows)
    predicted = probabilities.argmax(axis=1)
    expected = {
        "accuracy": accuracy_score(truth, predicted),
        "f1": f1_score(truth, predicted, average="macro"),
        "logloss": log_loss(truth, probabilities),
        "auc": roc_auc_score(truth, probabilities, multi_class="ovr", average="macro"),
    }
    assert selfheal["challenger"] == pytest.approx(expected, rel=1e-9)
    assert {name: item["value"] for name, item in evaluation["multiclass_classification_metrics"].items()} == (
        pytest.approx(expected, rel=1e-9)
    )
    assert (selfheal["metric"], selfheal["greater_is_better"]) == ("accuracy", True)


def test_regression_metrics_without_a_champion(regression_model, sandbox) -> None:
    # Given no model serves yet (champion.json is null, no model.tar.gz)
    evaluation = _evaluate(regression_model, sandbox, None, None)
    selfheal = evaluation["selfheal"]
    assert (selfheal["champion"], selfheal["champion_model_package_arn"], selfheal["champion_error"]) == (
        None,
        None,
        None,
    )
    _, truth, predictions = _by_hand(regression_model.model_dir, regression_model.test_rows)
    expected = {
        "rmse": math.sqrt(mean_squared_error(truth, predictions)),
        "mae": mean_absolute_error(truth, predictions),
        "r2": r2_score(truth, predictions),
    }
    assert selfheal["challenger"] == pytest.approx(expected, rel=1e-9)
    assert {name: item["value"] for name, item in evaluation["regression_metrics"].items()} == pytest.approx(
        expected, rel=1e-9
    )
    # rmse: lower is better
    assert (selfheal["metric"], selfheal["greater_is_better"]) == ("rmse", False)
