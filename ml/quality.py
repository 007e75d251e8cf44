"""selfheal's model-quality monitor (a SageMaker processing job): captured predictions joined with
ground truth by inference id, in Model Monitor's model-quality formats, with performance estimated
from the model's own scores while labels are missing.

    python3 quality.py --metric auc --threshold 0.75 --start-time ISO --end-time ISO [--label-delay-hours H]
Inputs  <OPT_ML>/processing/input/capture/**/*.jsonl        endpoint data capture (the window's predictions)
        <OPT_ML>/processing/input/ground_truth/**/*.jsonl   labels in SageMaker's ground-truth format, under
                                                            yyyy/mm/dd/hh/ folders (the hour they arrived)
        <OPT_ML>/processing/input/quality/quality_baseline.json  problem, labels, features, calibration
Outputs <OPT_ML>/processing/output/quality/{statistics,constraints,constraint_violations,quality_metrics}.json
        <OPT_ML>/processing/output/labelled/labelled_traffic.csv: the matched requests' features and label,
        oldest first (a dataset to retrain on)

The configured metric and threshold are the constraint (constraints.json, written beside the report).
A prediction is joined by its eventMetadata.inferenceId (the InferenceId the client sent), or its eventId
when it has none, as Model Monitor merges. Late, duplicate, missing and unknown labels are counted, never
fatal. Memory is bounded: labels and captures are partitioned by a hash of the id into spill files when
the labels exceed LABEL_MEMORY_BYTES, and each partition is joined on its own.
"""

from __future__ import annotations

import argparse
import base64
import csv
import heapq
import io
import json
import math
import os
import re
import sys
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # siblings ship beside this script
    sys.path.insert(0, str(HERE))

import quality_metrics as qm  # noqa: E402

OPT_ML = Path(os.environ.get("SELFHEAL_OPT_ML", "/opt/ml"))
LABELLED_FILE = "labelled_traffic.csv"
LABEL_MEMORY_BYTES = 64 << 20  # ground-truth bytes joined in memory at once
_HOUR_FOLDER = re.compile(r"(\d{4})/(\d{2})/(\d{2})/(\d{2})/")


class QualityInputError(ValueError):
    """The quality baseline is missing or malformed."""


@dataclass
class Baseline:
    """What the serving model's training run recorded for monitoring its quality (quality_baseline.json)."""

    problem: str
    target: str
    labels: list[str]  # class labels as text, in the model's class order (empty for regression)
    features: list[str]
    calibration: dict[str, Any]

    @classmethod
    def read(cls, path: Path) -> Baseline:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            baseline = cls(document["problem"], document["target"], [str(v) for v in document.get("labels") or []],
                           list(document["features"]), document.get("calibration") or {})
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise QualityInputError(f"cannot read the quality baseline {path}: {error}") from error
        if baseline.problem not in qm.PROBLEMS:
            raise QualityInputError(f"{path}: unknown problem {baseline.problem!r}")
        return baseline

    def class_index(self, text: str) -> int:
        """The class a label's text names; integral numbers match however they were written (1, 1.0)."""
        try:
            return self.labels.index(text)
        except ValueError:
            number = float(text)  # ValueError again for text that names no class
            if number.is_integer() and str(int(number)) in self.labels:
                return self.labels.index(str(int(number)))
            raise ValueError(f"label {text!r} is not one of the model's classes") from None


@dataclass
class Counts:
    records: int = 0  # capture records in the window
    matched: int = 0  # predictions with a label
    missing: int = 0  # predictions past the label delay with no label
    pending: int = 0  # predictions still within the label delay, no label yet
    late: int = 0  # labels that arrived after the label delay (still used)
    duplicate: int = 0  # labels for an id already labelled (the last one arrived wins)
    unknown: int = 0  # labels for no prediction of the window
    invalid_labels: int = 0
    invalid_records: int = 0
    skipped_records: int = 0  # captured outside the window


@dataclass
class Window:
    start: datetime | None
    end: datetime | None
    label_delay: timedelta
    now: datetime

    def holds(self, moment: datetime) -> bool:
        return (self.start is None or moment >= self.start) and (self.end is None or moment < self.end)


@dataclass
class Prediction:
    """One captured request: its id, time, input (for retraining) and output (for scoring)."""

    event_id: str
    at: datetime
    input: tuple[str, str]  # (content type, text)
    output: tuple[str, str]


