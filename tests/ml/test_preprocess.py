"""Preprocess: uploads → seeded train/validation/test splits, the fitted transform and the monitor's baseline."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from baseline import build_baseline
from features import FeatureTransform
from preprocess import ROWS, Merge, PartialSplitError, encode, merge, summarise, write_partial
from splitting import TEST, TRAIN, VALIDATION


def _encoded(path: Path) -> np.ndarray:
    return pd.read_csv(path, header=None).to_numpy()


def test_labelled_rows_from_every_upload_are_split_70_15_15(binary_model) -> None:
    # Given a CSV and a Parquet upload in nested folders, 20 of 800 rows without a target
    prep = binary_model.prep
    # When Preprocess ran with the default split
    sizes = {
        "train": len(_encoded(prep.output("train", "train.csv"))),
        "validation": len(_encoded(prep.output("validation", "validation.csv"))),
        "test": len(binary_model.test_rows),
    }
    # Then every labelled row lands in exactly one split, in the default proportions
    assert sum(sizes.values()) == 780
    assert sizes["test"] == pytest.approx(0.15 * 780, abs=2)
    assert sizes["validation"] == pytest.approx(0.15 * 780, abs=2)
    assert binary_model.test_rows["churned"].notna().all()
    assert (
        "train=" in binary_model.preprocess_stdout and "20 without 'churned' dropped" in binary_model.preprocess_stdout
    )


def test_classification_splits_are_stratified(multiclass_model) -> None:
    prep = multiclass_model.prep
    overall = multiclass_model.data["tier"].value_counts(normalize=True).sort_index()
    transform = FeatureTransform.load(prep.output("transform", "transform.json"))
    for name in ("train", "validation"):
        labels = pd.Series(_encoded(prep.output(name, f"{name}.csv"))[:, 0]).map(dict(enumerate(transform.labels)))
        assert labels.value_counts(normalize=True).sort_index().to_numpy() == pytest.approx(
            overall.to_numpy(), abs=0.02
        )
    test_share = multiclass_model.test_rows["tier"].value_counts(normalize=True).sort_index()
    assert test_share.to_numpy() == pytest.approx(overall.to_numpy(), abs=0.02)


def test_train_and_validation_are_numeric_target_first_encoded_by_the_train_fit(binary_model) -> None:
    prep = binary_model.prep
    transform = FeatureTransform.load(prep.output("transform", "transform.json"))
    train = _encoded(prep.output("train", "train.csv"))
    validation = _encoded(prep.output("validation", "validation.csv"))
    # No header, all numbers, the target first (class indices), then one column per feature
    for matrix in (train, validation):
        assert np.isfinite(matrix).all()
        assert matrix.shape[1] == 1 + len(transform.features)
        assert set(np.unique(matrix[:, 0])) == {0.0, 1.0}
    # The medians are the train split's own (median imputation leaves a column's median unchanged)
    for position, feature in enumerate(transform.features, start=1):
        if feature.kind == "numeric":
            assert np.median(train[:, position]) == pytest.approx(feature.median, rel=1e-6)
    # Categorical columns hold level codes, -1 for missing
    plan = 1 + transform.feature_names.index("plan")
    assert set(np.unique(train[:, plan])) == {-1.0, 0.0, 1.0, 2.0}


def test_test_rows_are_raw_with_every_original_column(binary_model) -> None:
    test = binary_model.test_rows
    assert list(test.columns) == list(binary_model.data.columns)
    assert set(test["plan"].dropna()) <= {"basic", "plus", "pro"}
    assert set(test["churned"]) == {"yes", "no"}
    # The rows are the original ones, untouched
    merged = test.merge(binary_model.data.dropna(subset=["churned"]), how="left", indicator=True)
    assert (merged["_merge"] == "both").all()


def test_transform_records_the_run_and_the_training_features(binary_model) -> None:
    document = json.loads(binary_model.prep.output("transform", "transform.json").read_text())
    assert (document["target"], document["problem"], document["labels"]) == ("churned", "binary", ["no", "yes"])
    kinds = {feature["name"]: feature["kind"] for feature in document["features"]}
    assert kinds == {
        "age": "numeric",
        "visits": "numeric",
        "income": "numeric",
        "plan": "categorical",
        "region": "categorical",
        "active": "categorical",
    }


def test_baseline_describes_the_raw_training_features_without_the_target(binary_model) -> None:
    baseline = binary_model.prep.output("baseline")
    statistics = json.loads((baseline / "statistics.json").read_text())
    constraints = json.loads((baseline / "constraints.json").read_text())
    features = ["age", "visits", "income", "plan", "region", "active"]
    train_rows = len(_encoded(binary_model.prep.output("train", "train.csv")))
    assert statistics["dataset"]["item_count"] == train_rows
    assert [feature["name"] for feature in statistics["features"]] == features
    assert [feature["name"] for feature in constraints["features"]] == features


@pytest.mark.parametrize("name", ["upload.csv", "upload.csv.gz"])
def test_the_split_is_seeded(multiclass_model, sandbox, name) -> None:
    # Given the same uploads and config again (a .csv.gz upload is its CSV, gzip-compressed)
    sandbox.write_json(sandbox.input("config", "config.json"), multiclass_model.config)
    upload = sandbox.input("data", name)
    upload.parent.mkdir(parents=True)
    multiclass_model.data.to_csv(upload, index=False)
    # When Preprocess runs a second time
    sandbox.process("preprocess.py")
    # Then it produces byte-identical outputs
    for name in ("train/train.csv", "validation/validation.csv", "test/test.csv", "transform/transform.json"):
        assert sandbox.output(name).read_bytes() == multiclass_model.prep.output(name).read_bytes(), name


def test_the_train_split_is_one_file_per_training_instance(multiclass_model, sandbox) -> None:
    # Given the same upload and config, for 3 training instances
    sandbox.write_json(sandbox.input("config", "config.json"),
                       multiclass_model.config | {"training": {"instance_count": 3}})
    upload = sandbox.input("data", "upload.csv")
    upload.parent.mkdir(parents=True)
    multiclass_model.data.to_csv(upload, index=False)
    # When Preprocess runs
    sandbox.process("preprocess.py")
    # Then train/ holds 3 files, one for each instance's ShardedByS3Key share, of nearly equal size, whose rows
    # are exactly the one-instance train split's; validation and test do not change
    shards = sorted(sandbox.output("train").iterdir())
    assert [path.name for path in shards] == [f"train-{i}-of-3.csv" for i in (1, 2, 3)]
    rows = [_encoded(path) for path in shards]
    assert max(map(len, rows)) - min(map(len, rows)) <= 1
    whole = _encoded(multiclass_model.prep.output("train", "train.csv"))
    assert sorted(map(tuple, np.concatenate(rows))) == sorted(map(tuple, whole))
    for name in ("validation/validation.csv", "test/test.csv", "transform/transform.json"):
        assert sandbox.output(name).read_bytes() == multiclass_model.prep.output(name).read_bytes(), name


@pytest.mark.parametrize(("config", "data", "message"), [
    ({"target": "churned", "problem": "binary", "training": {"instance_count": 100}}, 60,
     "training rows cannot be shared by 100 training instances"),
    ({"target": "revenue", "problem": "regression"}, 50, "target column 'revenue' is not in the data"),
], ids=["train split too small for the instances", "target missing from the data"])
def test_data_the_config_cannot_use_fails_the_job_with_a_clear_message(sandbox, dataset, config, data,
                                                                        message) -> None:
    # Given an upload of binary data and a config it does not fit
    sandbox.write_json(sandbox.input("config", "config.json"), config)
    upload = sandbox.input("data", "upload.csv")
    upload.parent.mkdir(parents=True)
    dataset("binary", rows=data).to_csv(upload, index=False)
    # When Preprocess runs, Then the job fails and says why
    run = sandbox.process("preprocess.py", check=False)
    assert run.returncode != 0
    assert message in run.stderr


def iris_like(rare: dict[str, int]) -> pd.DataFrame:
    """150 rows of three classes, plus a few rows of rare classes (a class seen once, twice)."""
    labels = ["setosa"] * 50 + ["versicolor"] * 50 + ["virginica"] * 50
    labels += [name for name, count in rare.items() for _ in range(count)]
    rng = np.random.default_rng(3)
    return pd.DataFrame({"width": rng.normal(size=len(labels)), "species": labels})


def test_a_class_too_rare_for_every_split_is_trained_on_and_the_rest_stay_stratified(tmp_path) -> None:
    # Given a class seen once and one seen twice among three common ones
    files = {"upload.csv": iris_like({"seen-once": 1, "seen-twice": 2})}
    # When it is split for classification
    parts = placed(sharded(tmp_path, files, SPECIES, hosts=1))
    # Then the rare classes are whole in training (never only in the test rows), every row is used once
    counts = {name: part["species"].value_counts().to_dict() for name, part in parts.groupby("part")}
    assert counts["train"]["seen-once"] == 1 and counts["train"]["seen-twice"] == 2
    assert "seen-once" not in counts["test"] and "seen-twice" not in counts["test"]
    assert len(parts) == len(files["upload.csv"])
    # And the common classes are stratified: equal shares in the test and validation rows, to a row
    for part in ("test", "validation"):
        assert [counts[part][name] for name in ("setosa", "versicolor", "virginica")] == [8, 8, 8]
    # And the same input splits the same way again
    assert placed(sharded(tmp_path / "again", files, SPECIES, hosts=1)).equals(parts)


def test_the_transform_records_the_training_rows_of_every_class() -> None:
    frame = iris_like({"seen-once": 1})
    transform = FeatureTransform.fit(frame[frame["species"] != "seen-once"], "species", "multiclass",
                                     labels=sorted(frame["species"].unique()))
    assert transform.label_rows == {"seen-once": 0, "setosa": 50, "versicolor": 50, "virginica": 50}
    assert FeatureTransform.from_dict(transform.to_dict()).label_rows == transform.label_rows


def test_with_labelled_traffic_the_test_rows_are_its_newest_and_the_rest_is_trained_on(tmp_path) -> None:
    # Given an upload and, in a file of its own, labelled traffic oldest first
    rng = np.random.default_rng(5)
    upload = pd.DataFrame({"x": rng.normal(size=300), "y": rng.choice(["a", "b"], 300), "t": -1})
    traffic = pd.DataFrame({"x": rng.normal(size=120), "y": rng.choice(["a", "b"], 120), "t": np.arange(120)})
    first, newest = ("datasets/churn/20260101T000000000000Z/first.csv",
                     "datasets/churn/20260201T000000000000Z/labelled_traffic.csv")
    config = {"target": "y", "problem": "binary", "holdout_datasets": [newest]}
    # When Preprocess splits them, on one host or two, with the run's holdout_datasets
    for hosts in (1, 2):
        parts = placed(sharded(tmp_path / str(hosts), {first: upload, newest: traffic}, config, hosts))
        # Then the test rows are the newest labelled traffic (at least 50 of it), and every other row is trained on
        assert list(parts.loc[parts["part"] == "test", "t"]) == list(range(70, 120))
        assert sorted(parts.loc[parts["part"] != "test", "t"]) == [-1] * 300 + list(range(70))
    # And encoded on two hosts, each part holds the rows one host puts in it
    one, two = (preprocessed(tmp_path / f"encoded-{hosts}", {first: upload, newest: traffic}, config, hosts)
                for hosts in (1, 2))
    assert two["test/test.csv"] == one["test/test.csv"]
    for part in ("train/", "validation/"):
        assert lines(two, part) == lines(one, part) != []
    # And too little labelled traffic is split like any other data
    few = placed(sharded(tmp_path / "few", {first: upload, newest: traffic[110:]}, config, 1))
    assert (few.loc[few["part"] == "test", "t"] < 110).any()


SPECIES = {"target": "species", "problem": "multiclass"}


def sharded(root: Path, files: dict[str, pd.DataFrame], config: dict[str, Any], hosts: int) -> Merge:
    """The files dealt round robin (in name order) to `hosts` hosts, each host's share summarised, then merged."""
    work = root / "partials"
    work.mkdir(parents=True)
    names, host_names = sorted(files), [f"algo-{n}" for n in range(1, hosts + 1)]
    for position, host in enumerate(host_names):
        share = root / host
        share.mkdir()
        for name in names[position::hosts]:
            (share / name).parent.mkdir(parents=True, exist_ok=True)
            files[name].to_csv(share / name, index=False)
        write_partial(work, host, host_names, summarise(share, config, work))
    return Merge(work, config)


