"""Train on several instances: the local cloud's 2-instance training job runs ml/train.py on two hosts, XGBoost's
collective joining them into one model, each host on its shard of the train split (ShardedByS3Key over the files
Preprocess writes, one per instance). The model scores like the one-instance model on the same data."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import xgboost as xgb
from features import FeatureTransform
from selfheal_bench.fixtures import containers
from selfheal_bench.fixtures.containers import BUCKET, jobs, run_job, s3  # noqa: F401 - fixtures
from sklearn.metrics import roc_auc_score

ROWS = 6000  # enough that a model's test AUC moves by less than the tolerance between runs on the same data
AUC_TOLERANCE = 0.01
HYPERPARAMETERS = {"target": "churned", "problem": "binary", "num_round": 200, "early_stopping_rounds": 20,
                   "max_depth": 4, "eta": 0.1}


def training_request(name: str, instances: int) -> dict[str, Any]:
    return containers.training_request(name, instances, HYPERPARAMETERS)


@pytest.fixture
def preprocessed(s3, new_sandbox, dataset, tmp_path) -> Path:  # noqa: F811 - the s3 fixture
    """Preprocess's outputs for 2 training instances, in S3 where Train's channels read them; the code too."""
    prep = new_sandbox(tmp_path / "prep")
    prep.write_json(prep.input("config", "config.json"), {"target": "churned", "problem": "binary",
                                                          "training": {"instance_count": 2}})
    upload = prep.input("data", "upload.csv")
    upload.parent.mkdir(parents=True)
    dataset("binary", rows=ROWS, seed=11).to_csv(upload, index=False)
    prep.process("preprocess.py")
    containers.put_training_inputs(s3, prep.output())
    return prep.output()


def test_the_hosts_are_the_toolkits_and_the_first_in_sorted_order_leads(monkeypatch) -> None:
    import train

    # Given the toolkit's SM_HOSTS and SM_CURRENT_HOST on the second host; Then the first sorted host leads
    monkeypatch.setenv("SM_HOSTS", '["algo-2", "algo-1"]')
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-2")
    hosts = train.job_hosts()
    assert (hosts.first, hosts.is_first, hosts.distributed) == ("algo-1", False, True)
    # and without them (one instance, or a run by hand) there is one host
    monkeypatch.delenv("SM_HOSTS")
    monkeypatch.delenv("SM_CURRENT_HOST")
    assert train.job_hosts() == train.Hosts("algo-1", ["algo-1"])


@pytest.mark.process  # waits out XGBoost's retry back-off: about 20 s
def test_a_worker_that_reaches_the_tracker_before_it_listens_waits_for_it() -> None:
    import socket
    import threading
    import time

    import train
    from xgboost.tracker import RabitTracker

    # Given a tracker that starts listening 6.5 s after its worker first tries it (the first host still reading its
    # shard; XGBoost's own 3 tries give up after 6 s)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started: list[float] = []

    def late_tracker() -> None:
        time.sleep(6.5)
        tracker = RabitTracker(n_workers=1, host_ip="127.0.0.1", port=port, sortby="task", timeout=60)
        tracker.start()
        started.append(time.monotonic())
        tracker.wait_for(60)

    thread = threading.Thread(target=late_tracker, daemon=True)
    thread.start()
    # When the worker joins with train.py's settings
    with xgb.collective.CommunicatorContext(**train.worker_args("127.0.0.1", port, "algo-2")):
        # Then it waited for the tracker and joined it
        assert started and xgb.collective.get_world_size() == 1
    thread.join(60)
    assert not thread.is_alive()


def test_a_two_instance_training_run_scores_within_a_hundredth_of_the_one_instance_model(
        s3, run_job, preprocessed) -> None:  # noqa: F811 - fixtures
    # Given the train split as 2 files (one per instance), the validation split and the transform, in S3
    assert sorted(path.name for path in (preprocessed / "train").iterdir()) == ["train-1-of-2.csv", "train-2-of-2.csv"]
    # When the same training job runs on 1 instance (both files) and on 2 (one file each, XGBoost's collective)
    single = run_job("training", training_request("train-on-one", 1))
    double = run_job("training", training_request("train-on-two", 2))
    assert single.status == double.status == "Completed", (single.failure_reason, double.failure_reason)
    # Then the two hosts trained as one: both joined the collective, and only the first saved the model
    logs = {host.name: host.log.read_text() for host in double.hosts}
    assert "train: worker 0 of 2 on algo-1" in logs["algo-1"] and "train: worker 1 of 2 on algo-2" in logs["algo-2"]
    assert "algo-1 saves the model" in logs["algo-2"]
    # and its model scores within 0.01 AUC of the one-instance model on the same held-out rows
    test_rows = pd.read_csv(preprocessed / "test" / "test.csv")
    auc = {job.name: held_out_auc(model_files(s3, job), test_rows) for job in (single, double)}
    print(f"test AUC: 1 instance {auc['train-on-one']:.4f} ({single.compute_seconds:.1f} s), "
          f"2 instances {auc['train-on-two']:.4f} ({double.compute_seconds:.1f} s)")
    assert auc["train-on-one"] > 0.85
    assert abs(auc["train-on-two"] - auc["train-on-one"]) <= AUC_TOLERANCE, auc


def model_files(s3: Any, job: Any) -> dict[str, bytes]:  # noqa: F811 - the s3 fixture
    body = s3.get_object(Bucket=BUCKET, Key=job.model_artifacts.split("/", 3)[3])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return {member.name: tar.extractfile(member).read()  # type: ignore[union-attr]
                for member in tar.getmembers() if member.isfile()}


def held_out_auc(files: dict[str, bytes], rows: Any) -> float:
    booster = xgb.Booster()
    booster.load_model(bytearray(files["xgboost-model"]))
    transform = FeatureTransform.from_dict(json.loads(files["transform.json"]))
    return float(roc_auc_score(transform.encode_target(rows[transform.target]),
                               booster.inplace_predict(transform.apply(rows))))
