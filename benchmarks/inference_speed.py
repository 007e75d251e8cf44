"""Inference: ml/inference.py end to end (input_fn → predict_fn → output_fn on the request body) against a floor.

The model is trained in the run the way ml/train.py trains it (the demo's hyperparameters, on the demo's
churn data through ml/features.py) and loaded with inference.model_fn, as the container does.
The floor parses the same body with pandas' fastest reader (read_csv with the pyarrow engine for CSV,
json.loads into a DataFrame for JSON), maps categorical text to the model's codes the cheapest way pandas
has (pd.Categorical), imputes the transform's medians (so it gives the same predictions, which is checked)
and calls the same booster's inplace_predict: no validation, no output serialisation. pandas' pyarrow
reader uses pyarrow's thread pool; inference.py reads on one thread, as a container worker per CPU should.
The implementation and the floor are timed in alternation, so that other load on the machine hits both.
"""

from __future__ import annotations

import io
import json
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from common import Figure, Goal, Sizes, hot_spots, load_ml, median, timed
from selfheal_bench.datagen import TARGET, churn_frame
from selfheal_bench.demo import DEMO_CONFIG

BATCHES = (1, 100, 10_000)
FORMATS = {"CSV": "text/csv", "JSON": "application/json"}
THROUGHPUT_GOAL = Goal("ratio", ">=", 1.0)  # at 10,000 rows (issue 12)
LATENCY_GOAL = Goal("value", "<", 2.0)  # ms, one row


def train_model(folder: Path) -> Any:
    """A booster trained like ml/train.py, saved as train.py saves it, loaded through inference.model_fn."""
    features, train, inference = load_ml("features"), load_ml("train"), load_ml("inference")
    frame = churn_frame(5000, seed=7)
    transform = features.FeatureTransform.fit(frame, TARGET, "binary")
    matrix = transform.apply(frame)
    hyperparameters = dict(DEMO_CONFIG["hyperparameters"])
    rounds = int(hyperparameters.pop("num_round"))
    params = train.xgboost_params("binary", transform, hyperparameters)
    booster = xgb.train(params, xgb.DMatrix(matrix, label=transform.encode_target(frame[TARGET])), rounds)
    transform_file = folder / "fitted-transform.json"  # save_model copies it in as transform.json
    transform.save(transform_file)
    train.save_model(folder / "model", booster, transform_file)
    return inference.model_fn(str(folder / "model"))


def payload(rows: int, kind: str) -> bytes:
    frame = churn_frame(rows, seed=11, with_target=False)
    if kind == "CSV":
        return frame.to_csv(header=False, index=False, lineterminator="\n").encode()
    values = frame.astype(object).where(frame.notna(), None).to_numpy().tolist()
    return json.dumps({"instances": values}).encode()


class Floor:
    """Parse with pandas' fastest reader, encode categories with pd.Categorical, impute medians, inplace_predict."""

    def __init__(self, model: Any) -> None:
        self.booster = model.booster
        self.names = model.transform.feature_names
        self.levels = {f.name: f.levels for f in model.transform.features if f.levels is not None}
        self.medians = {f.name: f.median for f in model.transform.features if f.median is not None}

    def __call__(self, body: bytes, kind: str) -> np.ndarray:
        if kind == "CSV":
            frame = pd.read_csv(io.BytesIO(body), engine="pyarrow", header=None, names=self.names)
        else:
            frame = pd.DataFrame(json.loads(body)["instances"], columns=self.names)
        for name, levels in self.levels.items():
            frame[name] = pd.Categorical(frame[name], categories=levels).codes
        frame = frame.fillna(self.medians)  # the transform imputes medians: same predictions, not just fast ones
        return self.booster.inplace_predict(frame.to_numpy(dtype=np.float32))


def end_to_end(inference: Any, model: Any, body: bytes, content_type: str) -> str:
    return inference.output_fn(inference.predict_fn(inference.input_fn(body, content_type), model), content_type)[0]


def _calls_per_run(call: Any, seconds: float) -> int:
    call()  # warm-up: the first call pays for lazy initialisation (pyarrow's reader, xgboost's predictor)
    once, _ = timed(call)
    return max(1, int(seconds / max(once, 1e-6)))


def _per_call(call: Any, calls: int) -> float:
    seconds, _ = timed(lambda: [call() for _ in range(calls)])
    return seconds / calls


def measure(sizes: Sizes) -> list[Figure]:
    inference = load_ml("inference")
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-model-") as folder:
        model = train_model(Path(folder))
    floor = Floor(model)
    figures = []
    for kind, content_type in FORMATS.items():
        for rows in BATCHES:
            body = payload(rows, kind)
            ours = partial(end_to_end, inference, model, body, content_type)
            bare = partial(floor, body, kind)
            bare()  # warm-up; _calls_per_run warms ours
            calls = _calls_per_run(ours, sizes.call_seconds)
            ours_s, floor_s = [], []
            for _ in range(sizes.repeats):
                ours_s.append(_per_call(ours, calls))
                floor_s.append(_per_call(bare, calls))
            figure = _figure(kind, rows, median(ours_s), median(floor_s), sizes.repeats, calls)
            figure.notes += _disagreement(ours(), bare(), kind)
            if figure.met is False:
                figure.notes.append("hot spots: " + hot_spots(ours, calls=5))
            figures.append(figure)
    return figures


def _disagreement(answer: str, floor: np.ndarray, kind: str) -> list[str]:
    """The floor must compute the same predictions, or it is no floor."""
    ours = np.array(json.loads(answer)["predictions"] if kind == "JSON" else answer.split(), dtype=np.float64)
    gap = float(np.max(np.abs(ours - floor)))
    return [f"floor predictions differ from ours by up to {gap:.3g}"] if gap > 1e-6 else []


def _figure(kind: str, rows: int, ours: float, floor: float, runs: int, calls: int) -> Figure:
    name = f"inference {kind} {rows:,} row{'s' if rows > 1 else ''}"
    floor_what = "pandas fastest reader + inplace_predict"
    if rows == 1:
        figure = Figure(name, "ms", LATENCY_GOAL, floor_what, value=ours * 1000, floor=floor * 1000, runs=runs)
    else:
        goal = THROUGHPUT_GOAL if rows == max(BATCHES) else None
        figure = Figure(name, "rows/s", goal, floor_what, value=rows / ours, floor=rows / floor, runs=runs)
    figure.data = {"calls_per_run": calls}
    return figure
