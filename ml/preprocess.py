"""Preprocess job (SageMaker scikit-learn processing container), on one instance or several.

Inputs  <OPT_ML>/processing/input/config/config.json   the run's model configuration (target, problem, split),
                                                     and holdout_datasets: the labelled traffic among the data
        <OPT_ML>/processing/input/data/**/*.csv|parquet the training window's datasets (with headers): all of
                                                     them on one instance; a share (maybe none) on each of N
Outputs <OPT_ML>/processing/output/
        train/train.csv, validation/validation.csv   encoded, no header, target first, all numeric; with
                                                     training.instance_count N > 1, train/ holds N files
                                                     (train-<i>-of-<N>.csv), one per training instance, which
                                                     Train's ShardedByS3Key channel deals out one to a host; on
                                                     several encoding hosts, each host's own (below)
        test/test.csv                                raw held-out rows, header, every original column: the
                                                     newest labelled traffic when the run has some, so the
                                                     challenger and the champion are judged on what matters now
        transform/transform.json                     the feature transform fitted on train only
        baseline/statistics.json, constraints.json   Model Monitor baseline of the raw training features

Each row's part comes from a hash of its content (splitting.py), so a host places the rows of its files alone and a
row lands in the same part whatever host reads it and however many there are. The job has three phases:
* a host's share: each file's labelled rows with their hash positions (rows/rows-<digest>.pkl) and a summary
  (partial-<host>.pkl: the files' columns, types and classes, and exact statistics of the rows placed in train,
  prep_stats.py);
* the merge: every class's cuts (stratified to a row; the newest labelled traffic tested), the training statistics
  corrected for the rows the cuts move, the transform and the baseline fitted from them, test.csv written, and the
  encoding (plan/plan.json: the cuts, the columns, where each file's training rows start in the deal to the training
  instances); memory: one file's rows, the statistics, and 8 bytes a labelled row for the cuts;
* the encoding: each rows file's training and validation rows encoded with the transform, file by file.
On one instance all three run here, in turn. On N > 1 (<OPT_ML>/config/resourceconfig.json names the hosts), each
host writes its share to <OPT_ML>/processing/output/partials/ (names of its own: the hosts share the S3 prefix); a
1-instance job, `preprocess.py --merge`, reads them all from <OPT_ML>/processing/input/partials/, refusing unless
every host's summary is there, and writes test, transform, baseline and plan; then N hosts, `preprocess.py
--encode`, each encode the rows files dealt to it (input/rows, with input/plan and input/transform), writing
train-<host>[-<i>-of-<M>].csv and validation-<host>.csv. The encoding, the costly part, so scales with the hosts.
The parts hold the same rows as on one instance, encoded alike, and train-<i> the same rows whoever encoded them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # siblings (features, monitor) ship beside this script
    sys.path.insert(0, str(HERE))

from baseline import baseline_from_columns  # noqa: E402
from features import CATEGORICAL, PROBLEMS, FeatureTransform, _key, class_labels, key_counts  # noqa: E402
from monitor import processing_hosts  # noqa: E402
from prep_stats import Block, ColumnStats, fit_transform, frame_kinds, resolve  # noqa: E402
from splitting import MIN_ROWS, TEST, TRAIN, VALIDATION, Plan, by_class, row_positions  # noqa: E402

OPT_ML = Path(os.environ.get("SELFHEAL_OPT_ML", "/opt/ml"))
INPUT = OPT_ML / "processing" / "input"
OUTPUT = OPT_ML / "processing" / "output"
DEFAULT_SPLIT = {"validation": 0.15, "test": 0.15, "seed": 42}
DATA_SUFFIXES = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}
PARTIAL_PREFIX = "partial-"
ROWS = "rows"  # the hosts' rows files, beside their summaries: EncodePreprocess deals them out to its hosts
PLAN = "plan.json"  # what the hosts encoding rows need of the merge, beside the transform


class PartialSplitError(RuntimeError):
    """The merge lacks a host's share of the data (or cannot read it)."""


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
    """Every CSV or Parquet file under `folder` (none when a sharded input gave this host no share)."""
    return sorted(path for path in folder.rglob("*") if path.is_file() and data_format(path))


