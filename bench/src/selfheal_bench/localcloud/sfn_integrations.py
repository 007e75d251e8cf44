"""What moto's Step Functions engine lacks, supplied through its own seams.

* `sagemaker:*` optimized integrations (request-response and `.sync`): the engine calls SageMaker with
  parameter validation off and refuses `.sync`; here the request is sent to the (validated) SageMaker
  API and `.sync` polls Describe* until the job ends, failing the task with `States.TaskFailed` and the
  Describe output as its cause, as AWS does. A refused API call fails the task under the name AWS's SDK
  gives it: an error SageMaker's model names (ResourceLimitExceeded, ResourceInUse, ...) as
  `SageMaker.<Name>Exception`, every other code (ThrottlingException, ValidationException, ...) as
  `SageMaker.AmazonSageMakerException`, with the code in the cause.
* `aws-sdk:sagemaker:*` tasks name errors `SageMaker.<Name>Exception` (`SageMaker.SageMakerException` for a
  code the model does not name): moto's engine would write the service name in lower case.
* `states:startExecution(.sync|.sync:2)`: moto's engine passes the ASL's Step Functions-cased parameters
  (StateMachineArn, Name, Input) straight to boto3, which wants the API's own (stateMachineArn, ...); they are
  mapped through the API's input shape, as AWS does.
* A clock: Retry intervals and Wait states pass on the local cloud's Clock (clock.py), so the local cloud
  can run the same ASL (with production-sized backoffs) in seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import botocore.session
from botocore.exceptions import ClientError
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_aws_sdk
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
    StateTaskServiceSfn,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for

from .clock import Clock

_TERMINAL_FAILED = {"Failed", "Stopped"}
# (Describe operation, name parameter, status field) for each job a .sync task can wait on.
_SYNC_JOBS = {
    "create_processing_job": ("describe_processing_job", "ProcessingJobName", "ProcessingJobStatus"),
    "create_training_job": ("describe_training_job", "TrainingJobName", "TrainingJobStatus"),
    "create_transform_job": ("describe_transform_job", "TransformJobName", "TransformJobStatus"),
}


# The SageMaker APIs Step Functions' optimized integration offers.
_OPTIMIZED_ACTIONS = {"CreateEndpoint", "CreateEndpointConfig", "CreateHyperParameterTuningJob",
                      "CreateLabelingJob", "CreateModel", "CreateProcessingJob", "CreateTrainingJob",
                      "CreateTransformJob", "UpdateEndpoint"}
_sagemaker_model = botocore.session.get_session().get_service_model("sagemaker")
# The errors SageMaker's model names; the SDK Step Functions calls it with has an exception class for each.
_SAGEMAKER_MODELED_ERRORS = {shape.name for shape in _sagemaker_model.error_shapes}
_SAGEMAKER_OTHER_ERRORS = {"optimized": "SageMaker.AmazonSageMakerException", "aws-sdk": "SageMaker.SageMakerException"}
_sfn_model = botocore.session.get_session().get_service_model("stepfunctions")


def _sfn_operation(action: str) -> Any:
    """'startExecution' or 'describe_execution' → the Step Functions API operation model."""
    name = "".join(part[:1].upper() + part[1:] for part in action.split("_"))
    return _sfn_model.operation_model(name)


def sagemaker_error_name(code: str, integration: str = "optimized") -> str:
    """The error name a SageMaker task fails with when the API refuses it with `code`: the optimized
    integration's SDK calls every code its model does not name AmazonSageMakerException, the AWS SDK
    integration's SageMakerException."""
    if code in _SAGEMAKER_MODELED_ERRORS:
        return f"SageMaker.{code}" if code.endswith("Exception") else f"SageMaker.{code}Exception"
    return _SAGEMAKER_OTHER_ERRORS[integration]


