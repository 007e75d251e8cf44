"""Every path through TrainingPipeline, on the local cloud, as an MLOps engineer would check them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from selfheal_bench.datagen import CHURN_CONFIG
from selfheal_bench.localcloud import LocalCloud
from selfheal_bench.report import build_report, ledger_items

ROOT = Path(__file__).resolve().parents[2]
DEPLOYED_PATH = ["Preprocess", "MergePreprocess?", "Train", "Evaluate", "Gate", "GateChoice", "Register",
                 "ApprovalChoice", "Deploy", "DeployOutcome", "RecordDeployed"]


def s3_json(cloud: LocalCloud, uri: str) -> dict:
    bucket, key = uri[5:].split("/", 1)
    return json.loads(cloud.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def keys(cloud: LocalCloud, prefix: str) -> list[str]:
    listed = cloud.client("s3").list_objects_v2(Bucket=cloud.bucket, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def upload_and_wait(cloud: LocalCloud, csv: Path, config: dict | None = None) -> dict:
    cloud.put_model_config("churn", config or CHURN_CONFIG)
    cloud.upload("churn", csv)
    cloud.wait_idle()
    return build_report(cloud, ["churn"])


def test_an_upload_is_trained_gated_registered_and_deployed_with_metrics_the_script_reproduces(
        cloud, churn_csv, tmp_path):
    # Given a model configuration and a labelled dataset
    # When the dataset lands in incoming/
    result = upload_and_wait(cloud, churn_csv)

    # Then one run went the whole way: an approved model package, registered and deployed
    (run,) = result["runs"]
    assert run["status"] == "SUCCEEDED" and run["decision"] == "deployed", run
    assert run["states"] == DEPLOYED_PATH
    assert run["trigger"] == "upload" and run["gate"]["passed"] is True and run["gate"]["reasons"]
    assert run["metrics"]["auc"] >= 0.75
    package = cloud.client("sagemaker").describe_model_package(ModelPackageName=run["model_package_arn"])
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ModelPackageGroupName"] == "selfheal-churn"
    evaluation_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]

    # And the metrics are what evaluate.py gives when run by hand on the same model and test rows
    artifacts = f"artifacts/churn/{run['run_id']}"
    sandbox = tmp_path / "by-hand" / "opt_ml"
    inputs = sandbox / "processing" / "input"
    for name, key in [("model", package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"].split("/", 3)[3]),
                      ("test", f"{artifacts}/preprocess/test/test.csv"),
                      ("config", f"{artifacts}/input/config.json"),
                      ("champion", f"{artifacts}/champion/champion.json")]:
        (inputs / name).mkdir(parents=True, exist_ok=True)
        cloud.client("s3").download_file(cloud.bucket, key, str(inputs / name / Path(key).name))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"SELFHEAL_OPT_ML": str(sandbox)}
    subprocess.run([sys.executable, str(ROOT / "ml" / "evaluate.py")], env=env, check=True, capture_output=True)
    by_hand = json.loads((sandbox / "processing/output/evaluation/evaluation.json").read_text())
    assert by_hand == s3_json(cloud, evaluation_uri)
    assert by_hand["selfheal"]["challenger"]["auc"] == pytest.approx(run["metrics"]["auc"])

    # And the dataset is recorded as consumed by that run, and the code version is on the run
    (dataset,) = ledger_items(cloud, "churn", "DATASET#")
    assert dataset["consumed_by"] == run["run_id"] and dataset["rows"] == 1500
    assert keys(cloud, "incoming/") == []


def test_a_model_below_the_threshold_is_rejected_with_reasons_and_not_registered(cloud, churn_csv, inbox):
    # Given a threshold no model reaches on this data
    config = CHURN_CONFIG | {"metric": {"name": "auc", "threshold": 0.999}}
    # When a dataset is uploaded
    result = upload_and_wait(cloud, churn_csv, config)
    # Then the run ends rejected: gate failed with its reasons, nothing registered
    (run,) = result["runs"]
    assert run["status"] == "SUCCEEDED" and run["decision"] == "rejected"
    assert run["states"][-1] == "RecordRejected" and "Register" not in run["states"]
    assert run["gate"]["passed"] is False
    assert any("0.999" in reason for reason in run["gate"]["reasons"]), run["gate"]
    assert run["model_package_arn"] is None
    assert _packages(cloud) == []
    assert any("rejected" in json.dumps(message) for message in inbox.read())


def _packages(cloud: LocalCloud) -> list[dict]:
    sagemaker = cloud.client("sagemaker")
    groups = sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    if not any(group["ModelPackageGroupName"] == "selfheal-churn" for group in groups):
        return []
    return sagemaker.list_model_packages(ModelPackageGroupName="selfheal-churn")["ModelPackageSummaryList"]


def test_a_training_job_that_loses_its_capacity_is_retried_and_the_run_recovers(cloud, churn_csv):
    # Given SageMaker has no capacity for the first training job
    cloud.faults.add("job:training", "capacity", times=1)
    # When a dataset is uploaded
    result = upload_and_wait(cloud, churn_csv)
    # Then the Train state retried with a new job name, and the run registered a model
    (run,) = result["runs"]
    assert run["decision"] == "deployed", run
    jobs = {name: job for name, job in cloud.jobs.jobs.items() if job.kind == "training"}
    statuses = sorted((name.rsplit("-", 1)[-1], job.status) for name, job in jobs.items())
    assert statuses == [("0", "Failed"), ("1", "Completed")]
    assert "CapacityError" in next(job.failure_reason for job in jobs.values() if job.status == "Failed")


def test_a_training_failure_that_outlasts_the_retries_fails_the_run_recorded_and_notified(cloud, churn_csv, inbox):
    # Given the training algorithm fails every time
    cloud.faults.add("job:training", "algorithm", times=None)
    # When a dataset is uploaded
    result = upload_and_wait(cloud, churn_csv)
    # Then the execution fails with the cause, the ledger says why, and the operators are told
    (run,) = result["runs"]
    assert run["status"] == "FAILED" and run["decision"] == "failed"
    assert run["states"][-2:] == ["RecordFailure", "Failed"]
    assert "AlgorithmError" in (run["cause"] or "")
    (item,) = ledger_items(cloud, "churn", "RUN#")
    assert item["status"] == "FAILED" and "AlgorithmError" in json.dumps(item)
    assert any("AlgorithmError" in json.dumps(message) for message in inbox.read())
    # And the model's lock is released: the next upload can train
    assert ledger_items(cloud, "churn", "LOCK") == []


def test_a_duplicate_upload_event_starts_no_second_run(cloud, churn_csv):
    # Given an upload whose event was delivered and handled
    upload_and_wait(cloud, churn_csv)
    # When EventBridge delivers the same event again (at-least-once delivery)
    cloud.redeliver(-1)
    cloud.redeliver(-1)
    cloud.wait_idle()
    # Then there is still exactly one run and one dataset
    assert len(build_report(cloud, ["churn"])["runs"]) == 1
    assert len(ledger_items(cloud, "churn", "DATASET#")) == 1


def _csv(text: str) -> bytes:
    return text.encode()


BAD_UPLOADS = {
    "empty.csv": b"",
    "header_only.csv": b"tenure_months,monthly_charges,churned\n",
    "binary.csv": bytes(range(256)) * 8,
    "latin1.csv": b"plan,churned\n" + "caf\xe9,1\n".encode("latin-1") * 60,
    "no_target.csv": _csv("a,b\n" + "1,2\n" * 100),
    "too_few_rows.csv": _csv("a,churned\n" + "1,0\n1,1\n"),
    "duplicate_columns.csv": _csv("a,a,churned\n" + "1,2,0\n1,3,1\n" * 50),
    "formula.csv": _csv("a,churned\n" + "=HYPERLINK(\"http://x\"),1\n" + "1,0\n" * 100),
    "notes.txt": _csv("hello"),
}


@pytest.mark.parametrize("name", sorted(BAD_UPLOADS))
def test_a_bad_upload_is_quarantined_with_its_reason_and_the_original_kept(cloud, name):
    # Given a model that is configured
    cloud.put_model_config("churn", CHURN_CONFIG)
    # When a bad file lands in incoming/
    cloud.client("s3").put_object(Bucket=cloud.bucket, Key=f"incoming/churn/{name}", Body=BAD_UPLOADS[name])
    cloud.wait_idle()
    # Then it is moved to quarantine/ byte for byte, with a reason document beside it, and no run starts
    result = build_report(cloud, ["churn"])
    assert result["runs"] == []
    (entry,) = result["quarantined"]
    assert entry["key"] == f"incoming/churn/{name}" and entry["reason"]
    kept = [key for key in keys(cloud, "quarantine/churn/") if key.endswith(name)]
    assert len(kept) == 1
    body = cloud.client("s3").get_object(Bucket=cloud.bucket, Key=kept[0])["Body"].read()
    assert body == BAD_UPLOADS[name]
    reason = s3_json(cloud, f"s3://{cloud.bucket}/{kept[0]}.reason.json")
    assert reason["reason"] == entry["reason"]
    assert keys(cloud, "incoming/") == []


def test_an_upload_for_a_model_without_configuration_is_quarantined(cloud, churn_csv):
    cloud.upload("unknown", churn_csv)
    cloud.wait_idle()
    (entry,) = build_report(cloud, ["unknown"])["quarantined"]
    assert "configuration" in entry["reason"].lower()


def test_a_parquet_upload_trains_like_a_csv(cloud, churn_csv, tmp_path):
    import pandas as pd

    parquet = tmp_path / "churn.parquet"
    pd.read_csv(churn_csv).to_parquet(parquet)
    result = upload_and_wait(cloud, parquet)
    (run,) = result["runs"]
    assert run["decision"] == "deployed", run