def read_file(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if data_format(path) == "parquet" else pd.read_csv(path, low_memory=False)


def labelled_rows(frame: pd.DataFrame, target: str, problem: str) -> pd.DataFrame:
    """A file's rows with a target, in order; integral float class labels (ints widened by missing values) back
    to ints. A file without the target column has none."""
    if target not in frame.columns:
        return frame.iloc[:0]
    rows = frame[frame[target].notna()].reset_index(drop=True)
    labels = rows[target]
    if problem != "regression" and pd.api.types.is_float_dtype(labels) and np.all(np.mod(labels, 1) == 0):
        rows[target] = labels.astype(np.int64)
    return rows


def _labels(rows: pd.DataFrame, config: dict[str, Any]) -> pd.Series | None:
    return None if config["problem"] == "regression" else rows[config["target"]]


# ---------------------------------------------------------------------------------------- a host's share


def summarise(folder: Path, config: dict[str, Any], work: Path) -> dict[str, Any]:
    """This host's files: each one's labelled rows with their u (rows-<digest>.pkl in `work`, for the merge) and
    what the merge needs to know of it; and the statistics of the rows placed in train provisionally."""
    settings, target = split_settings(config), config["target"]
    holdout = set(config.get("holdout_datasets") or [])
    files: dict[str, dict[str, Any]] = {}
    train = Block()
    for path in data_files(folder):
        name = path.relative_to(folder).as_posix()
        raw = read_file(path)
        kinds = frame_kinds(raw)
        rows = labelled_rows(raw, target, config["problem"])
        u = row_positions(rows, settings["seed"])
        rows_file = f"{ROWS}/rows-{hashlib.sha256(name.encode()).hexdigest()[:24]}.pkl"
        (work / ROWS).mkdir(exist_ok=True)
        with open(work / rows_file, "wb") as handle:
            pickle.dump((rows, u), handle, protocol=4)
        files[name] = {"kinds": kinds, "rows": len(raw),
                       "labelled": len(rows), "rows_file": rows_file, "holdout": name in holdout,
                       "u": by_class(_labels(rows, config), u)}
        if name not in holdout and target in kinds:  # labelled traffic is placed by the merge, which knows its age
            train.add(Block.of(rows.drop(columns=[target])[Plan.provisional(u, settings) == TRAIN], kinds))
    return {"files": files, "train": train}


def write_partial(work: Path, host: str, hosts: list[str], summary: dict[str, Any]) -> None:
    with open(work / f"{PARTIAL_PREFIX}{host}.pkl", "wb") as handle:
        pickle.dump({"host": host, "hosts": hosts, **summary}, handle, protocol=4)


def load_rows(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """A rows file: one dataset's labelled rows and their positions u."""
    with open(path, "rb") as handle:
        return pickle.load(handle)  # noqa: S301 - written by this job's own hosts, in this image


def read_partials(work: Path) -> list[dict[str, Any]]:
    """Every host's summary, refusing unless there is one from each host of the job."""
    partials, expected = [], None
    for path in sorted(work.glob(f"{PARTIAL_PREFIX}*.pkl")):
        try:
            with open(path, "rb") as handle:
                partial = pickle.load(handle)  # noqa: S301 - written by this job's own hosts, in this image
        except (OSError, pickle.UnpicklingError, EOFError) as error:
            raise PartialSplitError(f"cannot read the host summary {path.name}: {error!r}") from error
        expected = expected or sorted(partial["hosts"])
        partials.append(partial)
    found = sorted(partial["host"] for partial in partials)
    if not found or found != expected:
        raise PartialSplitError(f"summaries of hosts {found}, expected one from each of {expected}: a host's share of "
                                "the data is missing, and the split would leave its rows out")
    return partials


# ------------------------------------------------------------------------------------------------- merge


class Merge:
    """Every host's share, merged: the split decided, the transform and the baseline fitted, the outputs written."""

    def __init__(self, work: Path, config: dict[str, Any]) -> None:
        self.work, self.config, self.settings = work, config, split_settings(config)
        self.target, self.problem = config["target"], config["problem"]
        partials = read_partials(work)
        self.files = {name: record for partial in partials for name, record in partial["files"].items()}
        self.names = sorted(self.files)
        self.host_train = [partial["train"] for partial in partials]
        self.train_rows: dict[str, int] = {}  # each file's training rows, once fit() has placed them
        # One type per column and columns in first-seen order, as pandas.concat of every file in order gives
        self.kinds: dict[str, set[str]] = defaultdict(set)
        for name in self.names:
            for column, kind in self.files[name]["kinds"].items():
                self.kinds[column].add(kind)
        self.columns = list(self.kinds)
        if self.target not in self.kinds:
            raise ValueError(f"target column '{self.target}' is not in the data (columns: {', '.join(self.columns)})")
        self.rows = sum(self.files[name]["labelled"] for name in self.names)
        if self.rows < MIN_ROWS:
            raise ValueError(f"only {self.rows} rows have a '{self.target}' value; at least {MIN_ROWS} are needed to "
                             "split")
        self.plan = self._plan()

    def load(self, name: str) -> tuple[pd.DataFrame, np.ndarray]:
        return load_rows(self.work / self.files[name]["rows_file"])

    def _plan(self) -> Plan:
        holdout = [(name, self.files[name]["labelled"]) for name in self.names if self.files[name]["holdout"]]
        holdout_from = Plan.newest(holdout, self.settings["test"])
        u_by_class: dict[Any, list[np.ndarray]] = defaultdict(list)
        for name in self.names:
            shares = self.files[name]["u"]
            if name in holdout_from:  # the newest rows are tested: the cuts place the rest
                rows, u = self.load(name)
                kept = slice(0, holdout_from[name])
                shares = by_class(None if self.problem == "regression" else rows[self.target][kept], u[kept])
            for label, u in shares.items():
                u_by_class[label].append(u)
        counts = {label: sum(map(len, parts)) for label, parts in u_by_class.items()}
        rare = sum(count for count in counts.values() if count < 3)
        self.classes = class_labels(pd.Series([label for name in self.names for label in self.files[name]["u"]],
                                              dtype=object)) if self.problem != "regression" else None
        return Plan.decide(self.settings, {label: np.concatenate(parts) for label, parts in u_by_class.items()},
                           holdout_from, rare_allowed=self.problem != "regression" and self.rows - rare >= MIN_ROWS)

    def fit(self) -> tuple[FeatureTransform, tuple[dict[str, Any], dict[str, Any]], dict[int, int]]:
        """The transform and the baseline from the training rows' statistics: the hosts' provisional ones, with the
        rows the classes' cuts (or the newest traffic) move in or out of train, and the labelled traffic's."""
        sizes: Counter = Counter()
        label_rows: Counter = Counter()
        train = Block()
        for block in self.host_train:
            train.add(block)
        for name in self.names:
            record = self.files[name]
            rows, u = self.load(name)
            if self.target not in rows.columns:
                continue
            parts = self.plan.parts(name, _labels(rows, self.config), u)
            sizes.update(parts.tolist())
            self.train_rows[name] = int((parts == TRAIN).sum())
            label_rows.update(key_counts(rows[self.target][parts == TRAIN]))
            features = rows.drop(columns=[self.target])
            if record["holdout"]:
                train.add(Block.of(features[parts == TRAIN], record["kinds"]))
                continue
            provisional = Plan.provisional(u, self.settings)
            train.add(Block.of(features[(provisional != TRAIN) & (parts == TRAIN)], record["kinds"]))
            train.add(Block.of(features[(provisional == TRAIN) & (parts != TRAIN)], record["kinds"]), -1)
        columns = [resolve(name, train.columns.get(name, ColumnStats()), self.kinds[name], train.rows)
                   for name in self.columns if name != self.target]
        labels = {_key(label): label_rows[_key(label)] for label in self.classes} if self.classes else None
        transform = fit_transform(columns, self.target, self.problem, self.classes, labels)
        return transform, baseline_from_columns(columns, train.rows), dict(sizes)

    def write_test(self, output: Path) -> None:
        """test/test.csv: the tested rows raw, every column, a header even when there are none."""
        (output / "test").mkdir(parents=True, exist_ok=True)
        with open(output / "test" / "test.csv", "w", encoding="utf-8") as test:
            header = True
            for name in self.names:
                rows, u = self.load(name)
                if not len(rows):
                    continue
                tested = rows[self.plan.parts(name, _labels(rows, self.config), u) == TEST]
                tested.reindex(columns=self.columns).to_csv(test, header=header, index=False)
                header = False
            if header:
                pd.DataFrame(columns=self.columns).to_csv(test, index=False)

    def encoding(self) -> dict[str, Any]:
        """What a host encoding rows files needs besides the transform: the split, the columns, and where each
        file's training rows start in the deal to the training instances (one running count in file order, so
        train-i's rows are the same whichever host encodes which file)."""
        instances = int((self.config.get("training") or {}).get("instance_count", 1))
        if sum(self.train_rows.values()) < instances:
            raise ValueError(f"{sum(self.train_rows.values())} training rows cannot be shared by {instances} "
                             "training instances")
        files, dealt = {}, 0
        for name in self.names:
            files[Path(self.files[name]["rows_file"]).name] = {"name": name, "train_from": dealt}
            dealt += self.train_rows.get(name, 0)
        return {"columns": self.columns, "training_instances": instances, "test": self.plan.test,
                "validation": self.plan.validation, "holdout_from": self.plan.holdout_from,
                "cuts": [[label, *cuts] for label, cuts in self.plan.cuts.items()], "files": files}


# ------------------------------------------------------------------------------------------------ encode


def encoded_files(instances: int, host: str | None) -> tuple[list[str], str]:
    """train/'s names (train.csv, or one per training instance) and validation/'s; on several encoding hosts, each
    host's own (every host writes all of them, so ShardedByS3Key's deal in key order gives training instance i each
    host's i-th)."""
    mark = "" if host is None else f"-{host}"
    train = [f"train{mark}.csv"] if instances == 1 else [f"train{mark}-{i + 1}-of-{instances}.csv"
                                                        for i in range(instances)]
    return train, f"validation{mark}.csv"


def encode(encoding: dict[str, Any], transform: FeatureTransform, config: dict[str, Any], folder: Path,
           output: Path, host: str | None = None) -> int:
    """Encode the rows files in `folder` (some or all of the window's) into train/ and validation/; returns the rows
    encoded. `host` names the files when several hosts share the output prefix."""
    plan = Plan(encoding["test"], encoding["validation"],
                {label: (test, validation) for label, test, validation in encoding["cuts"]}, encoding["holdout_from"])
    paths = list(folder.rglob("rows-*.pkl"))
    unknown = sorted(path.name for path in paths if path.name not in encoding["files"])
    if unknown:
        raise PartialSplitError(f"rows files the merge did not plan: {', '.join(unknown)}")
    instances = encoding["training_instances"]
    train_names, validation_name = encoded_files(instances, host)
    for part in ("train", "validation"):
        (output / part).mkdir(parents=True, exist_ok=True)
    shards = [open(output / "train" / name, "w", encoding="utf-8") for name in train_names]  # noqa: SIM115
    encoded = 0
    try:
        with open(output / "validation" / validation_name, "w", encoding="utf-8") as validation:
            for path in sorted(paths, key=lambda path: encoding["files"][path.name]["name"]):
                record = encoding["files"][path.name]
                rows, u = load_rows(path)
                if not len(rows):
                    continue
                parts = plan.parts(record["name"], _labels(rows, config), u)
                rows = rows.reindex(columns=encoding["columns"])  # a column this file lacks is missing in its rows
                train, validating = rows[parts == TRAIN], rows[parts == VALIDATION]
                for i, shard in enumerate(shards):
                    write_encoded(shard, transform, train.iloc[(i - record["train_from"]) % instances::instances])
                write_encoded(validation, transform, validating)
                encoded += len(train) + len(validating)
    finally:
        for shard in shards:
            shard.close()
    return encoded


def write_encoded(handle: Any, transform: FeatureTransform, rows: pd.DataFrame) -> None:
    """The layout SageMaker's XGBoost expects for CSV: no header, label first, numbers only."""
    if not len(rows):
        return
    matrix = transform.apply(rows)
    columns = [transform.encode_target(rows[transform.target])]
    for position, feature in enumerate(transform.features):  # codes are whole: as integers, formatted 3x faster
        columns.append(matrix[:, position].astype(np.int32) if feature.kind == CATEGORICAL else matrix[:, position])
    pd.DataFrame(dict(enumerate(columns))).to_csv(handle, header=False, index=False)


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def merge(work: Path, config: dict[str, Any], output: Path) -> tuple[str, FeatureTransform, dict[str, Any]]:
    """The split, the transform, the baseline and the test rows from every host's share (in `work`); returns what
    it did, in a line, the transform, and the encoding for the hosts that encode the rows files."""
    job = Merge(work, config)
    transform, (statistics, constraints), sizes = job.fit()
    encoding = job.encoding()
    job.write_test(output)
    (output / "transform").mkdir(parents=True, exist_ok=True)
    transform.save(output / "transform" / "transform.json")
    write_json(output / "baseline" / "statistics.json", statistics)
    write_json(output / "baseline" / "constraints.json", constraints)
    read = sum(record["rows"] for record in job.files.values())
    kinds = [feature.kind for feature in transform.features]
    line = (f"preprocess: {read} rows read from {len(job.files)} files, {read - job.rows} without '{job.target}' "
            f"dropped; " + ", ".join(f"{part}={sizes.get(code, 0)}" for part, code in
                                     (("train", TRAIN), ("validation", VALIDATION), ("test", TEST)))
            + f"; {len(kinds)} features ({kinds.count('numeric')} numeric, {kinds.count('categorical')} categorical)"
            + (f"; classes {transform.labels}" if transform.labels else "")
            + (f"; the newest {sizes.get(TEST, 0)} rows of labelled traffic tested" if job.plan.holdout_from else ""))
    return line, transform, encoding


def preprocess_here(work: Path, config: dict[str, Any], output: Path) -> str:
    """Merge the shares in `work` and encode every rows file here: the one-instance job, and a test's."""
    line, transform, encoding = merge(work, config, output)
    encode(encoding, transform, config, work / ROWS, output)
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="selfheal's preprocess job (a SageMaker processing job)")
    phase = parser.add_mutually_exclusive_group()
    phase.add_argument("--merge", action="store_true",
                       help="merge the hosts' shares (input/partials) of a multi-instance preprocess")
    phase.add_argument("--encode", action="store_true",
                       help="encode this host's share of the rows files (input/rows) as the merge planned")
    arguments = parser.parse_args(argv)
    config = read_config(INPUT / "config" / "config.json")
    host, hosts = processing_hosts(OPT_ML)
    if arguments.merge:
        line, _, encoding = merge(INPUT / "partials", config, OUTPUT)
        write_json(OUTPUT / "plan" / PLAN, encoding)
        print(line)
        return 0
    if arguments.encode:
        encoding = json.loads((INPUT / "plan" / PLAN).read_text(encoding="utf-8"))
        transform = FeatureTransform.load(INPUT / "transform" / "transform.json")
        rows = encode(encoding, transform, config, INPUT / ROWS, OUTPUT, host if len(hosts) > 1 else None)
        print(f"preprocess: {host} of {len(hosts)} hosts encoded {rows} rows")
        return 0
    if len(hosts) > 1:  # this host's share, for the merge (a name of its own: the hosts share one S3 prefix)
        partials = OUTPUT / "partials"
        partials.mkdir(parents=True, exist_ok=True)
        summary = summarise(INPUT / "data", config, partials)
        write_partial(partials, host, hosts, summary)
        print(f"preprocess: {host} of {len(hosts)} hosts summarised {len(summary['files'])} files for the merge")
        return 0
    if not data_files(INPUT / "data"):
        raise FileNotFoundError(f"no CSV or Parquet files under {INPUT / 'data'}")
    with tempfile.TemporaryDirectory(prefix="selfheal-preprocess-") as work:
        write_partial(Path(work), host, hosts, summarise(INPUT / "data", config, Path(work)))
        print(preprocess_here(Path(work), config, OUTPUT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
