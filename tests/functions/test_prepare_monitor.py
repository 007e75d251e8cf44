"""PrepareMonitorFunction: the window of captured traffic to analyse, its files, and the baseline to judge it by."""

from datetime import UTC, datetime, timedelta

import pytest
from selfheal_bench.fixtures.aws import BUCKET, CHURN, KMS_KEY_ARN, event_files, load_event
from selfheal_shared import ledger

MODEL = "churn"
RUN = "artifacts/churn/churn-upload-1a2b3c4d5e6f/preprocess/baseline"
CAPTURE = "capture/churn/selfheal-churn/AllTraffic"
CONSTRAINTS = {"version": 0, "features": [{"name": "tenure_months", "inferred_type": "Integral"}],
               "monitoring_config": {"distribution_constraints": {"comparison_threshold": 0.1,
                                                                  "categorical_comparison_threshold": 0.1}}}
STATISTICS = {"version": 0, "dataset": {"item_count": 100}, "features": []}


@pytest.fixture
def prepare(load_handler, serving_cloud, lambda_context):
    serving_cloud.put_config(MODEL, CHURN | {"monitor": {"drift_threshold": 0.2}})
    handler = load_handler("prepare_monitor").lambda_handler
    return lambda name: handler(load_event("prepare_monitor", name), lambda_context)


PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/selfheal-churn/1"
ARTIFACTS = "artifacts/churn/churn-upload-1a2b3c4d5e6f"
QUALITY_BASELINE = {"problem": "binary", "target": "churned", "labels": ["0", "1"], "features": ["tenure_months"],
                    "calibration": {"method": "none", "maps": []}}


def given_serving(cloud, deployed: datetime, quality_baseline: bool = True) -> None:
    """A model serving since `deployed`, with its baselines from training (drift, and model quality)."""
    ledger.record_endpoint(MODEL, {"outcome": "deployed"}, endpoint_name="selfheal-churn", status="InService",
                           model_package_arn=PACKAGE, run_id="churn-upload-1a2b3c4d5e6f",
                           baseline_uri=f"s3://{BUCKET}/{RUN}", deployed_at=ledger.timestamp(deployed))
    ledger.put_run(MODEL, "churn-upload-1a2b3c4d5e6f", artifacts_uri=f"s3://{BUCKET}/{ARTIFACTS}")
    cloud.put_json(f"{RUN}/statistics.json", STATISTICS)
    cloud.put_json(f"{RUN}/constraints.json", CONSTRAINTS)
    if quality_baseline:
        cloud.put_json(f"{ARTIFACTS}/evaluation/quality_baseline.json", QUALITY_BASELINE)


def given_labels(cloud, moment: datetime, name: str = "labels") -> str:
    key = f"ground-truth/churn/{moment:%Y/%m/%d/%H}/{name}.jsonl"
    cloud.s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"groundTruthData": {}}\n')
    return key


def given_capture(cloud, moment: datetime, name: str = "part") -> str:
    key = f"{CAPTURE}/{moment:%Y/%m/%d/%H}/{moment:%M-%S}-{name}.jsonl"
    cloud.s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"captureData": {}}\n')
    return key


def parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def test_every_sample_event_has_a_test():
    assert set(event_files("prepare_monitor")) == {"scheduled.json", "on_demand.json"}


