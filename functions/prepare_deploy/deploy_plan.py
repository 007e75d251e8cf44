"""PrepareDeploy: everything one DeployPipeline execution needs, decided before it touches the endpoint.

Names the SageMaker model and endpoint config after the execution, reads the model's deploy settings,
finds what the endpoint serves now (the config to roll back to), puts the endpoint's auto-rollback
alarms, and points the smoke test and the monitor at the run's held-out rows and baseline."""

from __future__ import annotations

import math
from typing import Any

from botocore.exceptions import ClientError
from selfheal_shared import aws
from selfheal_shared.config import Deploy, read_model_config
from selfheal_shared.errors import EndpointBusy, EndpointUnusable, PackageNotApproved
from selfheal_shared.s3uri import s3_uri
from selfheal_shared.serving import (
    VARIANT,
    ServingSettings,
    deployment_name,
    endpoint_name,
    get_serving_settings,
    rollback_alarm_names,
    scalable_resource_id,
)
from selfheal_shared.serving_events import Deployment, DeployRequest
from selfheal_shared.settings import get_settings

# Statuses of an endpoint that another operation is changing; the ASL retries EndpointBusy later.
BUSY = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
# After SageMaker's own deployment timeout it still has to roll back before the endpoint settles.
ROLLBACK_MARGIN_SECONDS = 600
# Creating the green fleet takes minutes before any baking starts.
PROVISIONING_SECONDS = 900
MAX_DEPLOY_SECONDS = 28800  # BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds


def prepare_deploy(request: DeployRequest) -> dict[str, Any]:
    settings, serving = get_settings(), get_serving_settings()
    config = read_model_config(request.model)
    require_approved(request.model_package_arn)
    endpoint = endpoint_name(request.model)
    current = current_endpoint(endpoint)
    if current is not None:
        release_autoscaling_if_instance_type_changes(request.model, current, config.deploy.instance_type)
    name = deployment_name(request.model, request.execution)
    max_deploy = max_deploy_seconds(config.deploy, serving)
    run = s3_uri(settings.data_bucket, "artifacts", request.model, request.run_id)
    deployment = Deployment(
        endpoint_name=endpoint,
        endpoint_exists=current is not None,
        previous_config=current["EndpointConfigName"] if current else None,
        model_name=name,
        endpoint_config_name=name,
        instance_type=config.deploy.instance_type,
        instance_count=config.deploy.initial_instance_count,
        capture_percent=config.deploy.data_capture_percent,
        capture_uri=s3_uri(settings.data_bucket, "capture", request.model),
        routing=traffic_routing(config.deploy),
        baking_seconds=config.deploy.baking_seconds,
        max_deploy_seconds=max_deploy,
        alarms=[{"AlarmName": alarm} for alarm in put_rollback_alarms(request.model, serving, name)],
        test_uri=f"{run}/preprocess/test/test.csv",
        baseline_uri=f"{run}/preprocess/baseline",
        target=config.target,
        problem=config.problem,
        poll_seconds=serving.deploy_poll_seconds,
        max_polls=math.ceil((max_deploy + ROLLBACK_MARGIN_SECONDS) / serving.deploy_poll_seconds),
    )
    return deployment.model_dump()


def require_approved(model_package_arn: str) -> None:
    package = aws.client("sagemaker").describe_model_package(ModelPackageName=model_package_arn)
    if package["ModelApprovalStatus"] != "Approved":
        raise PackageNotApproved(f"{model_package_arn} is {package['ModelApprovalStatus']}, not Approved")


def current_endpoint(name: str) -> dict[str, Any] | None:
    """DescribeEndpoint when the endpoint serves (InService); None when there is none."""
    try:
        endpoint = aws.client("sagemaker").describe_endpoint(EndpointName=name)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ValidationException" and "Could not find" in str(error):
            return None
        raise
    status = endpoint["EndpointStatus"]
    if status in BUSY:
        raise EndpointBusy(f"endpoint {name} is {status}")
    if status != "InService":
        raise EndpointUnusable(f"endpoint {name} is {status} ({endpoint.get('FailureReason', 'no reason given')}): "
                               "delete it, and the next approved package creates it again")
    return endpoint


def release_autoscaling_if_instance_type_changes(model: str, endpoint: dict[str, Any], instance_type: str) -> bool:
    """SageMaker refuses an update that changes the instance type of an autoscaled variant, so the
    variant is deregistered first (RecordDeployment registers it again). Returns True if it was."""
    config = aws.client("sagemaker").describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    serving = {v["VariantName"]: v.get("InstanceType") for v in config["ProductionVariants"]}
    if serving.get(VARIANT) == instance_type:
        return False
    try:
        aws.client("application-autoscaling").deregister_scalable_target(
            ServiceNamespace="sagemaker", ResourceId=scalable_resource_id(model),
            ScalableDimension="sagemaker:variant:DesiredInstanceCount")
    except ClientError as error:
        if error.response["Error"]["Code"] != "ObjectNotFoundException":
            raise
    return True


def traffic_routing(deploy: Deploy) -> dict[str, Any]:
    """A canary is a share of the fleet, so it needs two instances at least; one instance shifts all
    at once, still baked and watched by the alarms."""
    if deploy.initial_instance_count < 2:
        return {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": deploy.baking_seconds}
    return {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": deploy.canary_percent},
            "WaitIntervalInSeconds": deploy.baking_seconds}


def max_deploy_seconds(deploy: Deploy, serving: ServingSettings) -> int:
    """SageMaker's bound on a blue/green update: above both bakes (canary wait and termination wait)."""
    both_bakes = 2 * deploy.baking_seconds + PROVISIONING_SECONDS
    return min(MAX_DEPLOY_SECONDS, max(serving.deploy_timeout_seconds, both_bakes))


def put_rollback_alarms(model: str, serving: ServingSettings, endpoint_config: str) -> list[str]:
    """Create or update the alarms that roll a deployment back, on the new fleet's own metrics: SageMaker
    publishes them under the new endpoint config's name too ("Auto-Rollback Configuration and Monitoring"),
    so the old fleet's errors or latency cannot roll a good model back, nor dilute a bad one's."""
    endpoint = endpoint_name(model)
    dimensions = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": VARIANT},
                  {"Name": "EndpointConfigName", "Value": endpoint_config}]
    names = rollback_alarm_names(model)
    alarms = {
        "Invocation5XXErrors": {"Statistic": "Sum", "Threshold": float(serving.rollback_server_errors),
                                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                                "AlarmDescription": f"{endpoint}: 5XX errors in a minute; rolls a deployment back"},
        # CloudWatch reports ModelLatency in microseconds.
        "ModelLatency": {"Statistic": "Average", "Threshold": float(serving.rollback_latency_ms * 1000),
                         "ComparisonOperator": "GreaterThanThreshold",
                         "AlarmDescription": f"{endpoint}: average model latency over a minute; rolls a "
                                             "deployment back"},
    }
    for metric, alarm in alarms.items():
        aws.client("cloudwatch").put_metric_alarm(AlarmName=names[metric], Namespace="AWS/SageMaker", MetricName=metric,
                                          Dimensions=dimensions, Period=60, EvaluationPeriods=1,
                                          TreatMissingData="notBreaching", **alarm)
    return list(names.values())