def sagemaker_error_names(integration: str) -> set[str]:
    """Every name a SageMaker task of the integration ("optimized" or "aws-sdk") fails with on a refused call."""
    return {sagemaker_error_name(code, integration) for code in _SAGEMAKER_MODELED_ERRORS} | {
        _SAGEMAKER_OTHER_ERRORS[integration]}


def _json_native(value: Any) -> Any:
    """Step Functions shows SageMaker timestamps as epoch milliseconds."""
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: _json_native(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_json_native(v) for v in value]
    return value


def _sleep(job_name: str, seconds: float) -> None:
    time.sleep(seconds)


class StateTaskServiceSageMaker(StateTaskServiceCallback):
    def __init__(self, poll_seconds: float, wait: Callable[[str, float], None] = _sleep) -> None:
        super().__init__(supported_integration_patterns={ResourceCondition.Sync})
        self._poll_seconds = poll_seconds
        self._wait = wait  # (job name, at most seconds): returns early when the job may have ended

    def _get_supported_parameters(self) -> set[str] | None:
        action = self.resource.api_action[:1].upper() + self.resource.api_action[1:]
        if action not in _OPTIMIZED_ACTIONS:
            return None
        return set(_sagemaker_model.operation_model(action).input_shape.members)

    def _client(self, resource_runtime_part: Any, state_credentials: Any) -> Any:
        return boto_client_for(service="sagemaker", region=resource_runtime_part.region,
                               state_credentials=state_credentials)

    def _from_error(self, env: Any, ex: Exception) -> FailureEvent:
        if isinstance(ex, ClientError):
            error, metadata = ex.response["Error"], ex.response["ResponseMetadata"]
            name = sagemaker_error_name(error.get("Code", ""))
            cause = (f"{error.get('Message')} (Service: AmazonSageMaker; Status Code: "
                     f"{metadata.get('HTTPStatusCode')}; Error Code: {error.get('Code')}; "
                     f"Request ID: {metadata.get('RequestId')}; Proxy: null)")
            return FailureEvent(
                env=env, error_name=CustomErrorName(name), event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(taskFailedEventDetails=TaskFailedEventDetails(
                    error=name, cause=cause, resource=self._get_sfn_resource(),
                    resourceType=self._get_sfn_resource_type())))
        return super()._from_error(env=env, ex=ex)

    def _eval_service_task(self, env: Any, resource_runtime_part: Any, normalised_parameters: dict,
                           state_credentials: Any) -> None:
        client = self._client(resource_runtime_part, state_credentials)
        action = self._get_boto_service_action()
        response = getattr(client, action)(**normalised_parameters)
        env.stack.append(_json_native(response))

    def _eval_integration_pattern(self, env: Any, resource_runtime_part: Any, normalised_parameters: dict,
                                  state_credentials: Any) -> None:
        # moto's base loop needs a task-token endpoint even for .sync; SageMaker only offers .sync, so poll
        # Describe* directly. The state's TimeoutSeconds still bounds this (the engine enforces it).
        resolve = self._build_sync_resolver(env, resource_runtime_part, normalised_parameters, state_credentials)
        name = normalised_parameters[_SYNC_JOBS[self._get_boto_service_action()][1]]
        while env.is_running():
            result = resolve()
            if result is not None:
                env.stack.append(result)
                return
            self._wait(name, self._poll_seconds)

    def _build_sync_resolver(self, env: Any, resource_runtime_part: Any, normalised_parameters: dict,
                             state_credentials: Any) -> Callable[[], Any]:
        action = self._get_boto_service_action()
        if action not in _SYNC_JOBS:
            raise RuntimeError(f"Unsupported .sync callback procedure in resource {self.resource.resource_arn}")
        describe, name_param, status_field = _SYNC_JOBS[action]
        env.stack.pop()  # the Create* response: .sync answers with the Describe* output instead
        client = self._client(resource_runtime_part, state_credentials)
        name = normalised_parameters[name_param]

        def resolve() -> Any:
            job = _json_native(getattr(client, describe)(**{name_param: name}))
            status = job[status_field]
            if status in _TERMINAL_FAILED:
                raise FailureEventException(FailureEvent(
                    env=env, error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(taskFailedEventDetails=TaskFailedEventDetails(
                        error=StatesErrorNameType.StatesTaskFailed.to_name(), cause=json.dumps(job),
                        resource=self._get_sfn_resource(), resourceType=self._get_sfn_resource_type()))))
            return job if status == "Completed" else None

        return resolve


