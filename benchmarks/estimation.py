"""Performance estimation before labels arrive: ml/quality_metrics.py's CBPE against NannyML's CBPE.

The model is the one the inference benchmark trains (as ml/train.py does, on the demo's churn data); its
calibration is fitted on 2,000 held-out rows, as Evaluate fits it. The concept-shift scenario is a history
of labelled batches (5,000 rows each): first the inputs drift while the concept holds (covariate shift),
then the concept moves too. For each batch, both estimators give ROC AUC and accuracy from the scores
alone, and the labels give the realized values. The promise: wherever NannyML's estimate is within 0.03 of
the realized metric, selfheal's is too. Speed: fit on the reference plus estimate on a million scored rows,
both sides, medians of repeated runs. Memory: the estimator streams scores a chunk at a time in a fresh
process; its peak (VmHWM) at 200,000 and at 1,000,000 rows is compared.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import BENCH_ENV_COMMAND, PYTHON, ROOT, Figure, Goal, Sizes, bench_python, load_ml, median, run_child, timed
from inference_speed import train_model
from selfheal_bench.datagen import TARGET, churn_frame

TOLERANCE = 0.03
AGREEMENT_GOAL = Goal("ratio", ">=", 1.0)  # every batch NannyML estimates within the tolerance, selfheal too
SPEED_GOAL = Goal("ratio", ">=", 10.0)  # against NannyML
MEMORY_GOAL = Goal("ratio", "<=", 1.1)
# (covariate shift, concept shift) of each batch of the history
HISTORY = [(0.0, 0.0), (0.25, 0.0), (0.5, 0.0), (0.75, 0.0), (1.0, 0.0), (1.0, 0.25), (1.0, 0.5), (1.0, 1.0)]
STREAM = """import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import quality_metrics as qm
rows, chunk = int(sys.argv[2]), 50_000
rng = np.random.default_rng(0)
estimate = qm.BinaryEstimate({"method": "none", "maps": []})
for start in range(0, rows, chunk):
    estimate.update(rng.random(min(chunk, rows - start)))
print(estimate.rows, estimate.metrics()["auc"])
"""


def scenario(sizes: Sizes, model: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference: score, prediction, label; batches: score, prediction, label, batch)."""
    def scored(frame: pd.DataFrame) -> pd.DataFrame:
        score = np.asarray(model.booster.inplace_predict(model.transform.apply(frame)), dtype=np.float64)
        return pd.DataFrame({"score": score, "prediction": (score >= 0.5).astype(int),
                             "label": model.transform.encode_target(frame[TARGET])})

    rows = 1000 if sizes.quick else 5000
    reference = scored(churn_frame(2000, seed=8))
    batches = [scored(churn_frame(rows, seed=20 + i, shift=s, concept=c)).assign(batch=i)
               for i, (s, c) in enumerate(HISTORY)]
    return reference, pd.concat(batches, ignore_index=True)


def ours(quality_metrics: Any, reference: pd.DataFrame, batches: pd.DataFrame) -> list[dict[str, Any]]:
    calibration = quality_metrics.fit_calibration("binary", reference["score"], reference["label"])
    found = []
    for batch, rows in batches.groupby("batch"):
        estimate = quality_metrics.BinaryEstimate(calibration)
        estimate.update(rows["score"].to_numpy())
        realized = quality_metrics.BinaryQuality()
        realized.update(rows["score"].to_numpy(), rows["label"].to_numpy())
        found.append({"batch": int(batch), "shift": HISTORY[int(batch)][0], "concept": HISTORY[int(batch)][1],
                      "realized": realized.metrics(), "selfheal": estimate.metrics()})
    return found


def fit_and_estimate(quality_metrics: Any, reference: pd.DataFrame, scores: np.ndarray) -> dict[str, Any]:
    estimate = quality_metrics.BinaryEstimate(
        quality_metrics.fit_calibration("binary", reference["score"], reference["label"]))
    estimate.update(scores)
    return estimate.metrics()


