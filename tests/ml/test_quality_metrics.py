"""Model-quality metrics: realized ones agree with scikit-learn, shards merge to the same numbers, CBPE
estimates what labels later confirm while the concept holds, and the documents are Model Monitor's."""

from __future__ import annotations

import numpy as np
import pytest
import quality_metrics as qm
from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_score, recall_score, roc_auc_score


def binary_sample(rows: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated scores (P(y=1) is the score) of a logistic model, and labels drawn from them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, rows)
    scores = 1 / (1 + np.exp(-2 * x))
    return scores, (rng.random(rows) < scores).astype(np.int64)


def multiclass_sample(rows: int, seed: int, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (rows, classes))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = np.array([rng.choice(classes, p=p) for p in probabilities])
    return probabilities, truth


def test_binary_realized_metrics_agree_with_scikit_learn():
    scores, truth = binary_sample(5000, seed=1)
    quality = qm.BinaryQuality()
    quality.update(scores, truth)
    metrics = quality.metrics()
    predicted = (scores >= 0.5).astype(int)
    assert metrics["auc"] == pytest.approx(roc_auc_score(truth, scores), abs=2e-4)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert metrics["f1"] == pytest.approx(f1_score(truth, predicted))
    assert metrics["precision"] == pytest.approx(precision_score(truth, predicted))
    assert metrics["recall"] == pytest.approx(recall_score(truth, predicted))
    assert metrics["logloss"] == pytest.approx(log_loss(truth, scores))


def test_multiclass_realized_metrics_agree_with_scikit_learn():
    probabilities, truth = multiclass_sample(3000, seed=2)
    quality = qm.MulticlassQuality(3)
    quality.update(probabilities.argmax(axis=1), truth, probabilities)
    metrics = quality.metrics()
    assert metrics["accuracy"] == pytest.approx(accuracy_score(truth, probabilities.argmax(axis=1)))
    assert metrics["f1"] == pytest.approx(f1_score(truth, probabilities.argmax(axis=1), average="macro"))
    assert metrics["logloss"] == pytest.approx(log_loss(truth, probabilities))
    assert metrics["auc"] == pytest.approx(roc_auc_score(truth, probabilities, multi_class="ovr"), abs=3e-3)


def test_multiclass_predictions_without_probabilities_give_the_confusion_metrics_only():
    probabilities, truth = multiclass_sample(500, seed=3)
    quality = qm.MulticlassQuality(3)
    quality.update(probabilities.argmax(axis=1), truth)
    assert set(quality.metrics()) == {"accuracy", "f1"}


def test_regression_realized_metrics_agree_with_their_definitions():
    rng = np.random.default_rng(4)
    truth = rng.normal(100, 20, 2000)
    predicted = truth + rng.normal(0, 5, 2000)
    quality = qm.RegressionQuality()
    quality.update(predicted, truth)
    metrics = quality.metrics()
    assert metrics["mae"] == pytest.approx(np.abs(predicted - truth).mean())
    assert metrics["rmse"] == pytest.approx(np.sqrt(((predicted - truth) ** 2).mean()))
    ss_res, ss_tot = ((predicted - truth) ** 2).sum(), ((truth - truth.mean()) ** 2).sum()
    assert metrics["r2"] == pytest.approx(1 - ss_res / ss_tot)


@pytest.mark.parametrize("problem", ["binary", "multiclass", "regression"])
def test_shards_merge_to_the_metrics_of_the_whole(problem):
    if problem == "binary":
        scores, truth = binary_sample(4000, seed=5)
        parts = [((scores[i::3], truth[i::3]), {}) for i in range(3)]
        whole_args = (scores, truth)
    elif problem == "multiclass":
        probabilities, truth = multiclass_sample(3000, seed=5)
        parts = [((probabilities[i::3].argmax(axis=1), truth[i::3], probabilities[i::3]), {}) for i in range(3)]
        whole_args = (probabilities.argmax(axis=1), truth, probabilities)
    else:
        rng = np.random.default_rng(5)
        truth = rng.normal(0, 1, 3000)
        predicted = truth + rng.normal(0, 0.3, 3000)
        parts = [((predicted[i::3], truth[i::3]), {}) for i in range(3)]
        whole_args = (predicted, truth)
    whole = qm.realized_accumulator(problem, 3)
    whole.update(*whole_args)
    merged = qm.realized_accumulator(problem, 3)
    for args, _ in parts:
        shard = qm.realized_accumulator(problem, 3)
        shard.update(*args)
        merged.merge(shard)
    assert merged.metrics() == pytest.approx(whole.metrics())


def test_cbpe_estimates_what_the_labels_later_show_under_covariate_shift():
    # Given calibrated scores on shifted inputs (the concept unchanged)
    scores, truth = binary_sample(20000, seed=6, shift=0.7)
    identity = {"method": "none", "maps": []}
    # When the metrics are estimated from the scores alone
    estimate = qm.BinaryEstimate(identity)
    estimate.update(scores)
    realized = qm.BinaryQuality()
    realized.update(scores, truth)
    # Then they are what the labels show, within sampling noise
    for name in ("auc", "accuracy", "f1", "precision", "recall"):
        assert estimate.metrics()[name] == pytest.approx(realized.metrics()[name], abs=0.015), name


