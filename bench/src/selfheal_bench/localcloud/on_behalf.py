"""Permissions AWS services check on the caller's behalf, beyond the IAM action of the call itself.

Each entry: an API call (or a Step Functions integration) -> the extra actions checked against the
caller's role -> where AWS says so. The runtime audit (audit.py) adds these to what a call needs; for
API calls the local cloud refuses the call as the service does when the caller's role lacks one, so a
missing grant fails here, not on the first real deployment. Where a source is unclear, the entry is
stricter than AWS and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .template import ACCOUNT_ID, REGION

Params = dict[str, Any]
# (IAM action, resource ARN, condition context) one call needs.
Need = tuple[str, str, dict[str, str]]

SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"
AUTOSCALING_ROLE = ("arn:aws:iam::{account}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
                    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint")


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{resource}"


def _pass_role(role: str, service: str) -> Need:
    return ("iam:PassRole", role, {"iam:PassedToService": service})


def _tracking_alarms(params: Params, *actions: str) -> list[Need]:
    """Target tracking alarms are named TargetTracking-<ResourceId>-AlarmHigh|Low-<uuid> by the service."""
    alarm = _arn("cloudwatch", f"alarm:TargetTracking-{params['ResourceId']}-AlarmHigh-"
                               "00000000-0000-0000-0000-000000000000")
    return [(f"cloudwatch:{action}", alarm, {}) for action in actions]


def _variant_endpoint(params: Params) -> str:
    """endpoint/<name>/variant/<variant> -> the endpoint's ARN."""
    return _arn("sagemaker", f"endpoint/{params['ResourceId'].split('/')[1].lower()}")