def measure(sizes: Sizes) -> list[Figure]:
    quality_metrics = load_ml("quality_metrics")
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-estimation-") as folder:
        work = Path(folder)
        reference, batches = scenario(sizes, train_model(work))
        rows = ours(quality_metrics, reference, batches)
        speed_rows = sizes.estimation_rows[1]
        speed = batches.sample(speed_rows, replace=True, random_state=1)[["score", "prediction"]]
        seconds = [timed(fit_and_estimate, quality_metrics, reference, speed["score"].to_numpy())[0]
                   for _ in range(sizes.repeats)]
        python = bench_python(create=not sizes.quick)
        theirs = _nannyml(python, sizes, work, reference, batches, speed) if python else None
    figures = [_agreement(rows, theirs), _speed(speed_rows, seconds, theirs), _memory(sizes)]
    if theirs is None:  # a quick run without the benchmarks' environment: say so, measure the rest
        why = f"the benchmarks' environment is absent (make bench makes it: {BENCH_ENV_COMMAND})"
        figures[0].not_measured = figures[1].not_measured = why
    return figures


def _nannyml(python: Path, sizes: Sizes, work: Path, reference: pd.DataFrame, batches: pd.DataFrame,
             speed: pd.DataFrame) -> dict[str, Any]:
    reference.to_parquet(work / "reference.parquet")
    batches.drop(columns=["label"]).to_parquet(work / "batches.parquet")
    speed.to_parquet(work / "speed.parquet")
    run = run_child([str(python), str(Path(__file__).with_name("nannyml_cbpe.py")), "--work", str(work),
                     "--repeats", str(sizes.repeats)], timeout=1800)
    if run.returncode != 0:
        raise RuntimeError(f"NannyML failed: {run.tail()}")
    return json.loads((work / "nannyml.json").read_text())


def _agreement(rows: list[dict[str, Any]], theirs: dict[str, Any] | None) -> Figure:
    figure = Figure(f"estimate within {TOLERANCE} of realized AUC and accuracy wherever NannyML's is "
                    f"({len(HISTORY)} batches)", "checks", AGREEMENT_GOAL, "batches x metrics NannyML estimates "
                    "within the tolerance", runs=1, data={"batches": rows})
    if theirs is None:
        return figure
    held = kept = 0
    for row, nannyml in zip(rows, theirs["batches"], strict=True):
        row["nannyml"] = {"auc": nannyml["auc"], "accuracy": nannyml["accuracy"]}
        for metric in ("auc", "accuracy"):
            realized = row["realized"][metric]
            if abs(nannyml[metric] - realized) <= TOLERANCE:
                held += 1
                kept += abs(row["selfheal"][metric] - realized) <= TOLERANCE
        print(f"  batch {row['batch']} shift {row['shift']:.2f} concept {row['concept']:.2f}: realized auc "
              f"{row['realized']['auc']:.3f}, selfheal {row['selfheal']['auc']:.3f}, NannyML {nannyml['auc']:.3f}; "
              f"accuracy {row['realized']['accuracy']:.3f}, {row['selfheal']['accuracy']:.3f}, "
              f"{nannyml['accuracy']:.3f}", flush=True)
    figure.value, figure.floor = float(kept), float(held)
    blind = [row["batch"] for row in rows if abs(row["selfheal"]["auc"] - row["realized"]["auc"]) > TOLERANCE]
    if blind:
        figure.notes.append(f"batches {blind}: both estimators miss the realized AUC by more than {TOLERANCE} "
                            "(concept shift: only labels show it)")
    return figure


def _speed(rows: int, seconds: list[float], theirs: dict[str, Any] | None) -> Figure:
    figure = Figure(f"performance estimation, {rows:,} scored rows (fit + estimate)", "rows/s", SPEED_GOAL,
                    "NannyML CBPE (roc_auc, accuracy), same rows", value=rows / median(seconds), runs=len(seconds))
    if theirs is None:
        return figure
    figure.floor = theirs["speed_rows"] / median(theirs["seconds"])
    figure.notes.append(f"NannyML: {median(theirs['seconds']):.2f} s a run; selfheal: {median(seconds):.3f} s")
    return figure


def _memory(sizes: Sizes) -> Figure:
    figure = Figure("performance estimation peak memory, streamed", "MB", MEMORY_GOAL,
                    f"the peak at {sizes.estimation_rows[0]:,} rows")
    peaks = []
    for rows in sizes.estimation_rows:
        run = run_child([PYTHON, "-c", STREAM, str(ROOT / "ml"), str(rows)], sample_memory=True, timeout=600)
        if run.returncode != 0:
            raise RuntimeError(f"the streaming estimator failed: {run.tail()}")
        peaks.append(run.peak_mb or 0.0)
    figure.floor, figure.value, figure.runs = peaks[0], peaks[1], 1
    figure.notes.append(f"peak {peaks[0]:.0f} MB at {sizes.estimation_rows[0]:,} rows, {peaks[1]:.0f} MB at "
                        f"{sizes.estimation_rows[1]:,}")
    return figure