def test_cbpe_cannot_see_concept_shift_which_only_labels_reveal():
    scores, truth = binary_sample(20000, seed=7)
    flipped = 1 - truth  # the world now answers the opposite: the scores cannot know
    estimate = qm.BinaryEstimate({"method": "none", "maps": []})
    estimate.update(scores)
    realized = qm.BinaryQuality()
    realized.update(scores, flipped)
    assert estimate.metrics()["auc"] > 0.8
    assert realized.metrics()["auc"] < 0.2


def test_multiclass_cbpe_estimates_accuracy_of_calibrated_probabilities():
    probabilities, truth = multiclass_sample(20000, seed=8)
    estimate = qm.MulticlassEstimate({"method": "none", "maps": []}, 3)
    estimate.update(probabilities)
    assert estimate.metrics()["accuracy"] == pytest.approx(accuracy_score(truth, probabilities.argmax(axis=1)),
                                                           abs=0.015)


def test_calibration_fitted_on_held_out_rows_corrects_overconfident_scores():
    # Given a model whose scores are overconfident: the true P(y=1) is closer to one half
    rng = np.random.default_rng(9)
    raw = rng.random(20000)
    truth = (rng.random(20000) < 0.25 + 0.5 * raw).astype(np.int64)
    calibration = qm.fit_calibration("binary", raw[:10000], truth[:10000])
    # When the estimate uses the calibration, it matches the labels; without it, it is off
    for maps, close in ((calibration, True), ({"method": "none", "maps": []}, False)):
        estimate = qm.BinaryEstimate(maps)
        estimate.update(raw[10000:])
        realized = qm.BinaryQuality()
        realized.update(raw[10000:], truth[10000:])
        gap = abs(estimate.metrics()["accuracy"] - realized.metrics()["accuracy"])
        assert (gap < 0.015) == close, gap


def test_calibration_is_plain_json_and_multiclass_rows_still_sum_to_one():
    probabilities, truth = multiclass_sample(3000, seed=10)
    calibration = qm.fit_calibration("multiclass", probabilities, truth)
    assert all(isinstance(v, float) for m in calibration["maps"] for v in m["x"] + m["y"])
    assert np.allclose(qm.calibrate(calibration, probabilities).sum(axis=1), 1.0)


def test_regression_is_not_estimated_and_says_so():
    assert qm.estimate_accumulator("regression", {}, 0) is None
    assert "not estimated" in qm.ESTIMATION_NOTE["regression"]


def test_documents_are_model_monitors_model_quality_formats():
    scores, truth = binary_sample(1000, seed=11)
    quality = qm.BinaryQuality()
    quality.update(scores, truth)
    statistics = qm.statistics_document("binary", quality, "2026-12-06T00:00:00Z")
    section = statistics["binary_classification_metrics"]
    assert statistics["dataset"]["item_count"] == 1000
    assert set(section["confusion_matrix"]) == {"0", "1"}
    assert isinstance(section["auc"]["standard_deviation"], float)
    assert section["f1"]["standard_deviation"] == "NaN"

    held = qm.constraints_document("binary", "auc", 0.5)
    assert held == {"version": 0.0, "binary_classification_constraints": {
        "auc": {"threshold": 0.5, "comparison_operator": "LessThanThreshold"}}}
    assert qm.violations_document("binary", held, statistics) == {"violations": []}
    broken = qm.violations_document("binary", qm.constraints_document("binary", "auc", 0.99), statistics)
    (violation,) = broken["violations"]
    assert violation["metric_name"] == "auc" and violation["constraint_check_type"] == "LessThanThreshold"
    assert violation["description"].startswith("Metric auc with ")


def test_a_lower_is_better_metric_is_violated_above_its_threshold():
    rng = np.random.default_rng(12)
    truth = rng.normal(0, 1, 500)
    quality = qm.RegressionQuality()
    quality.update(truth + rng.normal(0, 2, 500), truth)
    statistics = qm.statistics_document("regression", quality, "2026-12-06T00:00:00Z")
    constraints = qm.constraints_document("regression", "rmse", 1.0)
    assert constraints["regression_constraints"]["rmse"]["comparison_operator"] == "GreaterThanThreshold"
    (violation,) = qm.violations_document("regression", constraints, statistics)["violations"]
    assert violation["metric_name"] == "rmse"


def test_the_job_scripts_and_the_gate_agree_which_metrics_are_lower_is_better():
    # The job scripts ship without the Lambda layer, so each keeps its own set: for every metric a model's
    # configuration may name, they agree
    from selfheal_shared.config import CLASSIFICATION_METRICS, LOWER_IS_BETTER, REGRESSION_METRICS

    assert qm.LOWER_IS_BETTER & (CLASSIFICATION_METRICS | REGRESSION_METRICS) == LOWER_IS_BETTER
