"""Typed events and payloads (Powertools parser models).

- S3ObjectCreatedEvent (s3_events.py): what EventBridge delivers to IngestFunction for an S3 "Object Created".
- GateRequest / RegisterRequest / RecordRunRequest: what TrainingPipeline passes to its Lambdas
  (docs/architecture.md, "TrainingPipeline states"); GateResult is what the Gate returns.
Anything that does not match raises pydantic's ValidationError naming the field."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from selfheal_shared.config import Metric
from selfheal_shared.names import SAGEMAKER_NAME, ModelName, RunId
from selfheal_shared.s3uri import S3Uri


def _s3_uri(value: str) -> str:
    S3Uri.parse(value)
    return value


def _sagemaker_name(value: str) -> str:
    if not SAGEMAKER_NAME.fullmatch(value):
        raise ValueError("not a SageMaker resource name")
    return value


S3UriText = Annotated[str, AfterValidator(_s3_uri)]
SageMakerName = Annotated[str, AfterValidator(_sagemaker_name)]


class Payload(BaseModel):
    """What one of selfheal's own steps sends another: every field known, nothing changed on the way."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class GateRequest(Payload):
    run_id: RunId
    model: ModelName
    metric: Metric
    evaluation_uri: S3UriText


class GateResult(Payload):
    passed: bool
    reasons: list[str] = Field(min_length=1)
    metrics: dict[str, float | None]
    champion_metrics: dict[str, float | None] | None


class RegisterRequest(Payload):
    run_id: RunId
    model: ModelName
    approval: Literal["auto", "manual"]
    model_data_url: S3UriText
    evaluation_uri: S3UriText
    code_uri: S3UriText
    training_job_name: SageMakerName


class Jobs(Payload):
    """SageMaker job names of the run's steps; a step that did not run has none."""

    preprocess: str | None = None
    train: str | None = None
    evaluate: str | None = None


class StepError(Payload):
    """What a Catch puts at ResultPath `$.error`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    error: str = Field(alias="Error")
    cause: str | None = Field(None, alias="Cause")


class RecordRunRequest(Payload):
    run_id: RunId
    model: ModelName
    status: Literal["SUCCEEDED", "FAILED"]
    decision: Literal["deployed", "registered", "rejected", "failed"]
    gate: GateResult | None = None
    model_package_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:sagemaker:")
    jobs: Jobs = Jobs()
    error: StepError | None = None