def _register_target(params: Params) -> list[Need]:
    endpoint = _variant_endpoint(params)
    return [("sagemaker:DescribeEndpoint", endpoint, {}),
            ("sagemaker:UpdateEndpointWeightsAndCapacities", endpoint, {}),
            ("iam:CreateServiceLinkedRole", AUTOSCALING_ROLE.format(account=ACCOUNT_ID),
             {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"})]


def _create_model(params: Params) -> list[Need]:
    containers = params.get("Containers") or [params.get("PrimaryContainer") or {}]
    packages = [c["ModelPackageName"] for c in containers if "ModelPackageName" in c]
    return [_pass_role(params["ExecutionRoleArn"], SAGEMAKER_SERVICE),
            *[("sagemaker:DescribeModelPackage", package, {}) for package in packages]]


def _rollback_alarms(params: Params) -> list[Need]:
    alarms = params.get("DeploymentConfig", {}).get("AutoRollbackConfiguration", {}).get("Alarms", [])
    return [("cloudwatch:DescribeAlarms", _arn("cloudwatch", f"alarm:{a['AlarmName']}"), {}) for a in alarms]


def _tags(kind: str, name_param: str) -> Callable[[Params], list[Need]]:
    def needs(params: Params) -> list[Need]:
        return [("sagemaker:AddTags", _arn("sagemaker", f"{kind}/{params[name_param].lower()}"), {})]
    return needs


def _sync_job(kind: str, rule: str) -> Callable[[Params], list[Need]]:
    """A SageMaker job run through Step Functions' .sync integration pattern."""
    operation = "".join(part.title() for part in kind.split("-"))

    def needs(params: Params) -> list[Need]:
        job = _arn("sagemaker", f"{kind}/{params[f'{operation}Name'].lower()}")
        return [(f"sagemaker:Describe{operation}", job, {}), (f"sagemaker:Stop{operation}", job, {}),
                *_managed_rule(rule)]
    return needs


def _managed_rule(rule: str) -> list[Need]:
    arn = _arn("events", f"rule/{rule}")
    return [(f"events:{action}", arn, {}) for action in ("PutTargets", "PutRule", "DescribeRule")]


def _sync_execution(params: Params) -> list[Need]:
    machine = params["StateMachineArn"]
    executions = machine.replace(":stateMachine:", ":execution:") + ":*"
    return [("states:DescribeExecution", executions, {}), ("states:StopExecution", executions, {}),
            *_managed_rule("StepFunctionsGetEventsForStepFunctionsExecutionRule")]


@dataclass(frozen=True)
class OnBehalf:
    call: str  # "<boto service>:<Operation>", or a Step Functions integration's Resource
    needs: Callable[[Params], list[Need]]
    source: str
    refusal: str = "AccessDeniedException"  # the error code the service answers a missing grant with
    when: Callable[[Params], bool] = lambda params: True


ON_BEHALF: tuple[OnBehalf, ...] = (
    OnBehalf("application-autoscaling:RegisterScalableTarget", _register_target,
             "SageMaker developer guide, 'Auto scaling prerequisites' (sagemaker:DescribeEndpoint, "
             "UpdateEndpointWeightsAndCapacities, iam:CreateServiceLinkedRole for "
             "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint); Application Auto Scaling user guide, "
             "'Permissions validation for API calls on target resources'",
             refusal="ValidationException", when=lambda p: p.get("ServiceNamespace") == "sagemaker"),
    OnBehalf("application-autoscaling:PutScalingPolicy",
             lambda p: _tracking_alarms(p, "PutMetricAlarm", "DescribeAlarms", "DeleteAlarms"),
             "Application Auto Scaling user guide, 'Permissions validation for API calls on target resources' "
             "and 'Permissions required for API actions on target services and CloudWatch' (target tracking "
             "creates its alarms with the caller's cloudwatch:PutMetricAlarm, DescribeAlarms, DeleteAlarms)",
             refusal="ValidationException", when=lambda p: p.get("PolicyType") == "TargetTrackingScaling"),
    OnBehalf("application-autoscaling:DeregisterScalableTarget",
             lambda p: _tracking_alarms(p, "DescribeAlarms", "DeleteAlarms"),
             "Application Auto Scaling API reference, DeregisterScalableTarget ('deletes the scaling policies') "
             "and DeleteScalingPolicy (deleting a target tracking policy deletes its alarms); stricter than "
             "documented: the caller's cloudwatch:DeleteAlarms and DescribeAlarms are checked",
             refusal="ValidationException"),
    OnBehalf("sagemaker:CreateModel", _create_model,
             "Service Authorization Reference, Amazon SageMaker: CreateModel's dependent action iam:PassRole "
             "(iam:PassedToService sagemaker.amazonaws.com); stricter than documented: a model from a model "
             "package needs the caller's sagemaker:DescribeModelPackage (SageMaker's cross-account model "
             "registry grants it to deploy a package)"),
    OnBehalf("sagemaker:CreateTrainingJob", lambda p: [_pass_role(p["RoleArn"], SAGEMAKER_SERVICE)],
             "Service Authorization Reference, Amazon SageMaker: CreateTrainingJob's dependent action iam:PassRole"),
    OnBehalf("sagemaker:CreateProcessingJob", lambda p: [_pass_role(p["RoleArn"], SAGEMAKER_SERVICE)],
             "Service Authorization Reference, Amazon SageMaker: CreateProcessingJob's dependent action "
             "iam:PassRole"),
    OnBehalf("sagemaker:UpdateEndpoint", _rollback_alarms,
             "SageMaker developer guide, 'Auto-Rollback Configuration and Monitoring' (cloudwatch:DescribeAlarms "
             "on the auto-rollback alarms; stricter than documented: checked on the caller, and the template "
             "grants it to the SageMaker execution role too)"),
    *(OnBehalf(f"sagemaker:{operation}", _tags(kind, f"{name}Name"),
               "SageMaker developer guide, 'Provide permissions for tagging SageMaker AI resources' (a Create* "
               "request with Tags needs sagemaker:AddTags on the new resource)", when=lambda p: bool(p.get("Tags")))
      for operation, kind, name in (("CreateModel", "model", "Model"),
                                    ("CreateEndpointConfig", "endpoint-config", "EndpointConfig"),
                                    ("CreateEndpoint", "endpoint", "Endpoint"),
                                    ("CreateTrainingJob", "training-job", "TrainingJob"),
                                    ("CreateProcessingJob", "processing-job", "ProcessingJob"))),
    OnBehalf("scheduler:CreateSchedule", lambda p: [_pass_role(p["Target"]["RoleArn"], "scheduler.amazonaws.com")],
             "EventBridge Scheduler user guide, 'Set up the execution role' (iam:PassRole on the target's role)"),
    OnBehalf("scheduler:UpdateSchedule", lambda p: [_pass_role(p["Target"]["RoleArn"], "scheduler.amazonaws.com")],
             "EventBridge Scheduler user guide, 'Set up the execution role' (iam:PassRole on the target's role)"),
    # Step Functions integrations: what the state machine's role needs for the integration pattern.
    OnBehalf("arn:aws:states:::sagemaker:createTrainingJob.sync",
             _sync_job("training-job", "StepFunctionsGetEventsForSageMakerTrainingJobsRule"),
             "Step Functions developer guide, 'IAM policies for calling Amazon SageMaker AI' (.sync: Describe/Stop "
             "the job, the managed EventBridge rule)"),
    OnBehalf("arn:aws:states:::sagemaker:createProcessingJob.sync",
             _sync_job("processing-job", "StepFunctionsGetEventsForSageMakerProcessingJobsRule"),
             "Step Functions developer guide, 'IAM policies for calling Amazon SageMaker AI'"),
    OnBehalf("arn:aws:states:::states:startExecution.sync:2", _sync_execution,
             "Step Functions developer guide, 'IAM policies for starting Step Functions executions' (.sync: "
             "DescribeExecution, StopExecution, the managed EventBridge rule)"),
)


def needs_on_behalf(call: str, params: Params) -> list[tuple[OnBehalf, Need]]:
    """Every extra check AWS makes on the caller of `call` with these parameters."""
    return [(entry, need) for entry in ON_BEHALF if entry.call == call and entry.when(params)
            for need in entry.needs(params)]
