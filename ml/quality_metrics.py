"""Model quality: realized metrics from labelled predictions, and metrics estimated before labels arrive.

Every accumulator here is streaming and mergeable (shards of a window merge into the same numbers), with
memory fixed by the number of score bins, never by the number of rows:
* realized metrics: binary and multiclass classifiers keep label counts per score bin (AUC, accuracy,
  precision, recall, F1) and a log-loss sum; regression keeps sums of errors and targets (MAE, MSE, RMSE, R2);
* estimated metrics: confidence-based performance estimation (CBPE, as NannyML does): with calibrated
  probabilities, a prediction of class k is right with probability p_k, so the expected confusion matrix,
  and from it every metric, follows from the scores alone. It holds while the relationship between
  features and target holds (covariate shift); it cannot see concept shift, which only labels reveal.
  A regression model's point predictions carry no estimate of their own error: nothing is estimated.
Calibration (isotonic, one map per class) is fitted at training time on the held-out test rows.

Runs in SageMaker's framework containers: numpy, scikit-learn and the standard library, Python 3.9+.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

PROBLEMS = ("binary", "multiclass", "regression")
BINS = 1 << 14  # score bins: 0.5 is a bin edge, and AUC is exact up to ties within 1/16384
MULTICLASS_BINS = 1 << 10
LOWER_IS_BETTER = frozenset({"logloss", "rmse", "mae", "mse"})
MIN_STD_ROWS = 200  # Model Monitor gives a standard deviation only from 200 rows on
_EPS = 1e-15  # log loss clips probabilities as scikit-learn does


def _bin(scores: np.ndarray, bins: int) -> np.ndarray:
    return np.clip((np.asarray(scores, dtype=np.float64) * bins).astype(np.int64), 0, bins - 1)


def _auc_from_bins(positive: np.ndarray, negative: np.ndarray) -> float | None:
    """Area under the ROC curve from counts per score bin; pairs within a bin count as ties (half)."""
    total_p, total_n = float(positive.sum()), float(negative.sum())
    if total_p <= 0 or total_n <= 0:
        return None
    negatives_below = np.cumsum(negative) - negative
    wins = float((positive * negatives_below).sum()) + 0.5 * float((positive * negative).sum())
    return wins / (total_p * total_n)


def _counts_metrics(tp: float, fp: float, fn: float, tn: float) -> dict[str, float | None]:
    n = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp > 0 else None
    recall = tp / (tp + fn) if tp + fn > 0 else None
    return {
        "accuracy": (tp + tn) / n if n else None,
        "precision": precision,
        "recall": recall,
        "f1": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn > 0 else 0.0,
    }


def _auc_std(auc: float | None, positives: float, negatives: float) -> float | None:
    """Hanley and McNeil's standard error of the AUC."""
    if auc is None or positives + negatives < MIN_STD_ROWS:
        return None
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc))
    return math.sqrt(max(variance, 0.0) / (positives * negatives))


def _proportion_std(value: float | None, n: float) -> float | None:
    return math.sqrt(value * (1 - value) / n) if value is not None and n >= MIN_STD_ROWS else None


class BinaryQuality:
    """Realized binary metrics: positives and negatives per score bin (the score is P(positive))."""

    def __init__(self) -> None:
        self.positive = np.zeros(BINS, dtype=np.int64)
        self.negative = np.zeros(BINS, dtype=np.int64)
        self.log_loss_sum = 0.0

    def update(self, scores: np.ndarray, truth: np.ndarray) -> None:
        scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=np.int64)
        bins = _bin(scores, BINS)
        self.positive += np.bincount(bins[truth == 1], minlength=BINS)
        self.negative += np.bincount(bins[truth == 0], minlength=BINS)
        clipped = np.clip(scores, _EPS, 1 - _EPS)
        self.log_loss_sum -= float(np.where(truth == 1, np.log(clipped), np.log1p(-clipped)).sum())

    def merge(self, other: BinaryQuality) -> None:
        self.positive += other.positive
        self.negative += other.negative
        self.log_loss_sum += other.log_loss_sum

    @property
    def rows(self) -> int:
        return int(self.positive.sum() + self.negative.sum())

    def metrics(self) -> dict[str, float | None]:
        half = BINS // 2
        tp, fn = float(self.positive[half:].sum()), float(self.positive[:half].sum())
        fp, tn = float(self.negative[half:].sum()), float(self.negative[:half].sum())
        rows = self.rows
        return {
            "auc": _auc_from_bins(self.positive, self.negative),
            **_counts_metrics(tp, fp, fn, tn),
            "logloss": self.log_loss_sum / rows if rows else None,
        }

    def standard_deviations(self, metrics: dict[str, float | None]) -> dict[str, float | None]:
        rows = self.rows
        return {"auc": _auc_std(metrics["auc"], float(self.positive.sum()), float(self.negative.sum())),
                "accuracy": _proportion_std(metrics["accuracy"], rows)}

    def confusion_matrix(self) -> dict[str, dict[str, int]]:
        """Model Monitor's layout: {actual: {predicted: count}}."""
        half = BINS // 2
        return {"0": {"0": int(self.negative[:half].sum()), "1": int(self.negative[half:].sum())},
                "1": {"0": int(self.positive[:half].sum()), "1": int(self.positive[half:].sum())}}


