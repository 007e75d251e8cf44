"""PrepareDeployFunction: one deployment planned before the endpoint is touched."""

import boto3
import deploy_plan
import pytest
from botocore.awsrequest import AWSResponse
from selfheal_bench.fixtures.aws import BUCKET, CHURN, REGION, event_files, load_event
from selfheal_bench.fixtures.hosting import blue_green, update_under_traffic
from selfheal_bench.fixtures.serving import given_endpoint, given_package
from selfheal_shared import aws
from selfheal_shared.config import Deploy
from selfheal_shared.serving import VARIANT, deploy_execution_name, get_serving_settings

MODEL = "churn"
SCALABLE = {"ServiceNamespace": "sagemaker", "ResourceId": f"endpoint/selfheal-{MODEL}/variant/{VARIANT}",
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}


@pytest.fixture
def prepare(load_handler, serving_cloud, lambda_context):
    handler = load_handler("prepare_deploy").lambda_handler

    def run(name: str, approval: str = "Approved", config: dict | None = None) -> dict:
        serving_cloud.put_config(MODEL, config or CHURN)
        event = load_event("prepare_deploy", name)
        event["model_package_arn"] = given_package(serving_cloud, approval=approval, run_id=event["run_id"])
        event["execution"] = deploy_execution_name(event["model_package_arn"])
        return {"event": event, "deploy": handler(event, lambda_context)}

    return run


def alarms() -> dict:
    described = boto3.client("cloudwatch", region_name=REGION).describe_alarms(AlarmNamePrefix="selfheal-churn")
    return {alarm["AlarmName"]: alarm for alarm in described["MetricAlarms"]}


def test_every_sample_event_has_a_test():
    assert set(event_files("prepare_deploy")) == {"first_deployment.json", "blue_green_update.json",
                                                  "pending_package.json"}


def test_first_deployment(prepare):
    # Given a model with no endpoint yet, and its approved package
    # When its deployment is prepared
    result = prepare("first_deployment.json")
    deploy, event = result["deploy"], result["event"]

    # Then the endpoint is created, not updated, under the model's name, from names of this execution
    assert deploy["endpoint_name"] == "selfheal-churn" and deploy["endpoint_exists"] is False
    assert deploy["previous_config"] is None
    assert deploy["model_name"] == deploy["endpoint_config_name"]
    assert deploy["model_name"].startswith("selfheal-churn-") and len(deploy["model_name"]) <= 63
    # and the config's deploy settings apply: one instance shifts all at once, still baked
    assert (deploy["instance_type"], deploy["instance_count"], deploy["capture_percent"]) == ("ml.m5.large", 1, 100)
    assert deploy["routing"] == {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300}
    assert deploy["capture_uri"] == f"s3://{BUCKET}/capture/churn"
    # and the smoke test and the monitor find the run's held-out rows and baseline
    run = f"s3://{BUCKET}/artifacts/churn/{event['run_id']}"
    assert deploy["test_uri"] == f"{run}/preprocess/test/test.csv"
    assert deploy["baseline_uri"] == f"{run}/preprocess/baseline"
    assert (deploy["target"], deploy["problem"]) == ("churned", "binary")
    # and polling is bounded beyond SageMaker's own deployment timeout
    assert deploy["poll_seconds"] == 30 and deploy["max_deploy_seconds"] == 3600
    assert deploy["max_polls"] * deploy["poll_seconds"] > deploy["max_deploy_seconds"]
    # and the rollback alarms exist, on the variant's own error and latency metrics
    found = alarms()
    assert deploy["alarms"] == [{"AlarmName": name} for name in found]
    errors, latency = found["selfheal-churn-5xx-errors"], found["selfheal-churn-model-latency"]
    assert (errors["MetricName"], errors["Statistic"], errors["Threshold"]) == ("Invocation5XXErrors", "Sum", 1.0)
    assert (latency["MetricName"], latency["Statistic"], latency["Threshold"]) == ("ModelLatency", "Average", 1e6)
    # on the new fleet alone: SageMaker publishes its metrics with the new config's name as well
    for alarm in (errors, latency):
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
            "EndpointName": "selfheal-churn", "VariantName": VARIANT,
            "EndpointConfigName": deploy["endpoint_config_name"]}
    assert errors["TreatMissingData"] == "notBreaching"


