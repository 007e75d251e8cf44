"""The model-quality job: captured predictions joined with ground truth by inference id, counted, scored,
and written in Model Monitor's formats, with the labelled requests kept as a dataset to retrain on."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import quality
from sklearn.metrics import roc_auc_score

ML = Path(__file__).resolve().parents[2] / "ml"
START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
FEATURES = ["tenure", "plan"]


def capture_line(event_id: str, at: datetime, features: list[str], output: str, inference_id: str | None = None,
                 output_type: str = "text/csv") -> str:
    """One record as SageMaker's data capture writes it."""
    meta = {"eventId": event_id, "inferenceTime": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if inference_id:
        meta["inferenceId"] = inference_id
    return json.dumps({"captureData": {
        "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": ",".join(features),
                          "encoding": "CSV"},
        "endpointOutput": {"observedContentType": output_type, "mode": "OUTPUT", "data": output, "encoding": "CSV"}},
        "eventMetadata": meta, "eventVersion": "0"})


def label_line(event_id: str, label: str) -> str:
    """One record in SageMaker's ground-truth format."""
    return json.dumps({"groundTruthData": {"data": label, "encoding": "CSV"}, "eventMetadata": {"eventId": event_id},
                       "eventVersion": "0"})


def sandbox(root: Path, captures: list[str], labels: dict[datetime, list[str]], problem: str = "binary",
            classes: list[str] | None = None) -> Path:
    inputs = root / "processing" / "input"
    (inputs / "capture" / "2026/12/01/10").mkdir(parents=True)
    (inputs / "capture" / "2026/12/01/10" / "a.jsonl").write_text("\n".join(captures) + "\n")
    for hour, lines in labels.items():
        folder = inputs / "ground_truth" / f"{hour:%Y/%m/%d/%H}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"labels-{len(lines)}.jsonl").write_text("\n".join(lines) + "\n")
    (inputs / "quality").mkdir(parents=True)
    baseline = {"problem": problem, "target": "churned", "labels": classes or ["no", "yes"], "features": FEATURES,
                "calibration": {"method": "none", "maps": []}}
    (inputs / "quality" / "quality_baseline.json").write_text(json.dumps(baseline))
    return root


def run(root: Path, judged: quality.Window, metric: str = "auc", threshold: float = 0.7, **options) -> dict:
    return quality.run_job(root, judged, metric, threshold, **options)


def window(now: datetime, delay_hours: float = 2) -> quality.Window:
    return quality.Window(START, START + timedelta(hours=1), timedelta(hours=delay_hours), now)


def binary_traffic(rows: int, seed: int = 1) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.random(rows)
    truth = (rng.random(rows) < scores).astype(int)
    captures = [capture_line(f"e{i}", START + timedelta(seconds=i), [str(i), "basic"], f"{float(scores[i])!r}\n",
                             inference_id=f"req-{i}") for i in range(rows)]
    labels = [label_line(f"req-{i}", "yes" if truth[i] else "no") for i in range(rows)]
    return captures, labels, scores, truth


def test_labels_join_by_inference_id_and_score_as_scikit_learn_does(tmp_path):
    captures, labels, scores, truth = binary_traffic(400)
    root = sandbox(tmp_path, captures, {START + timedelta(hours=1): labels})
    metrics = run(root, window(START + timedelta(hours=1)))
    assert metrics["labels"]["matched"] == 400
    assert metrics["metrics"]["auc"] == pytest.approx(roc_auc_score(truth, scores), abs=5e-4)
    report = root / "processing" / "output" / "quality"
    assert json.loads((report / "statistics.json").read_text())["dataset"]["item_count"] == 400
    assert json.loads((report / "constraint_violations.json").read_text()) == {"violations": []}


def test_late_duplicate_missing_pending_and_unknown_labels_are_counted_never_fatal(tmp_path):
    captures, labels, _, _ = binary_traffic(10)
    arrived = {
        START: labels[:4] + [label_line("req-0", "no"), label_line("nobody", "yes"), "not json"],
        START + timedelta(hours=5): labels[4:6],  # after the 2-hour delay: late, still used
    }
    root = sandbox(tmp_path, captures, arrived)
    # Judged 3 hours after the first request: requests 0-9 were made in its first 10 seconds
    counts = run(root, window(START + timedelta(hours=3)))["labels"]
    assert counts["matched"] == 6 and counts["late"] == 2
    assert counts["duplicate"] == 1 and counts["unknown"] == 1 and counts["invalid_labels"] == 1
    assert counts["missing"] == 4 and counts["pending"] == 0


def test_unlabelled_predictions_within_the_label_delay_are_pending_not_missing(tmp_path):
    captures, labels, _, _ = binary_traffic(10)
    root = sandbox(tmp_path, captures, {START: labels[:3]})
    counts = run(root, window(START + timedelta(minutes=30)))["labels"]
    assert counts == {**counts, "matched": 3, "pending": 7, "missing": 0}


def test_a_prediction_without_an_inference_id_joins_by_its_event_id(tmp_path):
    line = capture_line("event-7", START, ["3", "pro"], "0.9\n")
    root = sandbox(tmp_path, [line], {START: [label_line("event-7", "yes")]})
    assert run(root, window(START))["labels"]["matched"] == 1