def patch_engine(clock: Clock, poll_seconds: float, wait_for_job: Callable[[str, float], None] = _sleep,
                 ) -> Callable[[], None]:
    """Install the SageMaker integration and the clock in moto's engine; returns the undo. A `.sync` task looks
    at its job every `poll_seconds`, or sooner when `wait_for_job` (job name, seconds) returns early."""
    original_factory = state_task_factory.state_task_service_for
    original_sleep = retrier_decl.time
    original_wait = wait_function.WaitFunction._wait_interval

    def service_for(service_name: str) -> Any:
        if service_name == "sagemaker":
            return StateTaskServiceSageMaker(poll_seconds, wait_for_job)
        return original_factory(service_name=service_name)

    class _ScaledTime:
        """Stands in for the time module inside the retrier: only sleep is scaled."""

        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            clock.sleep(seconds)

    def wait_interval(self: Any, env: Any, wait_seconds: int) -> None:
        if wait_seconds > 0:
            clock.sleep(wait_seconds, wake=env.program_state_event)

    original_sfn_normalise = StateTaskServiceSfn._normalise_parameters

    original_sfn_eval = StateTaskServiceSfn._eval_service_task

    def sfn_normalise(self: StateTaskServiceSfn, parameters: dict, boto_service_name: str | None = None,
                      service_action_name: str | None = None) -> None:
        original_sfn_normalise(self, parameters, boto_service_name, service_action_name)
        self._to_boto_request(parameters, _sfn_operation(service_action_name or self.resource.api_action).input_shape)

    def sfn_normalise_response(self: StateTaskServiceSfn, response: Any, boto_service_name: str | None = None,
                               service_action_name: str | None = None) -> None:
        operation = _sfn_operation(service_action_name or self.resource.api_action)
        self._from_boto_response(response, operation.output_shape)
        response.update(_json_native(response))  # in place: the engine holds this dict

    def sfn_eval(self: StateTaskServiceSfn, env: Any, **kwargs: Any) -> None:
        original_sfn_eval(self, env=env, **kwargs)
        self._normalise_response(env.stack[-1])

    StateTaskServiceSfn._normalise_parameters = sfn_normalise  # type: ignore[method-assign]
    StateTaskServiceSfn._normalise_response = sfn_normalise_response  # type: ignore[method-assign]
    StateTaskServiceSfn._eval_service_task = sfn_eval  # type: ignore[method-assign]
    state_task_factory.state_task_service_for = service_for
    state_task_service_aws_sdk._SERVICE_ERROR_NAMES["sagemaker"] = "SageMaker"
    retrier_decl.time = _ScaledTime()  # type: ignore[assignment]
    wait_function.WaitFunction._wait_interval = wait_interval  # type: ignore[method-assign]

    def undo() -> None:
        StateTaskServiceSfn._normalise_parameters = original_sfn_normalise  # type: ignore[method-assign]
        del StateTaskServiceSfn._normalise_response  # moto's own is the base class's (a no-op)
        StateTaskServiceSfn._eval_service_task = original_sfn_eval  # type: ignore[method-assign]
        state_task_factory.state_task_service_for = original_factory
        state_task_service_aws_sdk._SERVICE_ERROR_NAMES.pop("sagemaker", None)
        retrier_decl.time = original_sleep
        wait_function.WaitFunction._wait_interval = original_wait  # type: ignore[method-assign]

    return undo