@dataclass
class Join:
    baseline: Baseline
    window: Window
    counts: Counts = field(default_factory=Counts)

    def __post_init__(self) -> None:
        classes = len(self.baseline.labels)
        self.realized = qm.realized_accumulator(self.baseline.problem, classes)
        self.estimate = qm.estimate_accumulator(self.baseline.problem, self.baseline.calibration, classes)


# ----------------------------------------------------------------------------------------------- reading


def _text(part: dict[str, Any]) -> tuple[str, str]:
    data = part.get("data", "")
    if str(part.get("encoding", "")).upper() == "BASE64":
        data = base64.b64decode(data).decode("utf-8")
    return str(part.get("observedContentType") or ""), data


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # noqa: UP017 - Python 3.9


def _records(path: Path) -> Iterator[dict[str, Any] | None]:
    """Each line of a JSON Lines file decoded (None for one that is not a JSON object); blank lines skipped."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                yield record if isinstance(record, dict) else None


def read_captures(paths: list[Path], window: Window, counts: Counts) -> Iterator[Prediction]:
    for path in paths:
        for record in _records(path):
            try:
                meta, data = record["eventMetadata"], record["captureData"]  # type: ignore[index]
                at = _parse_time(meta["inferenceTime"])
                prediction = Prediction(str(meta.get("inferenceId") or meta["eventId"]), at,
                                        _text(data["endpointInput"]), _text(data["endpointOutput"]))
            except (ValueError, KeyError, TypeError):
                counts.invalid_records += 1
                continue
            if not window.holds(at):
                counts.skipped_records += 1
                continue
            counts.records += 1
            yield prediction


def read_labels(paths: list[Path], counts: Counts) -> Iterator[tuple[str, str, datetime | None]]:
    """(event id, label text, the hour the label arrived) for each ground-truth record."""
    for path in paths:
        folder = _HOUR_FOLDER.search(path.as_posix())
        hour = (datetime(*map(int, folder.groups()), tzinfo=timezone.utc) if folder else None)  # noqa: UP017
        for record in _records(path):
            try:
                _, label = _text(record["groundTruthData"])  # type: ignore[index]
                yield str(record["eventMetadata"]["eventId"]), label.strip(), hour  # type: ignore[index]
            except (ValueError, KeyError, TypeError):
                counts.invalid_labels += 1


# ------------------------------------------------------------------------------------- one join partition


def _rows_out(prediction: Prediction) -> list[Any]:
    """The predictions in a response: one per input row, as ml/inference.py answers."""
    content_type, text = prediction.output
    if "json" in content_type:
        document = json.loads(text)
        return list(document["predictions"] if isinstance(document, dict) else document)
    return [line for line in text.splitlines() if line.strip()]


def _rows_in(prediction: Prediction, features: list[str]) -> list[list[str]]:
    """The request's rows as text in the model's feature order (for the labelled dataset)."""
    content_type, text = prediction.input
    if "json" in content_type:
        document = json.loads(text)
        rows = document.get("instances", document) if isinstance(document, dict) else document
        rows = [rows] if isinstance(rows, dict) else rows
        return [[_cell(row[name] if isinstance(row, dict) else row[i]) for i, name in enumerate(features)]
                for row in rows]
    return [row for row in csv.reader(io.StringIO(text)) if row]


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _scores(baseline: Baseline, outputs: list[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """(predicted value or class index per row, class probabilities when the response carries them)."""
    if baseline.problem == "multiclass":
        if outputs and isinstance(outputs[0], dict):
            probabilities = np.array([row["probabilities"] for row in outputs], dtype=np.float64)
            return probabilities.argmax(axis=1), probabilities
        return np.array([baseline.class_index(str(row).strip()) for row in outputs]), None
    return np.array([float(row) for row in outputs], dtype=np.float64), None


def _label_texts(label: str, rows: int) -> list[str]:
    """One label per row of the request: a multi-row request's ground truth has one per line."""
    texts = [part.strip() for part in label.splitlines() if part.strip()] if rows > 1 else [label]
    if len(texts) != rows:
        raise ValueError(f"{len(texts)} labels for a request of {rows} rows")
    return texts


def _truth(baseline: Baseline, texts: list[str]) -> np.ndarray:
    if baseline.problem == "regression":
        return np.array([float(text) for text in texts])
    return np.array([baseline.class_index(text) for text in texts])


