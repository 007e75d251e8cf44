"""RecordDeployment: the end of every DeployPipeline execution, deployed or rolled back.

Deployed: first the facts, which nothing after them may lose: the ENDPOINT item names the new package
(its config, baseline, monitor schedule) with the rollout in its history; the package becomes the
CHAMPION (metrics, model data, baseline); the run's decision becomes "deployed". Then the follow-ups:
the monitor schedule is created or updated, and the variant autoscales by invocations per instance
within the config's bounds. A follow-up that fails does not make the deployment fail (the new model
serves either way, and both are upserts the next deployment repeats): it is told instead, in the
outcome's follow_up_errors, the notification, a metric and the log. A notification goes out.
Rolled back: the rollout and its reason go into the ENDPOINT history, with the endpoint's real
status afterwards; the serving variant keeps its autoscaling (a follow-up too); a notification goes out."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from selfheal_shared import aws, ledger, notify
from selfheal_shared.config import Autoscaling, read_model_config
from selfheal_shared.events import StepError
from selfheal_shared.idempotency import run_once
from selfheal_shared.serving import (
    endpoint_name,
    get_serving_settings,
    scalable_resource_id,
    schedule_name,
)
from selfheal_shared.serving_events import RecordDeploymentRequest

metrics = Metrics()
logger = Logger()

SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SCALE_IN_COOLDOWN_SECONDS = 300  # scale in slowly, out quickly: traffic spikes cost errors, idle instances cost money
SCALE_OUT_COOLDOWN_SECONDS = 60
ROLLED_BACK_BY_SAGEMAKER = "EndpointUpdateRolledBack"  # the Error deploy_pipeline.asl.json gives that outcome


def record_deployment(request: RecordDeploymentRequest, context: LambdaContext | None = None) -> dict[str, Any]:
    # Recording and notifying happen once per outcome of an execution; a retry replays the result.
    return run_once("record-deployment", record_outcome, request, key="[execution, outcome]", context=context)


def record_outcome(request: RecordDeploymentRequest) -> dict[str, Any]:
    return deployed(request) if request.outcome == "deployed" else rolled_back(request)


def deployed(request: RecordDeploymentRequest) -> dict[str, Any]:
    deploy = request.deploy
    assert deploy is not None  # the request model requires it for this outcome
    config = read_model_config(request.model)
    schedule = schedule_name(request.model)
    at = ledger.timestamp()
    ledger.record_endpoint(
        request.model, history_entry(request, "deployed", None, deploy.endpoint_config_name, at),
        endpoint_name=deploy.endpoint_name, status="InService", model_package_arn=request.model_package_arn,
        run_id=request.run_id, endpoint_config=deploy.endpoint_config_name, model_name=deploy.model_name,
        baseline_uri=deploy.baseline_uri, schedule_name=schedule, deployed_at=at,
    )
    crown(request, deploy.baseline_uri, deploy.endpoint_config_name)
    ledger.update_run(request.model, request.run_id, decision="deployed", model_package_arn=request.model_package_arn,
                      endpoint_config=deploy.endpoint_config_name)
    errors = follow_ups({"monitor schedule": lambda: put_monitor_schedule(request.model,
                                                                          config.monitor.schedule_expression),
                         "autoscaling": lambda: scale(request.model, config.deploy.autoscaling)})
    outcome = {"outcome": "deployed", "reason": None, "model": request.model,
               "model_package_arn": request.model_package_arn, "run_id": request.run_id,
               "endpoint_name": deploy.endpoint_name, "endpoint_config": deploy.endpoint_config_name,
               "schedule_name": schedule, "follow_up_errors": errors}
    announce(outcome, request.execution)
    metrics.add_metric(name="Deployments", unit=MetricUnit.Count, value=1)
    return outcome


def rolled_back(request: RecordDeploymentRequest) -> dict[str, Any]:
    failure = request.failure
    assert failure is not None  # the request model requires it for this outcome
    name = request.deploy.endpoint_name if request.deploy else endpoint_name(request.model)
    endpoint = describe_endpoint(name)
    reason = failure_reason(failure, endpoint)
    serving = endpoint.get("EndpointConfigName") if endpoint else None
    errors = []
    if endpoint and endpoint["EndpointStatus"] == "InService":
        # PrepareDeploy releases autoscaling when the instance type changes: the old variant gets it back.
        bounds = read_model_config(request.model).deploy.autoscaling
        errors = follow_ups({"autoscaling": lambda: scale(request.model, bounds)})
    attempted = request.deploy.endpoint_config_name if request.deploy else None
    ledger.record_endpoint(request.model, history_entry(request, "rolled_back", reason, attempted, ledger.timestamp(),
                                                        serving_config=serving),
                           endpoint_name=name, status=endpoint["EndpointStatus"] if endpoint else "Deleted")
    outcome = {"outcome": "rolled_back", "reason": reason, "model": request.model,
               "model_package_arn": request.model_package_arn, "run_id": request.run_id, "endpoint_name": name,
               "endpoint_config": serving, "schedule_name": None, "follow_up_errors": errors}
    announce(outcome, request.execution)
    metrics.add_metric(name="Rollbacks", unit=MetricUnit.Count, value=1)
    return outcome


def follow_ups(steps: dict[str, Callable[[], object]]) -> list[str]:
    """Run each step; one that fails is logged, counted and returned ("<step> failed: <error>"), not raised:
    what is already recorded stands."""
    errors = []
    for name, step in steps.items():
        try:
            step()
        except ClientError as error:
            logger.exception(f"{name} failed after the rollout was recorded")
            errors.append(f"{name} failed: {error}")
    if errors:
        metrics.add_metric(name="DeploymentFollowUpsFailed", unit=MetricUnit.Count, value=len(errors))
    return errors


def history_entry(request: RecordDeploymentRequest, outcome: str, reason: str | None, endpoint_config: str | None,
                  at: str, **extra: Any) -> dict[str, Any]:
    return {"model_package_arn": request.model_package_arn, "run_id": request.run_id, "outcome": outcome,
            "reason": reason, "endpoint_config": endpoint_config, "execution": request.execution, "at": at, **extra}


def crown(request: RecordDeploymentRequest, baseline_uri: str, endpoint_config: str) -> None:
    """The deployed package is the CHAMPION the next challenger must beat."""
    package = aws.client("sagemaker").describe_model_package(ModelPackageName=request.model_package_arn)
    run = ledger.get_run(request.model, request.run_id) or {}
    ledger.set_champion(request.model, model_package_arn=request.model_package_arn, run_id=request.run_id,
                        model_data_url=package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"],
                        metrics=run.get("metrics") or {})
    ledger.annotate_champion(request.model, request.model_package_arn, baseline_uri=baseline_uri,
                             endpoint_config=endpoint_config)


def scale(model: str, bounds: Autoscaling) -> None:
    """Target tracking on invocations per instance, within the config's bounds (both calls are upserts)."""
    target = {"ServiceNamespace": "sagemaker", "ResourceId": scalable_resource_id(model),
              "ScalableDimension": SCALABLE_DIMENSION}
    scaling = aws.client("application-autoscaling")
    scaling.register_scalable_target(**target, MinCapacity=bounds.min_capacity, MaxCapacity=bounds.max_capacity)
    scaling.put_scaling_policy(
        PolicyName=f"{endpoint_name(model)}-invocations", PolicyType="TargetTrackingScaling", **target,
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": float(bounds.target_invocations_per_instance),
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "ScaleInCooldown": SCALE_IN_COOLDOWN_SECONDS,
            "ScaleOutCooldown": SCALE_OUT_COOLDOWN_SECONDS,
        },
    )