def placed(job: Merge) -> pd.DataFrame:
    """Every labelled row, in file order, with the part the merge placed it in."""
    frames = []
    for name in job.names:
        rows, u = job.load(name)
        labels = None if job.problem == "regression" else rows[job.target]
        frames.append(rows.assign(part=pd.Series(job.plan.parts(name, labels, u)).map(PART_NAMES).to_numpy()))
    return pd.concat(frames, ignore_index=True)


PART_NAMES = {TRAIN: "train", VALIDATION: "validation", TEST: "test"}


def uploads(dataset: Callable[..., pd.DataFrame], files: int = 6) -> dict[str, pd.DataFrame]:
    """`files` uploads of 2,400 rows in all, one in 50 unlabelled."""
    data = dataset("multiclass", rows=2400, seed=11)
    data.loc[data.index[::50], "tier"] = None
    return {f"2026/{n:02d}/upload.csv": data.iloc[n::files] for n in range(files)}


def test_a_row_lands_in_the_same_part_on_one_two_or_three_hosts(tmp_path, dataset) -> None:
    # Given six uploads of a window
    files = uploads(dataset)
    # When they are split on one, two and three hosts (each reading its share of the files)
    splits = {hosts: placed(sharded(tmp_path / str(hosts), files, MULTICLASS, hosts)) for hosts in (1, 2, 3)}
    # Then every row is in the same part whatever the number of hosts
    assert splits[1]["part"].value_counts().to_dict() == pytest.approx({"train": 1646, "validation": 353,
                                                                        "test": 353}, abs=3)
    for hosts in (2, 3):
        assert splits[hosts].equals(splits[1]), hosts