def test_the_rollback_alarms_are_not_tripped_by_the_old_fleet(serving_env, hosting):
    # Given an endpoint on two instances whose old model fails some requests, and a new model that does not
    hosting.serving(hosting.config("selfheal-churn-0a1b2c3d4e5f", instances=2))
    new = hosting.config("selfheal-churn-9f8e7d6c5b4a", instances=2, model="fixed")
    alarms = deploy_plan.put_rollback_alarms(MODEL, get_serving_settings(), new)
    # When the new model takes its canary share and bakes, while the old fleet still fails requests
    canary = deploy_plan.traffic_routing(Deploy(initial_instance_count=2, baking_seconds=300))
    described, answers = update_under_traffic(hosting, new, blue_green([{"AlarmName": a} for a in alarms],
                                                                        bake=300, routing=canary),
                                              lambda n: "fail" if n % 4 == 0 else "1")
    # Then the old fleet's errors happened, and did not roll the good model back
    assert 500 in answers
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", new)


def test_blue_green_update(prepare, serving_cloud):
    # Given an endpoint serving a previous config, and a model configured for two instances
    given_endpoint(serving_cloud, config="selfheal-churn-0a1b2c3d4e5f")
    config = CHURN | {"deploy": {"initial_instance_count": 2, "canary_percent": 25, "baking_seconds": 1800}}
    # When the next deployment is prepared
    deploy = prepare("blue_green_update.json", config=config)["deploy"]
    # Then it updates the endpoint, can roll back to the serving config, and shifts a canary first
    assert deploy["endpoint_exists"] is True and deploy["previous_config"] == "selfheal-churn-0a1b2c3d4e5f"
    assert deploy["routing"] == {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
                                 "WaitIntervalInSeconds": 1800}
    # and SageMaker's deployment timeout covers both bakes
    assert deploy["max_deploy_seconds"] >= 2 * 1800
    # and each execution gets its own model and config names
    assert deploy["endpoint_config_name"] != deploy["previous_config"]


def test_pending_package(prepare):
    # Given a package still pending manual approval
    # Then nothing is prepared: the pipeline fails by name before touching the endpoint
    with pytest.raises(Exception, match="PendingManualApproval, not Approved") as raised:
        prepare("pending_package.json", approval="PendingManualApproval")
    assert type(raised.value).__name__ == "PackageNotApproved"
    assert alarms() == {}


@pytest.mark.parametrize(("new_type", "released"), [("ml.c5.xlarge", True), ("ml.m5.large", False)])
def test_autoscaling_is_released_only_when_the_instance_type_changes(prepare, serving_cloud, new_type, released):
    # Given an autoscaled endpoint on ml.m5.large
    given_endpoint(serving_cloud, instance_type="ml.m5.large")
    scaling = boto3.client("application-autoscaling", region_name=REGION)
    scaling.register_scalable_target(**SCALABLE, MinCapacity=1, MaxCapacity=2)
    # When a deployment on `new_type` is prepared
    prepare("blue_green_update.json", config=CHURN | {"deploy": {"instance_type": new_type}})
    # Then the variant leaves autoscaling exactly when SageMaker would refuse the update otherwise
    targets = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (targets == []) is released


def test_an_endpoint_being_changed_is_waited_for(prepare, serving_cloud):
    # Given an endpoint another deployment is updating
    given_endpoint(serving_cloud)

    def updating(params, **_):
        return AWSResponse(params["url"], 200, {}, None), {"EndpointName": "selfheal-churn",
                                                           "EndpointStatus": "Updating",
                                                           "EndpointConfigName": "selfheal-churn-0a1b2c3d4e5f"}

    aws.client("sagemaker").meta.events.register("before-call.sagemaker.DescribeEndpoint", updating)
    # Then EndpointBusy (the ASL retries it later)
    with pytest.raises(Exception, match="is Updating") as raised:
        prepare("blue_green_update.json")
    assert type(raised.value).__name__ == "EndpointBusy"
