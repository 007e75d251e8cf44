"""Train: XGBoost in script mode, a self-contained model directory, and spot checkpoints that resume."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import xgboost as xgb
from features import FeatureTransform
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score

ML = Path(__file__).resolve().parents[2] / "ml"


def _load(model_dir: Path) -> tuple[xgb.Booster, FeatureTransform]:
    booster = xgb.Booster()
    booster.load_model(bytearray((model_dir / "xgboost-model").read_bytes()))
    return booster, FeatureTransform.load(model_dir / "transform.json")


def _scores(trained) -> tuple[np.ndarray, np.ndarray]:
    booster, transform = _load(trained.model_dir)
    rows = trained.test_rows
    return transform.encode_target(rows[transform.target]), booster.inplace_predict(transform.apply(rows))


def test_binary_model_learns(binary_model) -> None:
    truth, probabilities = _scores(binary_model)
    assert roc_auc_score(truth, probabilities) > 0.85


def test_multiclass_model_learns(multiclass_model) -> None:
    truth, probabilities = _scores(multiclass_model)
    assert probabilities.shape == (len(truth), 3)
    assert accuracy_score(truth, probabilities.argmax(axis=1)) > 0.6


def test_regression_model_learns(regression_model) -> None:
    truth, predictions = _scores(regression_model)
    assert r2_score(truth, predictions) > 0.6


def test_model_dir_holds_everything_the_endpoint_needs(binary_model) -> None:
    model_dir = binary_model.model_dir
    assert sorted(str(path.relative_to(model_dir)) for path in model_dir.rglob("*")) == [
        "code",
        "code/features.py",
        "code/inference.py",
        "transform.json",
        "xgboost-model",
    ]
    # The booster is XGBoost's JSON model format, whatever the file name says
    assert json.loads((model_dir / "xgboost-model").read_text())["learner"]["objective"]["name"] == "binary:logistic"
    assert (model_dir / "transform.json").read_bytes() == binary_model.prep.output(
        "transform", "transform.json"
    ).read_bytes()
    for name in ("features.py", "inference.py"):
        assert (model_dir / "code" / name).read_text() == (ML / name).read_text()


def test_hyperparameters_reach_xgboost(binary_model) -> None:
    # Given max_depth 3 and 40 rounds passed JSON-encoded as --name value pairs
    booster, _ = _load(binary_model.model_dir)
    # Then no tree is deeper than 3 (XGBoost's default is 6) and there are at most 40 rounds
    depths = [line.count("\t") for tree in booster.get_dump() for line in tree.splitlines()]
    assert max(depths) == 3
    assert booster.num_boosted_rounds() <= 40


def test_validation_metrics_are_logged_by_round_with_a_final_line(binary_model) -> None:
    log = binary_model.train_stdout
    assert re.search(r"^\[10\]\tvalidation-auc:0\.\d+\tvalidation-logloss:0\.\d+$", log, re.MULTILINE)
    final = re.search(
        r"^final\tvalidation-auc:(0\.\d+)\tvalidation-logloss:0\.\d+\tbest_round:(\d+)$", log, re.MULTILINE
    )
    assert final and float(final.group(1)) > 0.8
    # Early stopping keeps the trees up to the best round
    booster, _ = _load(binary_model.model_dir)
    assert booster.num_boosted_rounds() == int(final.group(2))


def test_a_restarted_spot_job_resumes_from_its_newest_checkpoint(binary_model, sandbox) -> None:
    # Given a job that checkpointed every 5 rounds and stopped after round 10 (as a spot interruption would)
    for name in ("train", "validation", "transform"):
        sandbox.channel(name, binary_model.prep.output(name))
    settings = {"target": "churned", "problem": "binary", "early_stopping_rounds": 100, "checkpoint_every": 5}
    first = sandbox.train({**settings, "num_round": 10})
    checkpoints = sandbox.opt_ml / "checkpoints"
    assert "starting at round 0" in first.stdout
    checkpoint = xgb.Booster()
    checkpoint.load_model(bytearray((checkpoints / "xgboost-checkpoint.10").read_bytes()))
    # When the job restarts with the same checkpoint folder and 25 rounds to reach
    second = sandbox.train({**settings, "num_round": 25})
    # Then it resumes at round 10 and trains only the remaining 15 rounds
    assert "resuming from xgboost-checkpoint.10 at round 10, 15 rounds to go" in second.stdout
    assert "[1]\t" not in second.stdout and "[20]\t" in second.stdout
    resumed = xgb.Booster()
    resumed.load_model(bytearray((checkpoints / "xgboost-checkpoint.25").read_bytes()))
    assert resumed.num_boosted_rounds() == 25
    # And its first 10 trees are the checkpoint's own, not retrained
    assert resumed.get_dump()[:10] == checkpoint.get_dump()
    # And the saved model is those trees up to the best validation round
    booster, _ = _load(sandbox.opt_ml / "model")
    assert booster.get_dump() == resumed.get_dump()[: booster.num_boosted_rounds()]
    # Only the newest checkpoints are kept
    assert sorted(path.name for path in checkpoints.iterdir()) == ["xgboost-checkpoint.20", "xgboost-checkpoint.25"]