def test_the_merged_transform_and_baseline_are_the_ones_fitted_on_every_training_row(tmp_path, dataset) -> None:
    # Given six uploads split on three hosts, each summarising the rows it placed in train
    job = sharded(tmp_path, uploads(dataset), MULTICLASS, hosts=3)
    # When the merge fits the transform and the baseline from the hosts' statistics
    transform, baseline, sizes = job.fit()
    # Then both are what one host fits on the training rows themselves
    train = placed(job).query("part == 'train'").drop(columns=["part"])
    assert sizes[TRAIN] == len(train)
    fitted = FeatureTransform.fit(train, "tier", "multiclass", labels=["high", "low", "mid"])
    assert transform.to_dict() == fitted.to_dict()
    assert baseline == build_baseline(train.drop(columns=["tier"]))


def test_a_host_with_no_files_or_only_unlabelled_rows_changes_nothing(tmp_path, dataset) -> None:
    # Given two uploads and one with no labels at all
    files = uploads(dataset, files=2)
    unlabelled = dataset("multiclass", rows=100, seed=12).assign(tier=None)
    with_unlabelled = files | {"2026/99/unlabelled.csv": unlabelled}
    # When they are split on four hosts (one gets no file, one only the unlabelled rows)
    one = placed(sharded(tmp_path / "one", with_unlabelled, MULTICLASS, hosts=1))
    four = sharded(tmp_path / "four", with_unlabelled, MULTICLASS, hosts=4)
    assert not any((tmp_path / "four" / "algo-4").iterdir())
    assert [path.name for path in (tmp_path / "four" / "algo-3").rglob("*.csv")] == ["unlabelled.csv"]
    assert four.files["2026/99/unlabelled.csv"]["labelled"] == 0
    # Then the split and the fit are those of one host
    assert placed(four).equals(one)
    (transform, baseline, sizes), (transform_one, baseline_one, sizes_one) = four.fit(), sharded(
        tmp_path / "single", with_unlabelled, MULTICLASS, hosts=1).fit()
    assert (transform.to_dict(), baseline, sizes) == (transform_one.to_dict(), baseline_one, sizes_one)