class MulticlassQuality:
    """Realized multiclass metrics: the confusion matrix, and when probabilities are known, one-vs-rest
    score bins per class (AUC) and a log-loss sum. Predictions without probabilities (labels only)
    give the confusion-matrix metrics alone."""

    def __init__(self, classes: int) -> None:
        self.classes = classes
        self.confusion = np.zeros((classes, classes), dtype=np.int64)  # [actual, predicted]
        self.positive = np.zeros((classes, MULTICLASS_BINS), dtype=np.int64)
        self.negative = np.zeros((classes, MULTICLASS_BINS), dtype=np.int64)
        self.log_loss_sum = 0.0
        self.scored = 0  # rows that came with probabilities

    def update(self, predicted: np.ndarray, truth: np.ndarray, probabilities: np.ndarray | None = None) -> None:
        predicted, truth = np.asarray(predicted, dtype=np.int64), np.asarray(truth, dtype=np.int64)
        np.add.at(self.confusion, (truth, predicted), 1)
        if probabilities is None:
            return
        probabilities = np.asarray(probabilities, dtype=np.float64)
        for k in range(self.classes):
            bins = _bin(probabilities[:, k], MULTICLASS_BINS)
            self.positive[k] += np.bincount(bins[truth == k], minlength=MULTICLASS_BINS)
            self.negative[k] += np.bincount(bins[truth != k], minlength=MULTICLASS_BINS)
        chosen = np.clip(probabilities[np.arange(len(truth)), truth], _EPS, 1.0)
        self.log_loss_sum -= float(np.log(chosen).sum())
        self.scored += len(truth)

    def merge(self, other: MulticlassQuality) -> None:
        self.confusion += other.confusion
        self.positive += other.positive
        self.negative += other.negative
        self.log_loss_sum += other.log_loss_sum
        self.scored += other.scored

    @property
    def rows(self) -> int:
        return int(self.confusion.sum())

    def metrics(self) -> dict[str, float | None]:
        rows = self.rows
        result = {"accuracy": float(np.trace(self.confusion)) / rows if rows else None,
                  "f1": _macro_f1(self.confusion.astype(np.float64)) if rows else None}
        if self.scored and self.scored == rows:
            aucs = [_auc_from_bins(self.positive[k], self.negative[k]) for k in range(self.classes)]
            result["auc"] = float(np.mean(aucs)) if all(a is not None for a in aucs) else None
            result["logloss"] = self.log_loss_sum / rows
        return result

    def standard_deviations(self, metrics: dict[str, float | None]) -> dict[str, float | None]:
        return {"accuracy": _proportion_std(metrics["accuracy"], self.rows)}

    def confusion_matrix(self) -> dict[str, dict[str, int]]:
        return {str(a): {str(p): int(self.confusion[a, p]) for p in range(self.classes)} for a in range(self.classes)}


def _macro_f1(confusion: np.ndarray) -> float:
    """Macro F1 over the classes, as scikit-learn's f1_score(average="macro") with zero_division=0."""
    tp = np.diag(confusion)
    fp, fn = confusion.sum(axis=0) - tp, confusion.sum(axis=1) - tp
    denominator = 2 * tp + fp + fn
    present = (confusion.sum(axis=0) + confusion.sum(axis=1)) > 0
    per_class = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return float(per_class[present].mean()) if present.any() else 0.0


