"""RecordDeploymentFunction: every rollout ends recorded; a deployed model serves, scales, and is monitored."""

import json

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from selfheal_bench.fixtures.aws import BUCKET, CHURN, REGION, emitted_metrics, event_files, load_event
from selfheal_bench.fixtures.serving import (
    MONITOR_PIPELINE_ARN,
    SCHEDULE_GROUP,
    SCHEDULER_ROLE_ARN,
    given_endpoint,
    given_package,
)
from selfheal_shared import aws, ledger

MODEL = "churn"
MODEL_DATA = f"s3://{BUCKET}/artifacts/churn/churn-drift-9f8e7d6c5b4a/model/job/output/model.tar.gz"
CONFIG = CHURN | {"deploy": {"autoscaling": {"min_capacity": 1, "max_capacity": 4,
                                             "target_invocations_per_instance": 250}},
                  "monitor": {"schedule_expression": "rate(30 minutes)"}}


@pytest.fixture
def record(load_handler, serving_cloud, lambda_context):
    """record(event file) with the event's package registered and its run in the ledger."""
    serving_cloud.put_config(MODEL, CONFIG)
    handler = load_handler("record_deployment").lambda_handler

    def run(name: str, **overrides) -> tuple[dict, dict]:
        event = load_event("record_deployment", name) | overrides
        return event, handler(event, lambda_context)

    return run


@pytest.fixture
def package(serving_cloud) -> str:
    arn = given_package(serving_cloud, run_id="churn-drift-9f8e7d6c5b4a", model_data_url=MODEL_DATA)
    ledger.put_run(MODEL, "churn-drift-9f8e7d6c5b4a", status="RUNNING", trigger="drift",
                   metrics={"auc": 0.91, "accuracy": 0.86}, started_at=ledger.timestamp())
    return arn


def endpoint_item() -> dict:
    return ledger.get_endpoint(MODEL)


def failing_update(reason: str):
    """DescribeEndpoint as SageMaker answers after it rolled an update back."""

    def describe(params, **_):
        return AWSResponse(params["url"], 200, {}, None), {
            "EndpointName": "selfheal-churn", "EndpointStatus": "InService",
            "EndpointConfigName": "selfheal-churn-1a2b3c4d5e6f", "FailureReason": reason}

    aws.client("sagemaker").meta.events.register("before-call.sagemaker.DescribeEndpoint", describe)


def autoscaling_refuses(operation: str) -> None:
    """Application Auto Scaling refusing as it does when the caller lacks a permission it checks on its behalf
    ("Permissions validation for API calls on target resources": a ValidationException naming it)."""

    def refuse(params, **_):
        return AWSResponse(params["url"], 400, {}, None), {
            "Error": {"Code": "ValidationException",
                      "Message": "Unable to create alarms: missing permission cloudwatch:PutMetricAlarm"},
            "ResponseMetadata": {"HTTPStatusCode": 400}}

    scaling = aws.client("application-autoscaling")
    scaling.meta.events.register(f"before-call.application-autoscaling.{operation}", refuse)


def test_every_sample_event_has_a_test():
    assert set(event_files("record_deployment")) == {"deployed.json", "rolled_back_by_alarm.json",
                                                     "smoke_test_failed.json", "prepare_failed.json"}


