"""Starting a run (docs/architecture.md, "Starting a run"): policy, lock, window, inputs, execution."""

import json

import pytest
from selfheal_bench.fixtures.aws import BUCKET, CHURN, CODE_VERSION, KMS_KEY_ARN, PIPELINE_ARN, churn_csv
from selfheal_shared import ledger
from selfheal_shared.names import run_id_for
from selfheal_shared.runs import maybe_start_run

MODEL = "churn"


def given_dataset(cloud, stamp: str, rows: int = 100, model: str = MODEL) -> dict:
    key = f"datasets/{model}/{stamp}/upload.csv"
    cloud.s3.put_object(Bucket=BUCKET, Key=key, Body=churn_csv(rows))
    return ledger.record_dataset(model, key=f"incoming/{model}/upload.csv", version_id="v", rows=rows, columns=4,
                                 bytes=1000, format="csv", s3_uri=f"s3://{BUCKET}/{key}", recorded_at=stamp)


def test_an_upload_starts_a_run_with_everything_the_pipeline_reads(cloud):
    cloud.put_config(MODEL, {**CHURN, "hyperparameters": {"num_round": 200, "eta": 0.1,
                                                          "objective": "binary:logistic"}})
    dataset = given_dataset(cloud, "20250101T000000000000Z")

    decision = maybe_start_run(MODEL, "upload", "bucket/incoming/churn/upload.csv/v")

    run_id = run_id_for(MODEL, "upload", "bucket/incoming/churn/upload.csv/v")
    assert decision.started and decision.run_id == run_id
    [execution] = cloud.executions()
    assert execution["name"] == run_id
    pipeline = cloud.execution_input(run_id)
    artifacts = f"artifacts/{MODEL}/{run_id}"
    assert pipeline["artifacts_uri"] == f"s3://{BUCKET}/{artifacts}"
    assert pipeline["code_uri"] == f"s3://{BUCKET}/code/{CODE_VERSION}"
    assert pipeline["champion"] is None and pipeline["trigger"] == "upload" and pipeline["bucket"] == BUCKET
    assert len(pipeline["job_prefix"]) <= 40 and pipeline["job_prefix"].startswith("churn-")
    assert pipeline["training"] == {
        "hyperparameters": {
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": '"/opt/ml/input/data/code/sourcedir.tar.gz"',
            "sagemaker_region": '"us-east-1"',
            "target": '"churned"', "problem": '"binary"',
            "num_round": "200", "eta": "0.1", "objective": '"binary:logistic"',
        },
        "spot": False,
        "stopping_condition": {"MaxRuntimeInSeconds": 3600},
        "instance_type": "ml.m5.xlarge",
        "processing_instance_type": "ml.m5.large",
        # each job's compute, volumes under the project's key (selfheal_shared.instances)
        "resource_config": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30,
                            "VolumeKmsKeyId": KMS_KEY_ARN},
        "processing_cluster": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30,
                               "VolumeKmsKeyId": KMS_KEY_ARN},
        "evaluation_cluster": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30,
                               "VolumeKmsKeyId": KMS_KEY_ARN},
    }
    assert cloud.read_json(f"{artifacts}/input/config.json") == pipeline["config"] | {"holdout_datasets": []}
    assert cloud.read_json(f"{artifacts}/input/datasets.manifest") == [
        {"prefix": f"s3://{BUCKET}/"}, "datasets/churn/20250101T000000000000Z/upload.csv"]
    assert cloud.read_json(f"{artifacts}/champion/champion.json") is None
    assert cloud.keys(f"{artifacts}/champion/") == [f"{artifacts}/champion/champion.json"]
    run = ledger.get_run(MODEL, run_id)
    assert run["status"] == "RUNNING" and run["datasets"] == [dataset["s3_uri"]] and run["started_at"]
    assert ledger.unconsumed_datasets(MODEL) == []
    assert ledger.get_lock(MODEL)["run_id"] == run_id


def test_the_configured_instance_counts_size_train_and_preprocess_but_evaluate_runs_on_one(cloud):
    # Given a model configured for 3 training instances and 2 preprocessing instances
    cloud.put_config(MODEL, {**CHURN, "training": {"instance_count": 3, "processing_instance_count": 2}})
    given_dataset(cloud, "20250101T000000000000Z")
    # When an upload starts a run
    run_id = maybe_start_run(MODEL, "upload", "cause-1").run_id
    # Then Train runs on 3 instances and Preprocess on 2; Evaluate scores champion and challenger on one
    training = cloud.execution_input(run_id)["training"]
    counts = {name: training[name]["InstanceCount"]
              for name in ("resource_config", "processing_cluster", "evaluation_cluster")}
    assert counts == {"resource_config": 3, "processing_cluster": 2, "evaluation_cluster": 1}


