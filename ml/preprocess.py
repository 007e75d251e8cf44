"""Preprocess job (SageMaker scikit-learn processing container).

Inputs  <OPT_ML>/processing/input/config/config.json   the run's model configuration (target, problem, split),
                                                     and holdout_datasets: the labelled traffic among the data
        <OPT_ML>/processing/input/data/**/*.csv|parquet every dataset of the training window (with headers)
Outputs <OPT_ML>/processing/output/
        train/train.csv, validation/validation.csv   encoded, no header, target first, all numeric; with
                                                     training.instance_count N > 1, train/ holds N files
                                                     (train-<i>-of-<N>.csv), one per training instance, which
                                                     Train's ShardedByS3Key channel deals out one to a host
        test/test.csv                                raw held-out rows, header, every original column: the
                                                     newest labelled traffic when the run has some, so the
                                                     challenger and the champion are judged on what matters now
        transform/transform.json                     the feature transform fitted on train only
        baseline/statistics.json, constraints.json   Model Monitor baseline of the raw training features
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # siblings (features, monitor) ship beside this script
    sys.path.insert(0, str(HERE))

from baseline import build_baseline  # noqa: E402
from features import PROBLEMS, FeatureTransform, class_labels  # noqa: E402

OPT_ML = Path(os.environ.get("SELFHEAL_OPT_ML", "/opt/ml"))
INPUT = OPT_ML / "processing" / "input"
OUTPUT = OPT_ML / "processing" / "output"
DEFAULT_SPLIT = {"validation": 0.15, "test": 0.15, "seed": 42}
DATA_SUFFIXES = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}
MIN_ROWS = 10
SPLIT_PARTS = ("train", "validation", "test")
HOLDOUT_MIN_ROWS = 20  # labelled traffic smaller than this is split like any other data
HOLDOUT_FLOOR = 50  # the newest rows tested: the split's test share of them, and at least this many (or half)


def read_config(path: Path) -> dict[str, Any]:
    config = json.loads(path.read_text(encoding="utf-8"))
    for name in ("target", "problem"):
        if not config.get(name):
            raise ValueError(f"{path}: config has no '{name}'")
    if config["problem"] not in PROBLEMS:
        raise ValueError(f"{path}: problem must be one of {', '.join(PROBLEMS)}, got {config['problem']!r}")
    return config


def split_settings(config: dict[str, Any]) -> dict[str, Any]:
    split = {**DEFAULT_SPLIT, **(config.get("split") or {})}
    validation, test = float(split["validation"]), float(split["test"])
    if not (0 < validation < 1 and 0 < test < 1 and validation + test < 1):
        raise ValueError(f"split fractions must be in (0, 1) and sum below 1, got validation={validation} test={test}")
    return {"validation": validation, "test": test, "seed": int(split["seed"])}


def data_format(path: Path) -> str | None:
    """csv or parquet by the file's name (a .csv.gz is CSV; pandas reads the gzip), else None."""
    name = path.name.lower()
    return next((fmt for suffix, fmt in DATA_SUFFIXES.items() if name.endswith(suffix)), None)


def data_files(folder: Path) -> list[Path]:
    files = sorted(path for path in folder.rglob("*") if path.is_file() and data_format(path))
    if not files:
        raise FileNotFoundError(f"no CSV or Parquet files under {folder}")
    return files


