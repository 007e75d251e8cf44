"""RecordRunFunction: every run ends recorded, unlocked, notified, and pending uploads trained next."""

import pytest
from selfheal_bench.fixtures.aws import BUCKET, CHURN, churn_csv, emitted_metrics, event_files, load_event
from selfheal_shared import ledger
from selfheal_shared.runs import maybe_start_run

MODEL = "churn"


@pytest.fixture
def record(load_handler, cloud, lambda_context):
    cloud.put_config(MODEL, CHURN)
    handler = load_handler("record_run").lambda_handler
    return lambda event: handler(event, lambda_context)


def given_running(event: dict) -> None:
    """The run the event reports on, in flight: its RUN item and the model's lock."""
    ledger.put_run(MODEL, event["run_id"], status="RUNNING", trigger="upload", started_at=ledger.timestamp())
    ledger.acquire_lock(MODEL, event["run_id"], ttl_seconds=3600)


def given_registered_package(cloud, approval: str = "Approved") -> str:
    cloud.sagemaker.create_model_package_group(ModelPackageGroupName="selfheal-churn")
    return cloud.sagemaker.create_model_package(
        ModelPackageGroupName="selfheal-churn",
        InferenceSpecification={"Containers": [{"Image": "image", "ModelDataUrl": f"s3://{BUCKET}/m/model.tar.gz"}],
                                "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
        ModelApprovalStatus=approval,
    )["ModelPackageArn"]


def given_upload_waiting(cloud, stamp: str = "20250101T000000000000Z") -> None:
    key = f"datasets/{MODEL}/{stamp}/late.csv"
    cloud.s3.put_object(Bucket=BUCKET, Key=key, Body=churn_csv(60))
    ledger.record_dataset(MODEL, key="incoming/churn/late.csv", version_id="v", rows=60, columns=4, bytes=100,
                          format="csv", s3_uri=f"s3://{BUCKET}/{key}", recorded_at=stamp)


def test_every_sample_event_has_a_test():
    assert set(event_files("record_run")) == {"registered.json", "rejected.json", "failed.json"}


def test_registered(cloud, record, capsys):
    event = load_event("record_run", "registered.json")
    event["model_package_arn"] = given_registered_package(cloud)
    given_running(event)

    result = record(event)

    assert result["lock_released"]
    run = ledger.get_run(MODEL, event["run_id"])
    assert (run["status"], run["decision"], run["model_package_arn"]) == ("SUCCEEDED", "registered",
                                                                         event["model_package_arn"])
    assert run["gate"] == {"passed": True, "reasons": event["gate"]["reasons"]}
    assert run["jobs"] == event["jobs"] and run["ended_at"]
    # A registered package is not the champion until DeployPipeline has it serving
    assert ledger.get_champion(MODEL) is None
    assert ledger.get_lock(MODEL) is None
    [note] = cloud.notifications()
    assert note["event"] == "run.finished" and note["subject"].startswith("selfheal churn: run registered")
    assert note["message"]["decision"] == "registered" and note["message"]["metrics"]["auc"] == 0.91
    assert emitted_metrics(capsys.readouterr().out)["RunsSucceeded"] == [1.0]


def test_rejected(cloud, record, capsys):
    event = load_event("record_run", "rejected.json")
    given_running(event)

    result = record(event)
    assert result["decision"] == "rejected" and result["lock_released"]

    run = ledger.get_run(MODEL, event["run_id"])
    assert run["decision"] == "rejected" and run["gate"]["passed"] is False
    assert ledger.get_champion(MODEL) is None and ledger.get_lock(MODEL) is None
    [note] = cloud.notifications()
    assert note["message"]["gate"]["reasons"] == event["gate"]["reasons"]
    assert emitted_metrics(capsys.readouterr().out)["RunsRejected"] == [1.0]


def test_failed(cloud, record, capsys):
    event = load_event("record_run", "failed.json")
    given_running(event)

    result = record(event)

    run = ledger.get_run(MODEL, event["run_id"])
    assert (run["status"], run["decision"]) == ("FAILED", "failed")
    assert run["error"] == "SageMaker.ResourceLimitExceededException"
    assert run["cause"].startswith("The account-level service limit")
    assert run["jobs"] == {"preprocess": "churn-6f7a8b9c0d1e-prep-0", "train": None, "evaluate": None}
    assert result["lock_released"] and ledger.get_lock(MODEL) is None
    [note] = cloud.notifications()
    assert note["message"]["error"] == "SageMaker.ResourceLimitExceededException"
    assert emitted_metrics(capsys.readouterr().out)["RunsFailed"] == [1.0]


def test_uploads_that_arrived_during_the_run_start_the_next_run(cloud, record):
    event = load_event("record_run", "rejected.json")
    given_running(event)
    given_upload_waiting(cloud)
    waiting = maybe_start_run(MODEL, "upload", "incoming-during-the-run")
    assert not waiting.started and "in flight" in waiting.reason

    result = record(event)

    assert result["next_run"]["started"] and result["next_run"]["run_id"].startswith("churn-upload-")
    assert [e["name"] for e in cloud.executions()] == [result["next_run"]["run_id"]]
    assert ledger.get_lock(MODEL)["run_id"] == result["next_run"]["run_id"]
    assert ledger.unconsumed_datasets(MODEL) == []


def test_with_nothing_new_no_run_follows(cloud, record):
    event = load_event("record_run", "failed.json")
    given_running(event)

    result = record(event)

    assert result["next_run"]["started"] is False and cloud.executions() == []


def test_a_retried_invocation_records_and_notifies_once(cloud, record):
    event = load_event("record_run", "rejected.json")
    given_running(event)

    first, second = record(event), record(event)

    assert first == second
    assert len(cloud.notifications()) == 1


def test_an_execution_started_by_hand_is_recorded_too(cloud, record):
    event = load_event("record_run", "failed.json")

    record(event)

    assert ledger.get_run(MODEL, event["run_id"])["status"] == "FAILED"