def test_deployed(record, package, serving_cloud, capsys):
    # Given a package now serving on the endpoint
    given_endpoint(serving_cloud, config="selfheal-churn-9f8e7d6c5b4a")
    # When its deployment is recorded
    event, result = record("deployed.json", model_package_arn=package)

    # Then the ENDPOINT item names it, with its config, baseline and schedule, and the rollout in its history
    assert result["outcome"] == "deployed" and result["reason"] is None
    item = endpoint_item()
    assert (item["model_package_arn"], item["run_id"], item["status"]) == (package, event["run_id"], "InService")
    assert item["endpoint_config"] == "selfheal-churn-9f8e7d6c5b4a"
    assert item["baseline_uri"] == event["deploy"]["baseline_uri"] and item["deployed_at"]
    (entry,) = item["history"]
    assert (entry["outcome"], entry["model_package_arn"], entry["execution"]) == ("deployed", package,
                                                                                  event["execution"])
    # and the package is the CHAMPION, with the run's metrics, its model data and its baseline
    champion = ledger.get_champion(MODEL)
    assert champion["model_package_arn"] == package and champion["metrics"] == {"auc": 0.91, "accuracy": 0.86}
    assert champion["model_data_url"] == MODEL_DATA and champion["baseline_uri"] == event["deploy"]["baseline_uri"]
    # and the run's decision is deployed
    assert ledger.get_run(MODEL, event["run_id"])["decision"] == "deployed"
    # and the variant autoscales on invocations per instance within the config's bounds
    scaling = boto3.client("application-autoscaling", region_name=REGION)
    (target,) = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["ResourceId"], target["MinCapacity"], target["MaxCapacity"]) == (
        "endpoint/selfheal-churn/variant/AllTraffic", 1, 4)
    (policy,) = scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 250.0
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    # and MonitorPipeline is scheduled for the model, at the config's rate
    schedule = boto3.client("scheduler", region_name=REGION).get_schedule(Name="selfheal-monitor-churn",
                                                                           GroupName=SCHEDULE_GROUP)
    assert schedule["ScheduleExpression"] == "rate(30 minutes)" and schedule["State"] == "ENABLED"
    assert schedule["Target"]["Arn"] == MONITOR_PIPELINE_ARN and schedule["Target"]["RoleArn"] == SCHEDULER_ROLE_ARN
    assert json.loads(schedule["Target"]["Input"]) == {"model": "churn"}
    # and a notification says so
    [note] = serving_cloud.notifications()
    assert note["event"] == "deploy.deployed" and note["message"]["model_package_arn"] == package
    assert emitted_metrics(capsys.readouterr().out)["Deployments"] == [1.0]


def test_a_deployment_autoscaling_refuses_is_still_recorded_as_deployed_and_the_refusal_is_told(
        record, package, serving_cloud, capsys):
    # Given a package now serving, and Application Auto Scaling refusing its target tracking policy
    given_endpoint(serving_cloud, config="selfheal-churn-9f8e7d6c5b4a")
    autoscaling_refuses("PutScalingPolicy")
    # When its deployment is recorded
    event, result = record("deployed.json", model_package_arn=package)
    # Then the deployment is recorded as what it is: the package serves, is the champion, the run deployed it,
    # and the monitor is scheduled
    assert result["outcome"] == "deployed"
    assert endpoint_item()["model_package_arn"] == ledger.get_champion(MODEL)["model_package_arn"] == package
    assert ledger.get_run(MODEL, event["run_id"])["decision"] == "deployed"
    assert boto3.client("scheduler", region_name=REGION).get_schedule(Name="selfheal-monitor-churn",
                                                                       GroupName=SCHEDULE_GROUP)
    # and the refusal is not lost: the outcome and the notification name it, and a metric counts it
    assert "PutScalingPolicy" in result["follow_up_errors"][0] and "cloudwatch:PutMetricAlarm" in \
        result["follow_up_errors"][0]
    [note] = serving_cloud.notifications()
    assert note["event"] == "deploy.deployed" and note["message"]["follow_up_errors"] == result["follow_up_errors"]
    assert "autoscaling failed" in note["subject"]
    assert emitted_metrics(capsys.readouterr().out)["DeploymentFollowUpsFailed"] == [1.0]


def test_a_later_deployment_updates_the_schedule_and_extends_the_history(record, package, serving_cloud):
    given_endpoint(serving_cloud, config="selfheal-churn-9f8e7d6c5b4a")
    record("deployed.json", model_package_arn=package)
    # When the next package deploys, with a new monitor rate
    serving_cloud.put_config(MODEL, CONFIG | {"monitor": {"schedule_expression": "rate(2 hours)"}})
    later = given_package(serving_cloud, run_id="churn-drift-9f8e7d6c5b4a", model_data_url=MODEL_DATA)
    record("deployed.json", model_package_arn=later, execution="deploy-later")
    # Then the one schedule has the new rate, and the history both rollouts
    schedules = boto3.client("scheduler", region_name=REGION).list_schedules()["Schedules"]
    assert [s["Name"] for s in schedules] == ["selfheal-monitor-churn"]
    assert boto3.client("scheduler", region_name=REGION).get_schedule(
        Name="selfheal-monitor-churn", GroupName=SCHEDULE_GROUP)["ScheduleExpression"] == "rate(2 hours)"
    assert [h["model_package_arn"] for h in endpoint_item()["history"]] == [package, later]
    assert endpoint_item()["model_package_arn"] == later