def test_the_same_cause_twice_starts_one_execution(cloud):
    cloud.put_config(MODEL, CHURN)
    given_dataset(cloud, "20250101T000000000000Z")

    first = maybe_start_run(MODEL, "upload", "cause-1")
    second = maybe_start_run(MODEL, "upload", "cause-1")

    assert first.started and second.started and first.run_id == second.run_id
    assert len(cloud.executions()) == 1


def test_min_new_rows_records_without_starting_until_enough_rows_arrived(cloud):
    cloud.put_config(MODEL, {**CHURN, "trigger": {"mode": "min_new_rows", "min_new_rows": 150}})
    given_dataset(cloud, "20250101T000000000000Z", rows=100)

    waiting = maybe_start_run(MODEL, "upload", "cause-1")

    assert not waiting.started and "100 new rows" in waiting.reason and "150" in waiting.reason
    assert cloud.executions() == [] and ledger.get_lock(MODEL) is None
    assert len(ledger.unconsumed_datasets(MODEL)) == 1

    given_dataset(cloud, "20250102T000000000000Z", rows=60)
    started = maybe_start_run(MODEL, "upload", "cause-2")

    assert started.started and len(cloud.executions()) == 1
    assert ledger.unconsumed_datasets(MODEL) == []
    assert len(cloud.read_json(f"artifacts/{MODEL}/{started.run_id}/input/datasets.manifest")) == 3


def test_while_a_run_holds_the_lock_nothing_starts_and_datasets_stay_unconsumed(cloud):
    cloud.put_config(MODEL, CHURN)
    given_dataset(cloud, "20250101T000000000000Z")
    ledger.acquire_lock(MODEL, "churn-upload-000000000000", ttl_seconds=3600)

    decision = maybe_start_run(MODEL, "upload", "cause-1")

    assert not decision.started and "churn-upload-000000000000 is in flight" in decision.reason
    assert cloud.executions() == []
    assert len(ledger.unconsumed_datasets(MODEL)) == 1
    assert ledger.get_run(MODEL, run_id_for(MODEL, "upload", "cause-1")) is None


def test_a_lock_held_by_an_execution_that_ended_without_recording_is_taken_over(cloud):
    cloud.put_config(MODEL, CHURN)
    given_dataset(cloud, "20250101T000000000000Z")
    stopped = cloud.sfn.start_execution(stateMachineArn=PIPELINE_ARN, name="churn-upload-0000deadbeef", input="{}")
    cloud.sfn.stop_execution(executionArn=stopped["executionArn"])
    ledger.acquire_lock(MODEL, "churn-upload-0000deadbeef", ttl_seconds=3600)

    decision = maybe_start_run(MODEL, "upload", "cause-1")

    assert decision.started and ledger.get_lock(MODEL)["run_id"] == decision.run_id


def test_a_champion_is_handed_to_the_run_with_a_copy_of_its_model(cloud):
    cloud.put_config(MODEL, CHURN)
    given_dataset(cloud, "20250101T000000000000Z")
    cloud.s3.put_object(Bucket=BUCKET, Key="artifacts/churn/old/model/job/output/model.tar.gz", Body=b"tarball")
    champion = {"model_package_arn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/selfheal-churn/1",
                "run_id": "old", "model_data_url": f"s3://{BUCKET}/artifacts/churn/old/model/job/output/model.tar.gz"}
    ledger.set_champion(MODEL, **champion, metrics={"auc": 0.8})

    decision = maybe_start_run(MODEL, "upload", "cause-1")

    artifacts = f"artifacts/{MODEL}/{decision.run_id}/champion"
    assert cloud.execution_input(decision.run_id)["champion"] == champion
    assert cloud.read_json(f"{artifacts}/champion.json") == champion
    assert cloud.s3.get_object(Bucket=BUCKET, Key=f"{artifacts}/model.tar.gz")["Body"].read() == b"tarball"


def test_spot_training_adds_max_wait_to_the_stopping_condition(cloud):
    cloud.put_config(MODEL, {**CHURN, "training": {"spot": {"enabled": True, "max_runtime_seconds": 1800,
                                                            "max_wait_seconds": 5400}}})
    given_dataset(cloud, "20250101T000000000000Z")

    decision = maybe_start_run(MODEL, "upload", "cause-1")

    training = cloud.execution_input(decision.run_id)["training"]
    assert training["spot"] is True
    assert training["stopping_condition"] == {"MaxRuntimeInSeconds": 1800, "MaxWaitTimeInSeconds": 5400}


