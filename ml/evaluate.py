"""Evaluate job (SageMaker XGBoost container, run as a processing job).

Inputs  <OPT_ML>/processing/input/config/config.json     the run's config (target, problem, metric.name)
        <OPT_ML>/processing/input/model/model.tar.gz     the challenger (xgboost-model + transform.json)
        <OPT_ML>/processing/input/test/test.csv          raw held-out rows from Preprocess
        <OPT_ML>/processing/input/champion/champion.json the serving model's record (null/{} when none)
        <OPT_ML>/processing/input/champion/model.tar.gz  the serving model, when there is one
Output  <OPT_ML>/processing/output/evaluation/evaluation.json: model-registry metrics of the challenger
        plus a "selfheal" section comparing it with the champion on the very same test rows.
        <OPT_ML>/processing/output/evaluation/quality_baseline.json: what the model-quality monitor needs
        to judge this model once it serves (ml/quality.py): problem, classes, feature order, and the
        calibration of its scores on these held-out rows (for estimating its metrics before labels arrive).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # features.py ships beside this script
    sys.path.insert(0, str(HERE))

from features import FeatureTransform  # noqa: E402
from quality_metrics import LOWER_IS_BETTER, fit_calibration  # noqa: E402

OPT_ML = Path(os.environ.get("SELFHEAL_OPT_ML", "/opt/ml"))
INPUT = OPT_ML / "processing" / "input"
OUTPUT = OPT_ML / "processing" / "output" / "evaluation"
REGISTRY_SECTION = {
    "binary": "binary_classification_metrics",
    "multiclass": "multiclass_classification_metrics",
    "regression": "regression_metrics",
}
METRICS = {
    "binary": ("auc", "accuracy", "f1", "logloss"),
    "multiclass": ("accuracy", "f1", "logloss", "auc"),
    "regression": ("rmse", "mae", "r2"),
}
DEFAULT_METRIC = {"binary": "auc", "multiclass": "accuracy", "regression": "rmse"}
MODEL_FILES = ("xgboost-model", "transform.json")


def load_model(tarball: Path) -> tuple[xgb.Booster, FeatureTransform]:
    """Read the booster and its transform straight from model.tar.gz (no extraction to disk)."""
    with tarfile.open(tarball) as archive:
        files = {Path(member.name).name: member for member in archive.getmembers() if member.isfile()}
        contents = {name: archive.extractfile(files[name]).read() for name in MODEL_FILES if name in files}
    missing = [name for name in MODEL_FILES if name not in contents]
    if missing:
        raise ValueError(f"{tarball.name} has no {' or '.join(missing)}")
    booster = xgb.Booster()
    booster.load_model(bytearray(contents["xgboost-model"]))
    return booster, FeatureTransform.loads(contents["transform.json"])


def predict(booster: xgb.Booster, transform: FeatureTransform, rows: pd.DataFrame) -> np.ndarray:
    """Positive-class probabilities (binary), class probabilities (multiclass) or values (regression)."""
    return np.asarray(booster.inplace_predict(transform.apply(rows)))


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def compute_metrics(problem: str, truth: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    if problem == "binary":
        predicted = (scores >= 0.5).astype(np.int64)
        both_classes = len(np.unique(truth)) == 2
        return {
            "auc": _number(roc_auc_score(truth, scores)) if both_classes else None,
            "accuracy": _number(accuracy_score(truth, predicted)),
            "f1": _number(f1_score(truth, predicted, zero_division=0)),
            "logloss": _number(log_loss(truth, scores, labels=[0, 1])),
        }
    if problem == "multiclass":
        classes = list(range(scores.shape[1]))
        predicted = scores.argmax(axis=1)
        # One-vs-rest AUC is defined only when every class occurs in the test rows.
        every_class = len(np.unique(truth)) == len(classes)
        return {
            "accuracy": _number(accuracy_score(truth, predicted)),
            "f1": _number(f1_score(truth, predicted, average="macro", zero_division=0)),
            "logloss": _number(log_loss(truth, scores, labels=classes)),
            "auc": _number(_multiclass_auc(truth, scores)) if every_class else None,
        }
    return {
        "rmse": _number(math.sqrt(mean_squared_error(truth, scores))),
        "mae": _number(mean_absolute_error(truth, scores)),
        "r2": _number(r2_score(truth, scores)) if len(truth) > 1 else None,
    }


def _multiclass_auc(truth: np.ndarray, scores: np.ndarray) -> float:
    if scores.shape[1] == 2:  # sklearn treats two classes as the binary case
        return roc_auc_score(truth, scores[:, 1])
    return roc_auc_score(truth, scores, multi_class="ovr", average="macro", labels=list(range(scores.shape[1])))


def scored(tarball: Path, rows: pd.DataFrame, problem: str, target: str) -> tuple[FeatureTransform, np.ndarray,
                                                                                   np.ndarray]:
    """(the model's transform, the rows' encoded truth, the model's scores on them)."""
    booster, transform = load_model(tarball)
    if (transform.problem, transform.target) != (problem, target):
        raise ValueError(
            f"model was trained for {transform.problem} on '{transform.target}', this run is {problem} on '{target}'"
        )
    return transform, transform.encode_target(rows[target]), predict(booster, transform, rows)


def score(tarball: Path, rows: pd.DataFrame, problem: str, target: str) -> dict[str, float | None]:
    _, truth, scores = scored(tarball, rows, problem, target)
    return compute_metrics(problem, truth, scores)


def quality_baseline(transform: FeatureTransform, truth: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    return {"problem": transform.problem, "target": transform.target, "features": transform.feature_names,
            "labels": [str(label) for label in transform.labels or []], "test_rows": int(len(truth)),
            "calibration": fit_calibration(transform.problem, scores, truth)}


def score_champion(folder: Path, rows: pd.DataFrame, problem: str, target: str) -> dict[str, Any]:
    """The champion's metrics, or why it could not be scored: its failure never fails the run."""
    record_file = folder / "champion.json"
    record = json.loads(record_file.read_text(encoding="utf-8")) if record_file.exists() else None
    arn = record.get("model_package_arn") if isinstance(record, dict) else None
    tarball = folder / "model.tar.gz"
    result: dict[str, Any] = {"champion": None, "champion_model_package_arn": arn, "champion_error": None}
    if not tarball.exists():
        if arn:
            result["champion_error"] = f"champion {arn} has no model.tar.gz in {folder}"
        return result
    try:
        result["champion"] = score(tarball, rows, problem, target)
    except (ValueError, KeyError, OSError, tarfile.TarError) as error:
        result["champion_error"] = f"{type(error).__name__}: {error}"
    return result


def class_rows(transform: FeatureTransform, test_labels: pd.Series) -> dict[str, dict[str, int | None]] | None:
    """Rows per class in the challenger's training split (its transform's count) and in the test rows:
    the gate warns about a class the model never saw, or one the metrics say nothing about."""
    if transform.labels is None:
        return None
    test = test_labels.dropna().astype(str).value_counts()
    trained = transform.label_rows or {}
    return {str(label): {"train": trained.get(str(label)), "test": int(test.get(str(label), 0))}
            for label in transform.labels}


def registry_metrics(problem: str, metrics: dict[str, float | None]) -> dict[str, Any]:
    """SageMaker model registry's model-quality form; undefined metrics are left out."""
    return {
        REGISTRY_SECTION[problem]: {
            name: {"value": value, "standard_deviation": "NaN"} for name, value in metrics.items() if value is not None
        }
    }


def main() -> None:
    config = json.loads((INPUT / "config" / "config.json").read_text(encoding="utf-8"))
    problem, target = config["problem"], config["target"]
    metric = (config.get("metric") or {}).get("name") or DEFAULT_METRIC[problem]
    if metric not in METRICS[problem]:
        raise ValueError(f"metric {metric!r} is not computed for {problem} problems ({', '.join(METRICS[problem])})")
    test_bytes = (INPUT / "test" / "test.csv").read_bytes()
    # Text as written, so each model's own transform decides what is a number and what a level.
    rows = pd.read_csv(io.BytesIO(test_bytes), dtype=str)
    transform, truth, scores = scored(INPUT / "model" / "model.tar.gz", rows, problem, target)
    challenger = compute_metrics(problem, truth, scores)
    champion = score_champion(INPUT / "champion", rows, problem, target)
    evaluation = {
        **registry_metrics(problem, challenger),
        "selfheal": {
            "problem": problem,
            "metric": metric,
            "greater_is_better": metric not in LOWER_IS_BETTER,
            "test_rows": len(rows),
            "class_rows": class_rows(transform, rows[target]),
            "test_sha256": hashlib.sha256(test_bytes).hexdigest(),
            "challenger": challenger,
            **champion,
        },
    }
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "evaluation.json").write_text(json.dumps(evaluation, indent=1) + "\n", encoding="utf-8")
    (OUTPUT / "quality_baseline.json").write_text(json.dumps(quality_baseline(transform, truth, scores)) + "\n",
                                                  encoding="utf-8")
    print(f"evaluate: {len(rows)} test rows; challenger {json.dumps(challenger)}")
    print(f"evaluate: champion {json.dumps(champion)}")


if __name__ == "__main__":
    main()