def test_scheduled(prepare, serving_cloud):
    # Given a model deployed 3 hours ago, with traffic captured before and since
    now = datetime.now(UTC)
    deployed = now - timedelta(hours=3)
    given_serving(serving_cloud, deployed)
    old = given_capture(serving_cloud, deployed - timedelta(hours=5), "old-model")
    buffered = given_capture(serving_cloud, deployed - timedelta(minutes=50), "buffered")
    recent = [given_capture(serving_cloud, now - timedelta(hours=h), f"h{h}") for h in (2, 1, 0)]
    # When the scheduled execution prepares its window
    window = prepare("scheduled.json")
    execution = load_event("prepare_monitor", "scheduled.json")["execution"]

    # Then the window runs from the deployment to now
    assert window["has_data"] is True and window["endpoint_name"] == "selfheal-churn"
    assert window["start"] == ledger.timestamp(deployed)
    assert now <= parse(window["end"]) <= datetime.now(UTC)
    # and its manifest lists the files of the hours it overlaps (and the hour before: capture is buffered)
    work = f"monitoring/churn/{execution}"
    manifest = serving_cloud.read_json(f"{work}/input/capture.manifest")
    assert manifest[0] == {"prefix": f"s3://{BUCKET}/"}
    assert sorted(manifest[1:]) == sorted([buffered, *recent]) and old not in manifest
    assert window["files"] == 4 and window["manifest_uri"] == f"s3://{BUCKET}/{work}/input/capture.manifest"
    # and the baseline is staged with the config's drift threshold
    assert window["baseline_uri"] == f"s3://{BUCKET}/{work}/baseline"
    constraints = serving_cloud.read_json(f"{work}/baseline/constraints.json")
    distribution = constraints["monitoring_config"]["distribution_constraints"]
    assert distribution["comparison_threshold"] == distribution["categorical_comparison_threshold"] == 0.2
    assert serving_cloud.read_json(f"{work}/baseline/statistics.json") == STATISTICS
    # and the job has its report location, code, name prefix and instance type
    assert window["report_uri"] == f"s3://{BUCKET}/{work}/report"
    assert window["code_uri"] == f"s3://{BUCKET}/code/v1" and window["instance_type"] == "ml.m5.large"
    assert window["cluster"] == window["quality_cluster"] == {
        "InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30, "VolumeKmsKeyId": KMS_KEY_ARN}
    assert window["job_prefix"].startswith("churn-") and len(window["job_prefix"]) <= 40


def test_the_quality_window_judges_the_serving_models_predictions_by_every_label_arrived(prepare, serving_cloud):
    # Given a model deployed 3 hours ago, its predictions since, and labels arriving since
    now = datetime.now(UTC)
    deployed = now - timedelta(hours=3)
    given_serving(serving_cloud, deployed)
    predictions = [given_capture(serving_cloud, now - timedelta(hours=h), f"h{h}") for h in (2, 1, 0)]
    stale = given_labels(serving_cloud, deployed - timedelta(hours=2), "before-the-model")
    labels = [given_labels(serving_cloud, now - timedelta(hours=h), f"labels-{h}") for h in (1, 0)]
    # When the window is prepared
    quality = prepare("scheduled.json")["quality"]
    work = f"monitoring/churn/{load_event('prepare_monitor', 'scheduled.json')['execution']}"
    # Then the quality window is the serving model's predictions, judged on the configured metric
    assert quality["has_data"] is True
    assert quality["start"] == ledger.timestamp(deployed)
    assert (quality["metric"], quality["threshold"], quality["label_delay_hours"]) == ("auc", 0.75, 24.0)
    assert quality["model_package_arn"] == PACKAGE
    # and its manifests list those predictions and every label arrived since
    assert serving_cloud.read_json(f"{work}/input/ground-truth.manifest")[1:] == labels and stale not in labels
    assert set(serving_cloud.read_json(f"{work}/input/quality-capture.manifest")[1:]) >= set(predictions)
    # and the serving model's quality baseline is staged for the job
    assert quality["baseline_uri"] == f"s3://{BUCKET}/{work}/quality-baseline"
    assert serving_cloud.read_json(f"{work}/quality-baseline/quality_baseline.json") == QUALITY_BASELINE
    assert quality["report_uri"] == f"s3://{BUCKET}/{work}/quality"
    assert quality["labelled_uri"] == f"s3://{BUCKET}/{work}/labelled"


def test_without_labels_the_quality_job_still_runs_to_estimate(prepare, serving_cloud):
    now = datetime.now(UTC)
    given_serving(serving_cloud, now - timedelta(hours=1))
    given_capture(serving_cloud, now)
    quality = prepare("scheduled.json")["quality"]
    work = f"monitoring/churn/{load_event('prepare_monitor', 'scheduled.json')['execution']}"
    assert quality["has_data"] is True and quality["label_files"] == 0
    (placeholder,) = serving_cloud.read_json(f"{work}/input/ground-truth.manifest")[1:]
    assert serving_cloud.s3.get_object(Bucket=BUCKET, Key=placeholder)["Body"].read() == b""


def test_labels_arriving_after_the_traffic_are_judged_though_no_new_traffic_came(prepare, serving_cloud):
    # Given traffic analysed for drift before, and labels arriving since
    now = datetime.now(UTC)
    given_serving(serving_cloud, now - timedelta(hours=4))
    given_capture(serving_cloud, now - timedelta(hours=3))
    analysed = ledger.timestamp(now - timedelta(minutes=30))
    ledger.put_monitor(MODEL, at=analysed, execution="earlier", status="Completed", window_end=analysed)
    given_labels(serving_cloud, now)
    # Then there is no new traffic to analyse for drift, but the predictions are judged by their labels
    window = prepare("scheduled.json")
    assert window["has_data"] is False and window["quality"]["has_data"] is True
    assert window["quality"]["label_files"] == 1
    assert window["code_uri"] and window["job_prefix"] and window["instance_type"]


def test_a_model_trained_before_quality_monitoring_is_still_monitored_for_drift(prepare, serving_cloud):
    now = datetime.now(UTC)
    given_serving(serving_cloud, now - timedelta(hours=1), quality_baseline=False)
    given_capture(serving_cloud, now)
    window = prepare("scheduled.json")
    assert window["has_data"] is True and window["quality"]["has_data"] is False
    assert "no quality_baseline.json" in window["quality"]["reason"]


def test_on_demand(prepare, serving_cloud):
    # Given a window analysed up to 30 minutes ago, and a later failed execution that analysed nothing
    now = datetime.now(UTC)
    given_serving(serving_cloud, now - timedelta(days=2))
    analysed = ledger.timestamp(now - timedelta(minutes=30))
    ledger.put_monitor(MODEL, at=analysed, execution="earlier", status="Completed", window_end=analysed)
    ledger.put_monitor(MODEL, at=ledger.timestamp(now - timedelta(minutes=10)), execution="failed", status="Failed")
    given_capture(serving_cloud, now)
    # When monitoring runs on demand
    window = prepare("on_demand.json")
    # Then its window starts where the last analysed one ended
    assert window["start"] == analysed and window["has_data"]


def test_no_model_serving(prepare):
    window = prepare("scheduled.json")
    assert window["has_data"] is False and window["reason"] == "no model serves: nothing to monitor"
    assert window["manifest_uri"] is None and window["end"]
    assert window["quality"]["has_data"] is False


def test_no_traffic_in_the_window(prepare, serving_cloud):
    # Given a model deployed an hour ago and captured traffic only from long before
    now = datetime.now(UTC)
    given_serving(serving_cloud, now - timedelta(hours=1))
    given_capture(serving_cloud, now - timedelta(hours=30))
    # Then there is nothing to analyse, and the window is still stated
    window = prepare("scheduled.json")
    assert window["has_data"] is False and window["reason"].startswith("no captured traffic between ")
    assert window["start"] == ledger.timestamp(now - timedelta(hours=1)) and window["files"] == 0


def test_a_window_that_would_be_empty_is_no_data_not_a_failed_job(prepare, serving_cloud):
    # Given the last analysed window ending now or later (a schedule firing as the previous run ended)
    now = datetime.now(UTC)
    given_serving(serving_cloud, now - timedelta(hours=1))
    later = ledger.timestamp(now + timedelta(minutes=5))
    ledger.put_monitor(MODEL, at=later, execution="earlier", status="Completed", window_end=later)
    given_capture(serving_cloud, now)
    # Then nothing is handed to the drift job, whose --start-time must be before --end-time
    window = prepare("scheduled.json")
    assert window["has_data"] is False and window["reason"].startswith("an empty window: nothing since ")
    assert window["start"] == window["end"]


def test_the_window_is_at_most_a_week(prepare, serving_cloud):
    now = datetime.now(UTC)
    given_serving(serving_cloud, now - timedelta(days=30))
    given_capture(serving_cloud, now)
    window = prepare("scheduled.json")
    assert timedelta(days=7) - timedelta(minutes=1) < parse(window["end"]) - parse(window["start"]) <= timedelta(days=7)


def test_a_missing_baseline_is_named(prepare, serving_cloud):
    now = datetime.now(UTC)
    given_serving(serving_cloud, now - timedelta(hours=1))
    serving_cloud.s3.delete_object(Bucket=BUCKET, Key=f"{RUN}/constraints.json")
    given_capture(serving_cloud, now)
    with pytest.raises(Exception, match="no baseline file") as raised:
        prepare("scheduled.json")
    assert type(raised.value).__name__ == "BaselineNotFound"


def test_the_drift_job_runs_on_the_configured_instances_and_the_quality_job_on_one(prepare, serving_cloud):
    # Given a model whose configuration asks for 2 monitoring instances, serving with traffic captured
    now = datetime.now(UTC)
    given_serving(serving_cloud, now - timedelta(hours=1))
    given_capture(serving_cloud, now)
    serving_cloud.put_config(MODEL, CHURN | {"monitor": {"instance_count": 2}})
    # When the window is prepared
    window = prepare("scheduled.json")
    # Then the drift analysis runs on 2 instances; the quality join of predictions and labels on one
    assert window["has_data"] and window["quality"]["has_data"]
    assert (window["cluster"]["InstanceCount"], window["quality_cluster"]["InstanceCount"]) == (2, 1)
