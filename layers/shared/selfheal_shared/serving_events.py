"""Typed events and payloads of the serving side (Powertools parser models), as in
docs/architecture.md ("DeployPipeline", "MonitorPipeline"):

- ModelPackageStateChangeEvent: what EventBridge delivers to ApprovalFunction.
- DeployRequest -> Deployment: PrepareDeployFunction's input and output ($.deploy in DeployPipeline).
- SmokeTestRequest, RecordDeploymentRequest: the other DeployPipeline Lambdas' inputs.
- MonitorRequest -> MonitorWindow (with its QualityWindow): PrepareMonitorFunction's input and output
  ($.window in MonitorPipeline).
- ViolationRequest: ViolationFunction's input (a window to judge, or the error that ended the analysis).
Anything that does not match raises pydantic's ValidationError naming the field."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, model_validator

from selfheal_shared.config import ProblemType
from selfheal_shared.events import Payload, S3UriText, SageMakerName, StepError
from selfheal_shared.names import ModelName, RunId

PackageArn = Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:[0-9]{12}:model-package/")]
ExecutionName = Annotated[str, Field(min_length=1, max_length=80)]  # a Step Functions execution name


# Approval


class ModelPackageStateChange(BaseModel):
    """The fields of SageMaker's event detail that ApprovalFunction reads; SageMaker sends more."""

    model_config = ConfigDict(extra="ignore")

    model_package_group_name: str = Field(alias="ModelPackageGroupName", min_length=1, max_length=63)
    model_package_arn: PackageArn = Field(alias="ModelPackageArn")
    model_approval_status: str = Field(alias="ModelApprovalStatus")


class ModelPackageStateChangeEvent(EventBridgeModel):
    source: Literal["aws.sagemaker"]
    detail_type: Literal["SageMaker Model Package State Change"] = Field(alias="detail-type")
    detail: ModelPackageStateChange  # type: ignore[assignment]


# DeployPipeline


class DeployRequest(Payload):
    model: ModelName
    model_package_arn: PackageArn
    run_id: RunId
    execution: ExecutionName


class Deployment(Payload):
    """Everything DeployPipeline's SageMaker tasks, its polling loop and its smoke test need."""

    endpoint_name: SageMakerName
    endpoint_exists: bool
    previous_config: str | None  # the config serving before this deployment, None on a first one
    model_name: SageMakerName
    endpoint_config_name: SageMakerName
    instance_type: str
    instance_count: int = Field(ge=1)
    capture_percent: int = Field(ge=0, le=100)
    capture_uri: S3UriText
    routing: dict[str, Any]  # BlueGreenUpdatePolicy.TrafficRoutingConfiguration
    baking_seconds: int = Field(ge=0, le=3600)
    max_deploy_seconds: int = Field(ge=600, le=28800)
    alarms: list[dict[str, str]] = Field(min_length=1, max_length=10)  # AutoRollbackConfiguration.Alarms
    test_uri: S3UriText
    baseline_uri: S3UriText
    target: str
    problem: ProblemType
    poll_seconds: int = Field(ge=1)
    max_polls: int = Field(ge=1)


class SmokeTestRequest(Payload):
    endpoint_name: SageMakerName
    test_uri: S3UriText
    target: str
    problem: ProblemType
    max_rows: int = Field(100, ge=1, le=1000)


class RecordDeploymentRequest(Payload):
    """`deploy` is absent when PrepareDeploy itself failed; `failure` says why a rollout did not deploy."""

    outcome: Literal["deployed", "rolled_back"]
    model: ModelName
    model_package_arn: PackageArn
    run_id: RunId
    execution: ExecutionName
    deploy: Deployment | None = None
    failure: StepError | None = None

    @model_validator(mode="after")
    def _outcome_has_its_fields(self) -> RecordDeploymentRequest:
        if self.outcome == "deployed" and self.deploy is None:
            raise ValueError("deploy: required when the outcome is deployed")
        if self.outcome == "rolled_back" and self.failure is None:
            raise ValueError("failure: required when the outcome is rolled_back")
        return self


# MonitorPipeline


class MonitorRequest(Payload):
    model: ModelName
    execution: ExecutionName


class QualityWindow(Payload):
    """The serving model's newest predictions to judge against their labels (ml/quality.py). Every key is
    always present (null when it does not apply); the job fields only matter when has_data is true."""

    has_data: bool
    reason: str
    start: str | None  # predictions with start <= inferenceTime < end
    end: str | None
    label_delay_hours: float = Field(ge=0)
    metric: str
    threshold: float
    files: int = Field(ge=0)  # capture files
    label_files: int = Field(ge=0)
    model_package_arn: str | None  # the serving model, whose predictions are judged
    baseline_uri: S3UriText | None  # folder with the serving model's quality_baseline.json
    capture_manifest_uri: S3UriText | None
    labels_manifest_uri: S3UriText | None
    report_uri: S3UriText | None
    labelled_uri: S3UriText | None


class MonitorWindow(Payload):
    """The capture window to analyse for drift, and the quality window. Every key is always present
    (null when it does not apply), so the ASL can select them; the job fields only matter when
    has_data is true."""

    has_data: bool
    reason: str
    endpoint_name: str | None
    start: str | None  # ISO-8601 UTC; records with start <= inferenceTime < end
    end: str
    files: int = Field(ge=0)
    baseline_uri: S3UriText | None
    manifest_uri: S3UriText | None
    report_uri: S3UriText | None
    code_uri: S3UriText | None
    job_prefix: str | None
    instance_type: str | None
    cluster: dict[str, Any] | None  # the drift job's ProcessingClusterConfig (selfheal_shared.instances)
    quality_cluster: dict[str, Any] | None = None  # the quality job's, on one instance
    quality: QualityWindow | None = None  # None: monitored before model quality was (an older execution)


class ViolationRequest(Payload):
    """Judge the window's report; or, with `error`, record that the monitoring execution failed."""

    model: ModelName
    execution: ExecutionName
    window: MonitorWindow | None = None
    error: StepError | None = None

    @model_validator(mode="after")
    def _window_or_error(self) -> ViolationRequest:
        if self.window is None and self.error is None:
            raise ValueError("window: required unless error says why there is none")
        return self
