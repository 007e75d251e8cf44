"""Fixtures for the serving side's function tests (deploy, monitor, heal), on top of
selfheal_aws_fixtures.py: the serving environment (template Globals), DeployPipeline and
MonitorPipeline state machines and the monitor schedule group in the moto account, registered model
packages, endpoints, and an endpoint whose answers a test decides (botocore's before-call hook: moto's
runtime answers every invoke with a canned body)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.response import StreamingBody
from selfheal_aws_fixtures import ACCOUNT, BUCKET, REGION
from selfheal_shared import aws, serving

DEPLOY_PIPELINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:selfheal-DeployPipeline"
MONITOR_PIPELINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:selfheal-MonitorPipeline"
SCHEDULER_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/selfheal-MonitorSchedulerRole"
SCHEDULE_GROUP = "selfheal-monitor"
SERVING_ENVIRONMENT = {
    "DEPLOY_PIPELINE_ARN": DEPLOY_PIPELINE_ARN,
    "MONITOR_PIPELINE_ARN": MONITOR_PIPELINE_ARN,
    "SCHEDULER_ROLE_ARN": SCHEDULER_ROLE_ARN,
    "SCHEDULE_GROUP": SCHEDULE_GROUP,
    "ROLLBACK_SERVER_ERRORS": "1",
    "ROLLBACK_LATENCY_MS": "1000",
    "DEPLOY_POLL_SECONDS": "30",
    "DEPLOY_TIMEOUT_SECONDS": "3600",
}
IMAGE = f"683313688378.dkr.ecr.{REGION}.amazonaws.com/sagemaker-xgboost:1.7-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/selfheal-SageMakerExecutionRole"


@pytest.fixture
def serving_env(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The functions' environment with the serving side's variables; cached settings and clients forgotten."""
    for name, value in SERVING_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    serving.reset()
    yield aws_env | SERVING_ENVIRONMENT
    serving.reset()


@pytest.fixture
def serving_cloud(cloud: Any, serving_env: dict[str, str]) -> Any:
    """The moto account with the two serving state machines and the schedule group."""
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
    for arn in (DEPLOY_PIPELINE_ARN, MONITOR_PIPELINE_ARN):
        cloud.sfn.create_state_machine(name=arn.rpartition(":")[2], definition=definition,
                                       roleArn=f"arn:aws:iam::{ACCOUNT}:role/selfheal-pipeline")
    boto3.client("scheduler", region_name=REGION).create_schedule_group(Name=SCHEDULE_GROUP)
    return cloud


def executions(cloud: Any, state_machine_arn: str) -> list[dict[str, Any]]:
    return cloud.sfn.list_executions(stateMachineArn=state_machine_arn)["executions"]


def given_package(cloud: Any, model: str = "churn", approval: str = "Approved", run_id: str | None = None,
                  model_data_url: str | None = None) -> str:
    """A registered model package in selfheal-<model>, as RegisterModelFunction makes them."""
    group = f"selfheal-{model}"
    if not cloud.sagemaker.list_model_package_groups(NameContains=group)["ModelPackageGroupSummaryList"]:
        cloud.sagemaker.create_model_package_group(ModelPackageGroupName=group)
    metadata = {"CustomerMetadataProperties": {"run_id": run_id}} if run_id else {}
    return cloud.sagemaker.create_model_package(
        ModelPackageGroupName=group, ModelApprovalStatus=approval, **metadata,
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": model_data_url or f"s3://{BUCKET}/m/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["application/json"]},
    )["ModelPackageArn"]


def given_endpoint(cloud: Any, name: str = "selfheal-churn", config: str = "selfheal-churn-0a1b2c3d4e5f",
                   instance_type: str = "ml.m5.large") -> None:
    """An endpoint serving `config` (moto's endpoints are InService at once)."""
    cloud.sagemaker.create_model(ModelName=config, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": IMAGE})
    cloud.sagemaker.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[
        {"VariantName": serving.VARIANT, "ModelName": config, "InstanceType": instance_type,
         "InitialInstanceCount": 1}])
    cloud.sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=config)


@dataclass
class Endpoint:
    """Answers InvokeEndpoint with `respond(body) -> (status, payload)` and keeps every request."""

    respond: Callable[[bytes], tuple[int, Any]]
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        body = params["body"] if isinstance(params["body"], bytes) else params["body"].encode()
        self.requests.append({"body": body, "headers": dict(params["headers"])})
        status, payload = self.respond(body)
        http = AWSResponse(params["url"], status, {}, None)
        if status >= 300:
            return http, {"Error": {"Code": "ModelError", "Message": str(payload)},
                          "ResponseMetadata": {"HTTPStatusCode": status}}
        data = json.dumps(payload).encode()
        return http, {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentType": "application/json",
                      "ResponseMetadata": {"HTTPStatusCode": status}}


@pytest.fixture
def endpoint(serving_env: dict[str, str]) -> Callable[[Callable[[bytes], tuple[int, Any]]], Endpoint]:
    """endpoint(respond) makes the runtime client's InvokeEndpoint answer through `respond`."""

    def install(respond: Callable[[bytes], tuple[int, Any]]) -> Endpoint:
        fake = Endpoint(respond)
        aws.client("sagemaker-runtime").meta.events.register("before-call.sagemaker-runtime.InvokeEndpoint", fake)
        return fake

    return install