def test_the_merge_refuses_when_a_hosts_share_is_missing(tmp_path, dataset) -> None:
    # Given a split on two hosts whose second host's summary never arrived
    sharded(tmp_path, uploads(dataset, files=2), MULTICLASS, hosts=2)
    (tmp_path / "partials" / "partial-algo-2.pkl").unlink()
    # When the merge runs, Then it refuses, naming the missing host
    missing = r"hosts \['algo-1'\], expected one from each of \['algo-1', 'algo-2'\]"
    with pytest.raises(PartialSplitError, match=missing):
        Merge(tmp_path / "partials", MULTICLASS)


def preprocessed(root: Path, files: dict[str, pd.DataFrame], config: dict[str, Any], hosts: int) -> dict[str, bytes]:
    """Preprocess's three phases on `hosts` hosts: shares summarised, merged on one, the rows files dealt round robin
    in key order (as ShardedByS3Key deals them) to the hosts that encode them; every file written, by name."""
    sharded(root, files, config, hosts)
    output = root / "output"
    _, transform, encoding = merge(root / "partials", config, output)
    rows = sorted((root / "partials" / ROWS).iterdir())
    for position in range(hosts):
        share = root / f"encode-{position + 1}"
        share.mkdir()
        for path in rows[position::hosts]:
            (share / path.name).symlink_to(path)
        encode(encoding, transform, config, share, output, f"algo-{position + 1}" if hosts > 1 else None)
    return {path.relative_to(output).as_posix(): path.read_bytes() for path in sorted(output.rglob("*"))
            if path.is_file()}