class RegressionQuality:
    """Realized regression metrics from running sums (exact, mergeable)."""

    def __init__(self) -> None:
        self.n = 0
        self.abs_error = 0.0
        self.sq_error = 0.0
        self.y_sum = 0.0
        self.y_sq = 0.0

    def update(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        predicted, truth = np.asarray(predicted, dtype=np.float64), np.asarray(truth, dtype=np.float64)
        error = predicted - truth
        self.n += len(truth)
        self.abs_error += float(np.abs(error).sum())
        self.sq_error += float((error * error).sum())
        self.y_sum += float(truth.sum())
        self.y_sq += float((truth * truth).sum())

    def merge(self, other: RegressionQuality) -> None:
        for name in ("n", "abs_error", "sq_error", "y_sum", "y_sq"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def rows(self) -> int:
        return self.n

    def metrics(self) -> dict[str, float | None]:
        if not self.n:
            return {"mae": None, "mse": None, "rmse": None, "r2": None}
        mse = self.sq_error / self.n
        total = self.y_sq - self.y_sum * self.y_sum / self.n
        return {"mae": self.abs_error / self.n, "mse": mse, "rmse": math.sqrt(mse),
                "r2": 1 - self.sq_error / total if self.n > 1 and total > 0 else None}

    def standard_deviations(self, metrics: dict[str, float | None]) -> dict[str, float | None]:
        return {}

    def confusion_matrix(self) -> None:
        return None


# ------------------------------------------------------------------------------------------ calibration


def fit_calibration(problem: str, scores: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Isotonic maps from the model's scores to observed frequencies, one per class (binary: the
    positive class), fitted on held-out rows; stored as breakpoints so the monitor needs no scikit-learn."""
    if problem == "regression":
        return {"method": "none", "maps": []}
    from sklearn.isotonic import IsotonicRegression

    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=np.int64)
    columns = [scores] if problem == "binary" else [scores[:, k] for k in range(scores.shape[1])]
    targets = [truth == 1] if problem == "binary" else [truth == k for k in range(scores.shape[1])]
    maps = []
    for index, column in enumerate(columns):
        target = targets[index]
        if target.all() or not target.any():  # one class only: nothing to learn, keep the scores
            maps.append({"x": [0.0, 1.0], "y": [0.0, 1.0]})
            continue
        isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(column, target)
        maps.append({"x": [float(v) for v in isotonic.X_thresholds_], "y": [float(v) for v in isotonic.y_thresholds_]})
    return {"method": "isotonic", "maps": maps, "rows": int(len(truth))}


def calibrate(calibration: dict[str, Any], scores: np.ndarray) -> np.ndarray:
    """Calibrated probabilities: binary P(positive), or multiclass rows renormalised to sum to 1."""
    maps = calibration.get("maps") or []
    scores = np.asarray(scores, dtype=np.float64)
    if not maps:
        return scores
    if scores.ndim == 1:
        return np.interp(scores, maps[0]["x"], maps[0]["y"])
    mapped = np.column_stack([np.interp(scores[:, k], m["x"], m["y"]) for k, m in enumerate(maps)])
    totals = mapped.sum(axis=1, keepdims=True)
    return np.divide(mapped, totals, out=np.full_like(mapped, 1.0 / mapped.shape[1]), where=totals > 0)


# ------------------------------------------------------------------------------------------- estimation


class BinaryEstimate:
    """CBPE for a binary classifier: rows per raw-score bin. The model decides by its raw score (>= 0.5);
    the calibration, applied at each bin's centre, says how often such a decision is right (a bin is
    1/16384 wide: the centre stands for every score in it to well below sampling noise)."""

    def __init__(self, calibration: dict[str, Any]) -> None:
        self.calibration = calibration
        self.count = np.zeros(BINS, dtype=np.int64)

    def update(self, scores: np.ndarray) -> None:
        self.count += np.bincount(_bin(scores, BINS), minlength=BINS)

    def merge(self, other: BinaryEstimate) -> None:
        self.count += other.count

    @property
    def rows(self) -> int:
        return int(self.count.sum())

    def metrics(self) -> dict[str, float | None]:
        if not self.rows:
            return {}
        centres = (np.arange(BINS) + 0.5) / BINS
        positive = self.count * calibrate(self.calibration, centres)
        negative = self.count - positive
        half = BINS // 2
        tp, fn = float(positive[half:].sum()), float(positive[:half].sum())
        fp, tn = float(negative[half:].sum()), float(negative[:half].sum())
        return {"auc": _auc_from_bins(positive, negative), **_counts_metrics(tp, fp, fn, tn)}


class MulticlassEstimate:
    """CBPE for a multiclass classifier: the expected confusion matrix (rows: actual, columns: predicted),
    and per class the expected one-vs-rest score bins (AUC)."""

    def __init__(self, calibration: dict[str, Any], classes: int) -> None:
        self.calibration = calibration
        self.classes = classes
        self.confusion = np.zeros((classes, classes), dtype=np.float64)
        self.count = np.zeros((classes, MULTICLASS_BINS), dtype=np.int64)
        self.expected_positive = np.zeros((classes, MULTICLASS_BINS), dtype=np.float64)

    def update(self, probabilities: np.ndarray) -> None:
        probabilities = np.asarray(probabilities, dtype=np.float64)
        predicted = probabilities.argmax(axis=1)
        calibrated = calibrate(self.calibration, probabilities)
        for k in range(self.classes):
            self.confusion[:, k] += calibrated[predicted == k].sum(axis=0)
            bins = _bin(probabilities[:, k], MULTICLASS_BINS)
            self.count[k] += np.bincount(bins, minlength=MULTICLASS_BINS)
            self.expected_positive[k] += np.bincount(bins, weights=calibrated[:, k], minlength=MULTICLASS_BINS)

    def merge(self, other: MulticlassEstimate) -> None:
        self.confusion += other.confusion
        self.count += other.count
        self.expected_positive += other.expected_positive

    @property
    def rows(self) -> int:
        return int(self.count[0].sum()) if self.classes else 0

    def metrics(self) -> dict[str, float | None]:
        if not self.rows:
            return {}
        aucs = [_auc_from_bins(self.expected_positive[k], self.count[k] - self.expected_positive[k])
                for k in range(self.classes)]
        return {"accuracy": float(np.trace(self.confusion)) / self.rows, "f1": _macro_f1(self.confusion),
                "auc": float(np.mean(aucs)) if all(a is not None for a in aucs) else None}


def realized_accumulator(problem: str, classes: int) -> BinaryQuality | MulticlassQuality | RegressionQuality:
    if problem == "binary":
        return BinaryQuality()
    if problem == "multiclass":
        return MulticlassQuality(classes)
    return RegressionQuality()


def estimate_accumulator(problem: str, calibration: dict[str, Any], classes: int) -> Any:
    """The CBPE accumulator for the problem, or None where nothing can be estimated (regression)."""
    if problem == "binary":
        return BinaryEstimate(calibration)
    if problem == "multiclass":
        return MulticlassEstimate(calibration, classes)
    return None


ESTIMATION_NOTE = {
    "binary": "confidence-based (CBPE): from the model's calibrated scores; blind to concept shift",
    "multiclass": "confidence-based (CBPE): from the model's calibrated class probabilities; blind to concept shift",
    "regression": "not estimated: a regression model's point predictions carry no estimate of their own error",
}


# ---------------------------------------------------------------------------- Model Monitor's documents

SECTIONS = {"binary": "binary_classification", "multiclass": "multiclass_classification", "regression": "regression"}


def statistics_document(problem: str, accumulator: Any, evaluation_time: str) -> dict[str, Any]:
    """statistics.json of a model-quality job: {"version", "dataset", "<problem>_metrics": {name: {value,
    standard_deviation}}} with "NaN" where Model Monitor gives no standard deviation."""
    metrics = accumulator.metrics()
    deviations = accumulator.standard_deviations(metrics)
    section: dict[str, Any] = {}
    confusion = accumulator.confusion_matrix()
    if confusion is not None:
        section["confusion_matrix"] = confusion
    for name, value in metrics.items():
        if value is not None:
            deviation = deviations.get(name)
            section[name] = {"value": value, "standard_deviation": deviation if deviation is not None else "NaN"}
    return {"version": 0.0, "dataset": {"item_count": accumulator.rows, "evaluation_time": evaluation_time},
            f"{SECTIONS[problem]}_metrics": section}


def constraints_document(problem: str, metric: str, threshold: float) -> dict[str, Any]:
    """constraints.json of a model-quality job: the configured metric and its threshold."""
    operator = "GreaterThanThreshold" if metric in LOWER_IS_BETTER else "LessThanThreshold"
    return {"version": 0.0,
            f"{SECTIONS[problem]}_constraints": {metric: {"threshold": threshold, "comparison_operator": operator}}}


def violations_document(problem: str, constraints: dict[str, Any], statistics: dict[str, Any]) -> dict[str, Any]:
    """constraint_violations.json: each constrained metric whose value is on the wrong side of its threshold."""
    found = []
    metrics = statistics.get(f"{SECTIONS[problem]}_metrics", {})
    for name, constraint in (constraints.get(f"{SECTIONS[problem]}_constraints") or {}).items():
        measured = metrics.get(name)
        if not isinstance(measured, dict):
            continue
        value, threshold = measured["value"], float(constraint["threshold"])
        operator = constraint.get("comparison_operator", "LessThanThreshold")
        breached = {"LessThanThreshold": value < threshold, "GreaterThanThreshold": value > threshold,
                    "LessThanOrEqualToThreshold": value <= threshold,
                    "GreaterThanOrEqualToThreshold": value >= threshold}.get(operator, False)
        if breached:
            deviation = measured.get("standard_deviation")
            spread = f" +/- {deviation:.4g}" if isinstance(deviation, float) else ""
            found.append({"constraint_check_type": operator, "metric_name": name,
                          "description": f"Metric {name} with {value:.4g}{spread} was {operator} '{threshold}'"})
    return {"violations": found}
