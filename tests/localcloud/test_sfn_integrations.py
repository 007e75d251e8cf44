"""The SageMaker integrations of the local Step Functions report a refused call under the error name AWS
gives it, so an ASL Retry or Catch sees here what it would see there.

Sources: "Create and manage Amazon SageMaker AI jobs with Step Functions" (its training example retries
`SageMaker.AmazonSageMakerException` and `SageMaker.ResourceLimitExceededException`), and
"Learning to use AWS service SDK integrations in Step Functions" (`ServiceName.ErrorName`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from selfheal_bench.localcloud.audit import CallAudit
from selfheal_bench.localcloud.clock import Clock
from selfheal_bench.localcloud.faults import Faults
from selfheal_bench.localcloud.sfn_integrations import patch_engine

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/sfn"
MODEL_REQUEST = {"ModelName": "churn-1", "ExecutionRoleArn": ROLE,
                 "PrimaryContainer": {"Image": "local/xgboost", "ModelDataUrl": "s3://b/model.tar.gz"}}


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[Faults]:
    """moto's Step Functions engine with the local cloud's SageMaker integration, and API faults armed."""
    for key, value in {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    faults = Faults()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        undo = [patch_engine(Clock(scale=0.0001), poll_seconds=0.01), CallAudit(faults).patch()]
        try:
            yield faults
        finally:
            for step in reversed(undo):
                step()


def run(task: dict[str, Any], timeout: float = 60) -> list[dict[str, Any]]:
    """Run a one-task state machine to its end (its Catch, if any, leads to a Caught state); its history."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    states = {"Task": {"Type": "Task", "End": True, **task}}
    if "Catch" in task:
        states["Caught"] = {"Type": "Pass", "End": True}
    arn = sfn.create_state_machine(name=f"m{time.monotonic_ns()}", roleArn=ROLE,
                                   definition=json.dumps({"StartAt": "Task", "States": states}))["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name="run", input="{}")["executionArn"]
    deadline = time.monotonic() + timeout
    while sfn.describe_execution(executionArn=execution)["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not end"
        time.sleep(0.02)
    return sfn.get_execution_history(executionArn=execution)["events"]


def task_failures(events: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [e["taskFailedEventDetails"] for e in events if e["type"] == "TaskFailed"]


@pytest.mark.parametrize(("code", "error"), [
    ("ResourceLimitExceeded", "SageMaker.ResourceLimitExceededException"),
    ("ResourceInUse", "SageMaker.ResourceInUseException"),
    ("ThrottlingException", "SageMaker.AmazonSageMakerException"),
    ("ValidationException", "SageMaker.AmazonSageMakerException"),
    ("AccessDeniedException", "SageMaker.AmazonSageMakerException"),
])
def test_a_refused_sagemaker_call_fails_the_task_under_the_name_aws_gives_it(engine, code, error):
    # Given SageMaker refuses CreateModel with an error code
    engine.add("api:sagemaker:CreateModel", code)
    # When an optimized-integration task calls it
    events = run({"Resource": "arn:aws:states:::sagemaker:createModel", "Parameters": MODEL_REQUEST})
    # Then the fault fired, and the task failed under the SDK's exception name: modeled errors by their own
    # name with the Exception suffix, every other code as AmazonSageMakerException, the code in the cause
    assert engine.fired and engine.fired[0].fired == 1
    (failure,) = task_failures(events)
    assert failure["error"] == error
    assert f"Service: AmazonSageMaker; Status Code: 400; Error Code: {code}" in failure["cause"]


def test_a_refused_sdk_integration_call_is_named_after_the_service_in_pascal_case(engine):
    # Given SageMaker refuses DescribeEndpoint (an error its model does not name, as for a missing endpoint)
    engine.add("api:sagemaker:DescribeEndpoint", "ValidationException")
    # When an AWS SDK integration task calls it
    events = run({"Resource": "arn:aws:states:::aws-sdk:sagemaker:describeEndpoint",
                  "Parameters": {"EndpointName": "selfheal-churn"}})
    # Then the error is ServiceName.ErrorName in PascalCase, the SDK's service exception for an unmodeled code
    assert engine.fired
    (failure,) = task_failures(events)
    assert failure["error"] == "SageMaker.SageMakerException"


def asl_state(machine: str, state: str) -> dict[str, Any]:
    return json.loads((ROOT / "statemachines" / f"{machine}.asl.json").read_text())["States"][state]


@pytest.mark.parametrize(("code", "attempts"), [
    ("ValidationException", 1),  # permanent: never retried
    ("AccessDeniedException", 1),
    ("ResourceLimitExceeded", 5),  # the account's job quota: retried with backoff (1 + MaxAttempts)
])
def test_train_retries_only_what_can_clear_by_itself(engine, code, attempts):
    # Given the Train state's own Retry and Catch, and SageMaker refusing CreateTrainingJob every time
    train = asl_state("training_pipeline", "Train")
    fault = engine.add("api:sagemaker:CreateTrainingJob", code, times=None)
    catch = [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]
    # When the task runs
    events = run({"Resource": train["Resource"], "Parameters": {"TrainingJobName": "t-0"},
                  "Retry": train["Retry"], "Catch": catch})
    # Then SageMaker was asked as often as a retry can help, and no more
    assert fault.fired == attempts
    assert events[-1]["type"] == "ExecutionSucceeded"  # caught, as the pipeline's RecordFailure would