def put_monitor_schedule(model: str, expression: str) -> str:
    """Create or update the schedule that starts MonitorPipeline for this model."""
    serving = get_serving_settings()
    name = schedule_name(model)
    schedule = {
        "Name": name,
        "GroupName": serving.schedule_group,
        "ScheduleExpression": expression,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED",
        "Description": f"selfheal: analyse {model}'s endpoint traffic for drift",
        "Target": {"Arn": serving.monitor_pipeline_arn, "RoleArn": serving.scheduler_role_arn,
                   "Input": json.dumps({"model": model}),
                   "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600}},
    }
    try:
        aws.client("scheduler").update_schedule(**schedule)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        aws.client("scheduler").create_schedule(**schedule)
    return name


def describe_endpoint(name: str) -> dict[str, Any] | None:
    try:
        return aws.client("sagemaker").describe_endpoint(EndpointName=name)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ValidationException" and "Could not find" in str(error):
            return None
        raise


def failure_reason(failure: StepError, endpoint: dict[str, Any] | None) -> str:
    """One line: SageMaker's own FailureReason for a rollback it did, else the error that stopped the rollout."""
    if failure.error == ROLLED_BACK_BY_SAGEMAKER and endpoint and endpoint.get("FailureReason"):
        return str(endpoint["FailureReason"])
    cause = failure.cause or ""
    try:  # a Lambda error's cause is {"errorMessage", "errorType", ...}
        lambda_error = json.loads(cause)
        cause = f"{lambda_error['errorType']}: {lambda_error['errorMessage']}"
    except (ValueError, TypeError, KeyError):
        pass
    return f"{failure.error}: {cause}" if cause and not cause.startswith(failure.error) else cause or failure.error


def announce(outcome: dict[str, Any], execution: str) -> None:
    failed = [error.split(" failed:", 1)[0] for error in outcome["follow_up_errors"]]
    warning = f" ({', '.join(failed)} failed)" if failed else ""
    notify.publish(f"selfheal {outcome['model']}: deployment {outcome['outcome'].replace('_', ' ')}{warning}",
                   {**outcome, "execution": execution}, event=f"deploy.{outcome['outcome']}")