def lines(written: dict[str, bytes], prefix: str, suffix: str = "") -> list[bytes]:
    """The encoded rows of every file named prefix*suffix, in sorted order (whichever host wrote them)."""
    return sorted(line for name, content in written.items() if name.startswith(prefix) and name.endswith(suffix)
                  for line in content.splitlines())


def test_uploads_with_different_columns_encoded_on_two_hosts_give_one_host_s_rows(tmp_path, dataset) -> None:
    # Given two uploads, the newer without the region column (a file pandas would fill with missing values)
    files = uploads(dataset, files=2)
    files["2026/01/upload.csv"] = files["2026/01/upload.csv"].drop(columns=["region"])
    config = MULTICLASS | {"training": {"instance_count": 2}}
    # When Preprocess runs on one host and on two (each summarising, then encoding, one upload)
    one, two = (preprocessed(tmp_path / str(hosts), files, config, hosts) for hosts in (1, 2))
    # Then the merge's outputs are the same bytes, and each part the same encoded rows: train-i of one host is
    # train-*-i of the two, so each training instance gets the same rows
    assert sorted(one) == ["baseline/constraints.json", "baseline/statistics.json", "test/test.csv",
                           "train/train-1-of-2.csv", "train/train-2-of-2.csv", "transform/transform.json",
                           "validation/validation.csv"]
    assert sorted(two) == ["baseline/constraints.json", "baseline/statistics.json", "test/test.csv",
                           "train/train-algo-1-1-of-2.csv", "train/train-algo-1-2-of-2.csv",
                           "train/train-algo-2-1-of-2.csv", "train/train-algo-2-2-of-2.csv",
                           "transform/transform.json", "validation/validation-algo-1.csv",
                           "validation/validation-algo-2.csv"]
    for name in ("baseline/constraints.json", "baseline/statistics.json", "test/test.csv", "transform/transform.json"):
        assert two[name] == one[name], name
    for shard in ("1-of-2.csv", "2-of-2.csv"):
        assert lines(two, "train/", shard) == lines(one, "train/", shard) != []
    assert lines(two, "validation/") == lines(one, "validation/") != []
    # And the missing region is encoded as missing (-1) in the newer rows
    transform = FeatureTransform.loads(one["transform/transform.json"])
    region = 1 + transform.feature_names.index("region")
    train = np.concatenate([_encoded(tmp_path / "1" / "output" / "train" / name)
                            for name in ("train-1-of-2.csv", "train-2-of-2.csv")])
    assert (train[:, region] == -1).sum() >= 0.45 * len(train)


def test_an_encoding_host_with_no_rows_files_writes_empty_files_that_keep_the_deal_aligned(tmp_path, dataset) -> None:
    # Given one upload preprocessed on three hosts for two training instances
    written = preprocessed(tmp_path, uploads(dataset, files=1), MULTICLASS | {"training": {"instance_count": 2}}, 3)
    # Then the hosts that got no rows file wrote every training instance's file, empty, so that a deal of the
    # objects in key order still gives each training instance its own rows
    assert [name for name, content in written.items() if name.startswith("train/") and not content] == [
        "train/train-algo-2-1-of-2.csv", "train/train-algo-2-2-of-2.csv",
        "train/train-algo-3-1-of-2.csv", "train/train-algo-3-2-of-2.csv"]
    assert written["train/train-algo-1-1-of-2.csv"] and written["train/train-algo-1-2-of-2.csv"]


def test_encoding_refuses_a_rows_file_the_merge_did_not_plan(tmp_path, dataset) -> None:
    # Given a merged split, and a rows file from another run among a host's share
    sharded(tmp_path, uploads(dataset, files=2), MULTICLASS, hosts=1)
    _, transform, encoding = merge(tmp_path / "partials", MULTICLASS, tmp_path / "output")
    stray = tmp_path / "partials" / ROWS / "rows-000000000000000000000000.pkl"
    stray.write_bytes(b"")
    # When the host encodes, Then it refuses, naming the file
    with pytest.raises(PartialSplitError, match="rows files the merge did not plan: rows-0+\\.pkl"):
        encode(encoding, transform, MULTICLASS, tmp_path / "partials" / ROWS, tmp_path / "output", "algo-1")


MULTICLASS = {"target": "tier", "problem": "multiclass"}