def test_a_retried_invocation_records_and_notifies_once(record, package, serving_cloud):
    given_endpoint(serving_cloud, config="selfheal-churn-9f8e7d6c5b4a")
    (_, first), (_, second) = record("deployed.json", model_package_arn=package), record(
        "deployed.json", model_package_arn=package)
    assert first == second
    assert len(endpoint_item()["history"]) == 1 and len(serving_cloud.notifications()) == 1


def test_rolled_back_by_alarm(record, package, serving_cloud, capsys):
    # Given a model serving, and an update SageMaker rolled back on an alarm
    given_endpoint(serving_cloud, config="selfheal-churn-1a2b3c4d5e6f")
    ledger.record_endpoint(MODEL, {"outcome": "deployed"}, endpoint_name="selfheal-churn",
                           model_package_arn="arn:aws:sagemaker:us-east-1:123456789012:model-package/selfheal-churn/1")
    failing_update("Update failed and was rolled back: alarm selfheal-churn-5xx-errors went into ALARM")
    # When the rollback is recorded
    event, result = record("rolled_back_by_alarm.json", model_package_arn=package)
    # Then the reason is SageMaker's own, and the history says rolled back
    assert result["outcome"] == "rolled_back" and "alarm selfheal-churn-5xx-errors" in result["reason"]
    item = endpoint_item()
    assert [h["outcome"] for h in item["history"]] == ["deployed", "rolled_back"]
    rollback = item["history"][-1]
    assert rollback["reason"] == result["reason"] and rollback["serving_config"] == "selfheal-churn-1a2b3c4d5e6f"
    assert rollback["endpoint_config"] == event["deploy"]["endpoint_config_name"]
    # and the previous package still serves: ENDPOINT, CHAMPION and the run's decision are untouched
    assert item["model_package_arn"].endswith("/1") and item["status"] == "InService"
    assert ledger.get_champion(MODEL) is None
    assert "decision" not in ledger.get_run(MODEL, event["run_id"])
    # and the serving variant keeps its autoscaling
    scaling = boto3.client("application-autoscaling", region_name=REGION)
    assert len(scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]) == 1
    [note] = serving_cloud.notifications()
    assert note["event"] == "deploy.rolled_back" and "ALARM" in note["message"]["reason"]
    assert emitted_metrics(capsys.readouterr().out)["Rollbacks"] == [1.0]


def test_smoke_test_failed(record, package, serving_cloud):
    # Given the previous config restored after a failed smoke test
    given_endpoint(serving_cloud, config="selfheal-churn-1a2b3c4d5e6f")
    _, result = record("smoke_test_failed.json", model_package_arn=package)
    # Then the reason is the smoke test's error, read out of the Lambda error document
    assert result["reason"] == "SmokeTestFailed: prediction 1 (1.7): probability 1.7 outside [0, 1]"
    assert endpoint_item()["history"][-1]["serving_config"] == "selfheal-churn-1a2b3c4d5e6f"


def test_prepare_failed(record, package):
    # Given a first rollout that failed before any endpoint existed (no `deploy` in the event)
    _, result = record("prepare_failed.json", model_package_arn=package)
    # Then it is recorded with its reason, against no serving model
    assert result["reason"].startswith("PackageNotApproved: ") and result["endpoint_config"] is None
    item = endpoint_item()
    assert item["status"] == "Deleted" and "model_package_arn" not in item
    (entry,) = item["history"]
    assert entry["outcome"] == "rolled_back" and entry["endpoint_config"] is None
    assert boto3.client("scheduler", region_name=REGION).list_schedules()["Schedules"] == []