def test_predictions_outside_the_window_are_skipped(tmp_path):
    inside = capture_line("a", START + timedelta(minutes=5), ["1", "basic"], "0.2\n", "a")
    outside = capture_line("b", START - timedelta(minutes=5), ["2", "basic"], "0.8\n", "b")
    root = sandbox(tmp_path, [inside, outside], {START: [label_line("a", "no"), label_line("b", "yes")]})
    counts = run(root, window(START + timedelta(hours=1)))["labels"]
    assert (counts["records"], counts["skipped_records"], counts["matched"], counts["unknown"]) == (1, 1, 1, 1)


def test_quality_below_the_threshold_is_a_violation_in_model_monitors_format(tmp_path):
    captures, _, scores, truth = binary_traffic(400)
    flipped = [label_line(f"req-{i}", "no" if truth[i] else "yes") for i in range(400)]  # the concept flipped
    root = sandbox(tmp_path, captures, {START: flipped})
    metrics = run(root, window(START + timedelta(hours=1)))
    (violation,) = metrics["violations"]
    assert violation["metric_name"] == "auc" and violation["constraint_check_type"] == "LessThanThreshold"
    assert metrics["estimated"]["auc"] > 0.7  # the scores alone cannot see it: only labels can


def test_the_labelled_requests_become_a_dataset_oldest_first(tmp_path):
    captures, labels, _, truth = binary_traffic(50)
    root = sandbox(tmp_path, list(reversed(captures)), {START: labels})
    metrics = run(root, window(START + timedelta(hours=1)))
    assert metrics["labelled"] == {"file": "labelled_traffic.csv", "rows": 50, "columns": 3}
    with open(root / "processing" / "output" / "labelled" / "labelled_traffic.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [*FEATURES, "churned"]
    assert [row[0] for row in rows[1:]] == [str(i) for i in range(50)]  # sorted by inference time
    assert [row[2] for row in rows[1:]] == ["yes" if t else "no" for t in truth]


def test_a_join_larger_than_memory_is_partitioned_and_gives_the_same_result(tmp_path):
    captures, labels, _, _ = binary_traffic(300)
    labels += [label_line("req-5", "yes"), label_line("stranger", "no")]
    in_memory = run(sandbox(tmp_path / "a", captures, {START: labels}), window(START))
    partitioned = run(sandbox(tmp_path / "b", captures, {START: labels}), window(START),
                                  memory_bytes=2000)
    assert partitioned["metrics"] == pytest.approx(in_memory["metrics"])  # sums in another order
    assert {**partitioned, "metrics": None} == {**in_memory, "metrics": None}
    files = [(tmp_path / d / "processing/output/labelled/labelled_traffic.csv").read_text() for d in "ab"]
    assert files[0] == files[1]


def test_multiclass_labels_only_responses_are_scored_on_accuracy(tmp_path):
    classes = ["low", "mid", "high"]
    captures = [capture_line(f"e{i}", START, [str(i), "basic"], f"{classes[i % 3]}\n", f"r{i}") for i in range(30)]
    labels = [label_line(f"r{i}", classes[i % 3] if i < 27 else "low") for i in range(30)]
    root = sandbox(tmp_path, captures, {START: labels}, problem="multiclass", classes=classes)
    metrics = run(root, window(START), "accuracy", 0.5)
    assert metrics["metrics"]["accuracy"] == pytest.approx(28 / 30)  # r27 is "low" anyway: 28 right
    assert metrics["estimated"] == {}  # no probabilities captured: nothing to estimate from


def test_regression_is_realized_only(tmp_path):
    captures = [capture_line(f"e{i}", START, [str(i), "basic"], f"{float(i)}\n", f"r{i}") for i in range(20)]
    labels = [label_line(f"r{i}", str(i + 1.0)) for i in range(20)]
    root = sandbox(tmp_path, captures, {START: labels}, problem="regression", classes=[])
    metrics = run(root, window(START), "rmse", 5.0)
    assert metrics["metrics"]["rmse"] == pytest.approx(1.0)
    assert metrics["estimated"] == {} and "not estimated" in metrics["estimation"]


def test_the_job_runs_as_a_processing_job_would(tmp_path):
    captures, labels, _, _ = binary_traffic(100)
    root = sandbox(tmp_path, captures, {START: labels})
    done = subprocess.run([sys.executable, str(ML / "quality.py"), "--metric", "auc", "--threshold", "0.7",
                           "--start-time", "2026-12-01T10:00:00Z",
                           "--end-time", "2026-12-01T11:00:00Z", "--label-delay-hours", "1"],
                          env={"SELFHEAL_OPT_ML": str(root), "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "matched" in done.stdout
    report = root / "processing/output/quality"
    assert json.loads((report / "constraints.json").read_text()) == {
        "version": 0.0, "binary_classification_constraints": {
            "auc": {"threshold": 0.7, "comparison_operator": "LessThanThreshold"}}}
    assert json.loads((report / "quality_metrics.json").read_text())["labels"]["matched"] == 100