def join_partition(job: Join, labels: dict[str, tuple[str, datetime | None]], predictions: Iterator[Prediction],
                   labelled: list[tuple[str, list[str]]]) -> None:
    """Score every prediction, and the labelled ones against their labels; `labels` is consumed."""
    problem, delay = job.baseline.problem, job.window.label_delay
    for prediction in predictions:
        try:
            values, probabilities = _scores(job.baseline, _rows_out(prediction))
        except (ValueError, KeyError, TypeError, IndexError):
            job.counts.invalid_records += 1
            continue
        if job.estimate is not None and problem == "binary":
            job.estimate.update(values)
        elif job.estimate is not None and probabilities is not None:
            job.estimate.update(probabilities)
        found = labels.pop(prediction.event_id, None)
        if found is None:
            overdue = prediction.at + delay <= job.window.now
            job.counts.missing += overdue
            job.counts.pending += not overdue
            continue
        label, hour = found
        try:
            texts = _label_texts(label, len(values))
            truth = _truth(job.baseline, texts)
            features = _rows_in(prediction, job.baseline.features)
            if len(features) != len(texts):
                raise ValueError(f"{len(features)} input rows for {len(texts)} predictions")
        except (ValueError, KeyError, TypeError, IndexError, csv.Error):
            job.counts.invalid_labels += 1
            continue
        if problem == "multiclass":
            job.realized.update(values, truth, probabilities)
        else:
            job.realized.update(values, truth)
        job.counts.matched += 1
        job.counts.late += bool(hour and hour > prediction.at + delay)
        stamp = prediction.at.isoformat()
        labelled += [(stamp, row + [texts[i]]) for i, row in enumerate(features)]
    job.counts.unknown += len(labels)


def _label_table(entries: Iterator[tuple[str, str, datetime | None]], counts: Counts) -> dict[str, Any]:
    table: dict[str, tuple[str, datetime | None]] = {}
    for event_id, label, hour in entries:
        previous = table.get(event_id)
        if previous is not None:
            counts.duplicate += 1
            if previous[1] and hour and previous[1] > hour:
                continue  # the label that arrived last wins
        table[event_id] = (label, hour)
    return table


# ------------------------------------------------------------------------------------------- the whole join


def _partition_of(event_id: str, partitions: int) -> int:
    return zlib.crc32(event_id.encode("utf-8")) % partitions


def run_join(job: Join, capture: list[Path], ground_truth: list[Path], spill: Path,
             memory_bytes: int = LABEL_MEMORY_BYTES) -> Iterator[list[str]]:
    """Join and score; yields the labelled rows oldest first (features then label)."""
    size = sum(path.stat().st_size for path in ground_truth)
    partitions = max(1, math.ceil(size / memory_bytes))
    runs: list[Path] = []
    if partitions == 1:
        labels = _label_table(read_labels(ground_truth, job.counts), job.counts)
        runs.append(_sorted_run(spill, 0, job, labels, read_captures(capture, job.window, job.counts)))
    else:
        label_files, capture_files = _spill(job, capture, ground_truth, spill, partitions)
        for index in range(partitions):
            labels = _label_table(_read_spilled_labels(label_files[index]), job.counts)
            runs.append(_sorted_run(spill, index, job, labels, _read_spilled_captures(capture_files[index])))
    yield from (row for _, row in heapq.merge(*(_read_run(path) for path in runs), key=lambda item: item[0]))


def _sorted_run(spill: Path, index: int, job: Join, labels: dict[str, Any],
                predictions: Iterator[Prediction]) -> Path:
    labelled: list[tuple[str, list[str]]] = []
    join_partition(job, labels, predictions, labelled)
    path = spill / f"run-{index}.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for stamp, row in sorted(labelled, key=lambda item: item[0]):
            handle.write(json.dumps([stamp, row]) + "\n")
    return path


def _read_run(path: Path) -> Iterator[tuple[str, list[str]]]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            stamp, row = json.loads(line)
            yield stamp, row


def _spill(job: Join, capture: list[Path], ground_truth: list[Path], spill: Path,
           partitions: int) -> tuple[list[Path], list[Path]]:
    label_files = [spill / f"labels-{i}.jsonl" for i in range(partitions)]
    capture_files = [spill / f"capture-{i}.jsonl" for i in range(partitions)]
    handles = [open(path, "w", encoding="utf-8") for path in label_files]  # noqa: SIM115 - closed below
    try:
        for event_id, label, hour in read_labels(ground_truth, job.counts):
            record = [event_id, label, hour.isoformat() if hour else None]
            handles[_partition_of(event_id, partitions)].write(json.dumps(record) + "\n")
    finally:
        for handle in handles:
            handle.close()
    handles = [open(path, "w", encoding="utf-8") for path in capture_files]  # noqa: SIM115 - closed below
    try:
        for p in read_captures(capture, job.window, job.counts):
            record = [p.event_id, p.at.isoformat(), list(p.input), list(p.output)]
            handles[_partition_of(p.event_id, partitions)].write(json.dumps(record) + "\n")
    finally:
        for handle in handles:
            handle.close()
    return label_files, capture_files


