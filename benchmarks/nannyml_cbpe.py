"""NannyML's CBPE on the estimation benchmark's data, timed; run with .venv-bench's python.

NannyML needs pandas < 3, so it runs in the benchmarks' own environment and this script is its side of the
comparison. It reads WORK/reference.parquet (score, prediction, label) and WORK/batches.parquet (score,
prediction, batch), fits CBPE on the reference and estimates ROC AUC and accuracy per batch (one chunk per
batch), then times fit + estimate on WORK/speed.parquet (one chunk) REPEATS times, and writes
WORK/nannyml.json: {"batches": [{"batch", "auc", "accuracy"}], "seconds": [...], "speed_rows": int}.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import nannyml as nml
import pandas as pd


def cbpe(chunk_size: int) -> nml.CBPE:
    return nml.CBPE(y_pred_proba="score", y_pred="prediction", y_true="label", problem_type="classification_binary",
                    metrics=["roc_auc", "accuracy"], chunk_size=chunk_size)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # NannyML warns about chunk counts on every call
    reference = pd.read_parquet(args.work / "reference.parquet")
    batches = pd.read_parquet(args.work / "batches.parquet")
    size = int(batches["batch"].value_counts().max())
    estimator = cbpe(size).fit(reference)
    results = estimator.estimate(batches.drop(columns=["batch"])).filter(period="analysis").to_df()
    found = [{"batch": int(index), "auc": float(row[("roc_auc", "value")]),
              "accuracy": float(row[("accuracy", "value")])} for index, (_, row) in enumerate(results.iterrows())]
    speed = pd.read_parquet(args.work / "speed.parquet")
    seconds = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        cbpe(len(speed)).fit(reference).estimate(speed)
        seconds.append(time.perf_counter() - started)
    (args.work / "nannyml.json").write_text(json.dumps({"batches": found, "seconds": seconds,
                                                        "speed_rows": len(speed)}))


if __name__ == "__main__":
    main()