def read_data(folder: Path, holdout: set[str] | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """Every dataset as one frame, in file order (labelled traffic oldest first), and which rows are the
    labelled traffic (files named by their path under `folder` in `holdout`)."""
    holdout = holdout or set()
    frames, recent = [], []
    for path in data_files(folder):
        frame = pd.read_parquet(path) if data_format(path) == "parquet" else pd.read_csv(path, low_memory=False)
        frames.append(frame)
        recent.append(np.full(len(frame), path.relative_to(folder).as_posix() in holdout))
    return pd.concat(frames, ignore_index=True, sort=False), pd.Series(np.concatenate(recent), dtype=bool)


def labelled_rows(frame: pd.DataFrame, target: str, problem: str) -> pd.DataFrame:
    """Rows with a target (in their order, index kept); integral float class labels (ints widened by missing
    values) back to ints."""
    if target not in frame.columns:
        raise ValueError(f"target column '{target}' is not in the data (columns: {', '.join(map(str, frame.columns))})")
    rows = frame[frame[target].notna()].copy()
    labels = rows[target]
    if problem != "regression" and pd.api.types.is_float_dtype(labels) and np.all(np.mod(labels, 1) == 0):
        rows[target] = labels.astype(np.int64)
    if len(rows) < MIN_ROWS:
        raise ValueError(f"only {len(rows)} rows have a '{target}' value; at least {MIN_ROWS} are needed to split")
    return rows


def _stratify(frame: pd.DataFrame, target: str, problem: str, held_out: float) -> pd.Series | None:
    """Stratify when every class can appear on both sides of the split; otherwise split at random."""
    if problem == "regression":
        return None
    counts = frame[target].value_counts()
    taken = math.ceil(held_out * len(frame))
    if counts.min() >= 2 and min(taken, len(frame) - taken) >= len(counts):
        return frame[target]
    return None


def _rare_rows(frame: pd.DataFrame, target: str, problem: str) -> pd.Series:
    """Rows of a class too rare to be in all three parts: they go to training whole, so the model
    learns every class (the test rows then hold none of it, and the gate says so)."""
    if problem == "regression":
        return pd.Series(False, index=frame.index)
    counts = frame[target].map(frame[target].value_counts())
    rare = counts < len(SPLIT_PARTS)
    return rare if (~rare).sum() >= MIN_ROWS else pd.Series(False, index=frame.index)


def split(frame: pd.DataFrame, target: str, problem: str, settings: dict[str, Any],
          recent: pd.Series | None = None) -> dict[str, pd.DataFrame]:
    """train/validation/test, deterministic by the seed; stratified by class for classification. With enough
    labelled traffic (`recent` rows), the test rows are its newest, and everything else is trained on."""
    if recent is not None and int(recent.loc[frame.index].sum()) >= HOLDOUT_MIN_ROWS:
        newest = frame.index[recent.loc[frame.index].to_numpy()]
        count = max(math.ceil(settings["test"] * len(newest)), min(HOLDOUT_FLOOR, len(newest) // 2))
        test = frame.loc[newest[-count:]]
        return _train_validation(frame.drop(index=test.index), target, problem, settings,
                                 settings["validation"]) | {"test": test}
    seed, test_share = settings["seed"], settings["test"]
    rare = _rare_rows(frame, target, problem)
    common = frame[~rare]
    rest, test = train_test_split(
        common, test_size=test_share, random_state=seed, stratify=_stratify(common, target, problem, test_share)
    )
    parts = _train_validation(rest, target, problem, settings, settings["validation"] / (1 - test_share))
    if rare.any():
        parts["train"] = pd.concat([parts["train"], frame[rare]])
    return parts | {"test": test}


def _train_validation(rows: pd.DataFrame, target: str, problem: str, settings: dict[str, Any],
                      validation_share: float) -> dict[str, pd.DataFrame]:
    train, validation = train_test_split(
        rows, test_size=validation_share, random_state=settings["seed"],
        stratify=_stratify(rows, target, problem, validation_share),
    )
    return {"train": train, "validation": validation}


def write_encoded(path: Path, transform: FeatureTransform, rows: pd.DataFrame) -> None:
    """The layout SageMaker's XGBoost expects for CSV: no header, label first, numbers only."""
    encoded = pd.DataFrame(transform.apply(rows))
    encoded.insert(0, "label", transform.encode_target(rows[transform.target]))
    encoded.to_csv(path, header=False, index=False)


def train_shards(rows: pd.DataFrame, instances: int) -> dict[str, pd.DataFrame]:
    """The train split as one file per training instance (every instance must get rows to train on)."""
    if instances == 1:
        return {"train.csv": rows}
    if len(rows) < instances:
        raise ValueError(f"{len(rows)} training rows cannot be shared by {instances} training instances")
    return {f"train-{i + 1}-of-{instances}.csv": rows.iloc[i::instances] for i in range(instances)}


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    config = read_config(INPUT / "config" / "config.json")
    target, problem = config["target"], config["problem"]
    settings = split_settings(config)
    raw, recent = read_data(INPUT / "data", set(config.get("holdout_datasets") or []))
    frame = labelled_rows(raw, target, problem)
    parts = split(frame, target, problem, settings, recent)
    # The class set comes from every labelled row, so a rare class is known even if train lacks it.
    labels = class_labels(frame[target]) if problem != "regression" else None
    transform = FeatureTransform.fit(parts["train"], target, problem, labels=labels)

    outputs = {name: OUTPUT / name for name in ("train", "validation", "test", "transform", "baseline")}
    for folder in outputs.values():
        folder.mkdir(parents=True, exist_ok=True)
    instances = int((config.get("training") or {}).get("instance_count", 1))
    for name, rows in train_shards(parts["train"], instances).items():
        write_encoded(outputs["train"] / name, transform, rows)
    write_encoded(outputs["validation"] / "validation.csv", transform, parts["validation"])
    parts["test"].to_csv(outputs["test"] / "test.csv", index=False)
    transform.save(outputs["transform"] / "transform.json")
    statistics, constraints = build_baseline(parts["train"].drop(columns=[target]))
    write_json(outputs["baseline"] / "statistics.json", statistics)
    write_json(outputs["baseline"] / "constraints.json", constraints)

    kinds = [feature.kind for feature in transform.features]
    print(
        f"preprocess: {len(raw)} rows read, {len(raw) - len(frame)} without '{target}' dropped; "
        + ", ".join(f"{name}={len(rows)}" for name, rows in parts.items())
        + f"; {len(kinds)} features ({kinds.count('numeric')} numeric, {kinds.count('categorical')} categorical)"
        + (f"; classes {labels}" if labels else "")
    )


if __name__ == "__main__":
    main()