@pytest.mark.parametrize(("window", "expected"), [
    ({"mode": "all"}, ["a", "b", "c"]),
    ({"mode": "latest"}, ["c"]),
    ({"mode": "last_n", "last_n": 2}, ["b", "c"]),
])
def test_the_training_window_picks_the_datasets(cloud, window, expected):
    cloud.put_config(MODEL, {**CHURN, "training": {"window": window}})
    for day, name in enumerate("abc", start=1):
        key = f"datasets/{MODEL}/2025010{day}T000000000000Z/{name}.csv"
        ledger.record_dataset(MODEL, key=f"incoming/churn/{name}.csv", version_id="v", rows=10, columns=4, bytes=1,
                              format="csv", s3_uri=f"s3://{BUCKET}/{key}", recorded_at=f"2025010{day}T000000000000Z")

    decision = maybe_start_run(MODEL, "upload", "cause-1")

    manifest = cloud.read_json(f"artifacts/{MODEL}/{decision.run_id}/input/datasets.manifest")
    assert [key.rpartition("/")[2] for key in manifest[1:]] == [f"{name}.csv" for name in expected]
    assert ledger.unconsumed_datasets(MODEL) == []  # superseded datasets are consumed too


def test_nothing_new_means_no_upload_run_but_drift_retrains_on_the_window(cloud):
    cloud.put_config(MODEL, {**CHURN, "retrain": {"window": {"mode": "latest"}}})
    given_dataset(cloud, "20250101T000000000000Z")
    ledger.mark_consumed(MODEL, [d["sk"] for d in ledger.list_datasets(MODEL)], "earlier-run")

    assert not maybe_start_run(MODEL, "upload", "after:earlier-run").started
    drift = maybe_start_run(MODEL, "drift", "monitor-execution-1")

    assert drift.started and drift.run_id.startswith("churn-drift-")
    assert len(cloud.read_json(f"artifacts/{MODEL}/{drift.run_id}/input/datasets.manifest")) == 2


def given_labelled_traffic(stamp: str, package: str) -> dict:
    key = f"datasets/{MODEL}/{stamp}/labelled_traffic.csv"
    return ledger.record_dataset(MODEL, key=f"monitoring/{MODEL}/monitor-{stamp}/labelled/labelled_traffic.csv",
                                 version_id=None, rows=300, columns=9, bytes=1, format="csv",
                                 s3_uri=f"s3://{BUCKET}/{key}", recorded_at=stamp, source="labelled_traffic",
                                 model_package_arn=package, execution=f"monitor-{stamp}")


def test_a_quality_retrain_trains_on_the_window_and_the_newest_labelled_traffic_and_tests_on_it(cloud):
    # Given an upload, and labelled traffic joined twice for the serving model (the newer holds the older's rows)
    cloud.put_config(MODEL, {**CHURN, "retrain": {"window": {"mode": "all"}}})
    given_dataset(cloud, "20250101T000000000000Z")
    given_labelled_traffic("20250102T000000000000Z", "package/1")
    newest = given_labelled_traffic("20250103T000000000000Z", "package/1")
    # When the quality monitor retrains
    decision = maybe_start_run(MODEL, "quality", "monitor-execution-2")
    # Then the run trains on the upload and the newest labelled traffic only
    inputs = f"artifacts/{MODEL}/{decision.run_id}/input"
    manifest = cloud.read_json(f"{inputs}/datasets.manifest")
    assert manifest[1:] == [f"datasets/{MODEL}/20250101T000000000000Z/upload.csv", newest["s3_uri"].split("/", 3)[3]]
    # and Preprocess is told which of them is labelled traffic, to test on its newest rows
    assert cloud.read_json(f"{inputs}/config.json")["holdout_datasets"] == [manifest[2]]
    assert ledger.get_run(MODEL, decision.run_id)["trigger"] == "quality"


def test_labelled_traffic_of_an_earlier_serving_model_is_kept_beside_the_new(cloud):
    cloud.put_config(MODEL, {**CHURN, "retrain": {"window": {"mode": "all"}}})
    given_labelled_traffic("20250102T000000000000Z", "package/1")
    given_labelled_traffic("20250103T000000000000Z", "package/2")
    decision = maybe_start_run(MODEL, "quality", "monitor-execution-3")
    assert len(cloud.read_json(f"artifacts/{MODEL}/{decision.run_id}/input/datasets.manifest")) == 3


def test_no_configuration_means_no_run_with_the_reason(cloud):
    given_dataset(cloud, "20250101T000000000000Z")

    decision = maybe_start_run(MODEL, "upload", "cause-1")

    assert not decision.started and "no configuration" in decision.reason
    assert cloud.executions() == []


def test_a_finished_run_is_not_started_again(cloud):
    cloud.put_config(MODEL, CHURN)
    given_dataset(cloud, "20250101T000000000000Z")
    first = maybe_start_run(MODEL, "upload", "cause-1")
    ledger.update_run(MODEL, first.run_id, status="SUCCEEDED")
    ledger.release_lock(MODEL, first.run_id)

    again = maybe_start_run(MODEL, "upload", "cause-1")

    assert not again.started and "already ended (SUCCEEDED)" in again.reason
    assert json.loads(json.dumps(again.as_dict()))["run_id"] == first.run_id