def _read_spilled_labels(path: Path) -> Iterator[tuple[str, str, datetime | None]]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            event_id, label, hour = json.loads(line)
            yield event_id, label, _parse_time(hour) if hour else None


def _read_spilled_captures(path: Path) -> Iterator[Prediction]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            event_id, at, given, answered = json.loads(line)
            yield Prediction(event_id, _parse_time(at), tuple(given), tuple(answered))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------- the job


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None  # noqa: UP017


def run_job(opt_ml: Path, window: Window, metric: str, threshold: float,
            memory_bytes: int = LABEL_MEMORY_BYTES) -> dict[str, Any]:
    """The processing job under SageMaker's container layout; returns quality_metrics.json's content."""
    inputs, outputs = opt_ml / "processing" / "input", opt_ml / "processing" / "output"
    baseline = Baseline.read(inputs / "quality" / "quality_baseline.json")
    constraints = qm.constraints_document(baseline.problem, metric, threshold)
    capture = sorted((inputs / "capture").rglob("*.jsonl")) if (inputs / "capture").is_dir() else []
    truth = sorted((inputs / "ground_truth").rglob("*.jsonl")) if (inputs / "ground_truth").is_dir() else []
    job = Join(baseline, window)
    labelled_dir, report_dir = outputs / "labelled", outputs / "quality"
    labelled_dir.mkdir(parents=True, exist_ok=True)
    report_dir.mkdir(parents=True, exist_ok=True)
    labelled_rows = 0
    with tempfile.TemporaryDirectory() as spill, open(labelled_dir / LABELLED_FILE, "w", newline="",
                                                     encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*baseline.features, baseline.target])
        for row in run_join(job, capture, truth, Path(spill), memory_bytes):
            writer.writerow(row)
            labelled_rows += 1
    statistics = qm.statistics_document(baseline.problem, job.realized, _iso(window.now) or "")
    violations = qm.violations_document(baseline.problem, constraints, statistics)
    metrics = {
        "problem": baseline.problem,
        "metric": metric,
        "threshold": threshold,
        "window": {"start": _iso(window.start), "end": _iso(window.end),
                   "label_delay_hours": window.label_delay.total_seconds() / 3600},
        "labels": vars(job.counts),
        "metrics": {k: v for k, v in job.realized.metrics().items() if v is not None} if job.counts.matched else {},
        "estimated": {k: v for k, v in job.estimate.metrics().items() if v is not None} if job.estimate else {},
        "estimated_rows": job.estimate.rows if job.estimate else 0,
        "estimation": qm.ESTIMATION_NOTE[baseline.problem],
        "violations": violations["violations"],
        "labelled": {"file": LABELLED_FILE, "rows": labelled_rows, "columns": len(baseline.features) + 1},
    }
    for name, document in (("statistics.json", statistics), ("constraints.json", constraints),
                           ("constraint_violations.json", violations), ("quality_metrics.json", metrics)):
        (report_dir / name).write_text(json.dumps(document, indent=2), encoding="utf-8")
    return metrics


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="selfheal's model-quality monitor (a SageMaker processing job)")
    parser.add_argument("--metric", required=True, help="the configured metric: the constraint's")
    parser.add_argument("--threshold", type=float, required=True, help="the configured metric's threshold")
    parser.add_argument("--start-time", type=_parse_time, help="predictions with inferenceTime >= this (ISO)")
    parser.add_argument("--end-time", type=_parse_time, help="predictions with inferenceTime < this (ISO)")
    parser.add_argument("--label-delay-hours", type=float, default=0.0,
                        help="how long labels may take: unlabelled predictions younger than this are pending")
    parser.add_argument("--now", type=_parse_time, help="the time the job judges lateness at (default: end time)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    now = arguments.now or arguments.end_time or datetime.now(timezone.utc)  # noqa: UP017
    window = Window(arguments.start_time, arguments.end_time, timedelta(hours=arguments.label_delay_hours), now)
    metrics = run_job(OPT_ML, window, arguments.metric, arguments.threshold)
    counts = Counter({k: v for k, v in metrics["labels"].items() if v})
    print(f"model quality: {dict(counts)}; realized {metrics['metrics']}; estimated {metrics['estimated']}; "
          f"{len(metrics['violations'])} violation(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
