"""Every AWS API call a function or a state machine makes on the local cloud, with the IAM actions and
resources it needs; and, at the same point, the API errors AWS documents, injected on purpose.

Checking the calls against template.yaml's roles (selfheal_bench.iam) proves least privilege at runtime: a
function that calls something its role does not grant fails the check here instead of on AWS. What a
call needs includes what the service checks on the caller's behalf (on_behalf.py); those checks AWS
makes when the call is made, so here too: the call is refused when the caller's role lacks one. A call
the local cloud makes while serving another call is the service's own, not the caller's. A fault
`api:<service>:<Operation>` (e.g. `api:dynamodb:PutItem`) of kind `<ErrorCode>` (e.g.
`ProvisionedThroughputExceededException`, `SlowDown`) makes that call fail as the service would.
"""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
    StateTaskService,
)

from .faults import Faults
from .on_behalf import Need, OnBehalf, needs_on_behalf
from .template import ACCOUNT_ID, REGION

INTEGRATION = "states-integration"  # a Call's service when it is a state machine's Task integration

# HTTP status AWS answers each injectable error with (throttling and server errors are retryable).
_ERROR_STATUS = {"ProvisionedThroughputExceededException": 400, "ThrottlingException": 400,
                 "RequestLimitExceeded": 400, "SlowDown": 503, "InternalError": 500, "ServiceUnavailable": 503,
                 "InternalServerError": 500, "AccessDenied": 403, "NoSuchKey": 404}

_IAM_PREFIX = {"stepfunctions": "states", "sagemaker-runtime": "sagemaker"}
_ACTIONS = {("lambda", "Invoke"): "lambda:InvokeFunction"}
# Operations whose IAM action differs from their API name.
_S3_ACTIONS = {"HeadObject": "GetObject", "ListObjectsV2": "ListBucket", "ListObjects": "ListBucket",
               "HeadBucket": "ListBucket", "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject",
               "CompleteMultipartUpload": "PutObject", "ListObjectVersions": "ListBucketVersions"}


@dataclass(frozen=True)
class Call:
    principal: str  # the template's logical id of the function or state machine that made the call
    service: str
    operation: str  # for a state machine's Task integration, its Resource
    params: dict[str, Any]

    def needs(self) -> list[Need]:
        """(IAM action, resource ARN, condition context) triples this call needs: its own action, and what
        the service checks on the caller's behalf."""
        return self.own_needs() + [need for _, need in self.on_behalf()]

    def own_needs(self) -> list[Need]:
        if self.service == INTEGRATION:
            return []
        if self.service == "s3":
            return [(action, resource, {}) for action, resource in _s3_needs(self.operation, self.params)]
        prefix = _IAM_PREFIX.get(self.service, self.service)
        action = _ACTIONS.get((self.service, self.operation), f"{prefix}:{self.operation}")
        return [(action, _resource(self.service, self.operation, self.params), self.context())]

    def on_behalf(self) -> list[tuple[OnBehalf, Need]]:
        call = self.operation if self.service == INTEGRATION else f"{self.service}:{self.operation}"
        return needs_on_behalf(call, self.params)

    def context(self) -> dict[str, str]:
        """The IAM condition keys AWS sets from this call's request (where policies use them)."""
        if self.service == "application-autoscaling":
            keys = {"ServiceNamespace": "service-namespace", "ScalableDimension": "scalable-dimension"}
            return {f"application-autoscaling:{key}": self.params[param]
                    for param, key in keys.items() if param in self.params}
        return {}


# What the audit checks a caller's grants with: selfheal_bench.iam.TemplatePolicies.allowed.
Allowed = Callable[[str, str, str, dict[str, str]], bool]


class CallAudit:
    """Who makes each call: the principal is a context variable, so it follows a function's work into the
    worker threads it hands work to (boto3's transfer manager copies and transfers in a thread pool). Calls the
    local cloud makes while serving a call (depth > 0) are the service's own, not the caller's."""

    def __init__(self, faults: Faults, allowed: Callable[[], Allowed] | None = None) -> None:
        self.calls: list[Call] = []
        self._faults = faults
        self._allowed = allowed  # built on first use: reading the template's roles takes a while
        self._principal: contextvars.ContextVar[str | None] = contextvars.ContextVar("principal", default=None)
        self._depth: contextvars.ContextVar[int] = contextvars.ContextVar("depth", default=0)
        self.state_machines: dict[str, str] = {}  # ARN -> logical id

    @contextlib.contextmanager
    def acting_as(self, principal: str | None) -> Iterator[None]:
        tokens = self._principal.set(principal), self._depth.set(0)
        try:
            yield
        finally:
            self._principal.reset(tokens[0])
            self._depth.reset(tokens[1])

    def _refuse_unless_granted(self, call: Call) -> None:
        """Refuse the call as the service does when the caller's role lacks a grant it checks on its behalf."""
        checks = call.on_behalf()
        if not checks or self._allowed is None:
            return
        allowed = self._allowed()
        missing = [(entry, need) for entry, need in checks if not allowed(call.principal, *need)]
        if missing:
            entry = missing[0][0]
            names = ", ".join(f"{action} on {resource}" for _, (action, resource, _) in missing)
            raise ClientError({"Error": {"Code": entry.refusal, "Message": f"{call.principal} is not authorized "
                                                                         f"to perform: {names}"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, call.operation)

    def patch(self) -> Callable[[], None]:
        """Record calls made by a principal, in its own thread or one it handed work to; returns the undo."""
        original = BaseClient._make_api_call
        original_submit = ThreadPoolExecutor.submit
        audit = self

        def submit(executor: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
            # The work runs in the submitter's context, as if the submitter ran it.
            return original_submit(executor, contextvars.copy_context().run, fn, *args, **kwargs)

        def make_api_call(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
            service = client.meta.service_model.service_name
            principal, depth = audit._principal.get(), audit._depth.get()
            if principal and depth == 0:  # deeper: the local cloud serving the call, as the service
                call = Call(principal, service, operation_name, dict(api_params))
                audit.calls.append(call)
                audit._refuse_unless_granted(call)
            fault = audit._faults.take(f"api:{service}:{operation_name}")
            if fault:
                raise ClientError({"Error": {"Code": fault.kind, "Message": f"injected fault: {fault.kind}"},
                                   "ResponseMetadata": {"HTTPStatusCode": _ERROR_STATUS.get(fault.kind, 400),
                                                        "RequestId": str(uuid.uuid4())}},
                                  operation_name)
            token = audit._depth.set(depth + 1)
            try:
                return original(client, operation_name, api_params)
            finally:
                audit._depth.reset(token)

        BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]
        undo_machines = self._patch_state_machines()

        def undo() -> None:
            undo_machines()
            BaseClient._make_api_call = original  # type: ignore[method-assign]
            ThreadPoolExecutor.submit = original_submit  # type: ignore[method-assign]

        return undo

    def _patch_state_machines(self) -> Callable[[], None]:
        """A state machine's Task calls AWS as its role: record each integration (with its pattern) and
        the calls it makes under the state machine's logical id."""
        original_eval, original_before = StateTaskService._eval_execution, StateTaskService._before_eval_execution
        audit = self

        def machine(env: Any) -> str | None:
            return audit.state_machines.get(env.states.context_object.context_object_data["StateMachine"]["Id"])

        def eval_execution(task: StateTaskService, env: Any) -> None:
            with audit.acting_as(machine(env)):
                original_eval(task, env)

        def before_eval_execution(task: StateTaskService, env: Any, resource_runtime_part: Any,
                                  raw_parameters: dict[str, Any], state_credentials: Any) -> None:
            principal = machine(env)
            if principal:
                audit.calls.append(Call(principal, INTEGRATION, task.resource.resource_arn, dict(raw_parameters)))
            original_before(task, env, resource_runtime_part, raw_parameters, state_credentials)

        StateTaskService._eval_execution = eval_execution  # type: ignore[method-assign]
        StateTaskService._before_eval_execution = before_eval_execution  # type: ignore[method-assign]

        def undo() -> None:
            StateTaskService._eval_execution = original_eval  # type: ignore[method-assign]
            StateTaskService._before_eval_execution = original_before  # type: ignore[method-assign]

        return undo


def _s3_needs(operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    bucket = params.get("Bucket", "")
    if operation == "CopyObject":
        source = params["CopySource"]
        if isinstance(source, dict):
            source_arn, versioned = f"arn:aws:s3:::{source['Bucket']}/{source['Key']}", "VersionId" in source
        else:
            path, _, query = str(source).lstrip("/").partition("?versionId=")
            source_arn, versioned = f"arn:aws:s3:::{path}", bool(query)
        read = "s3:GetObjectVersion" if versioned else "s3:GetObject"
        return [("s3:PutObject", f"arn:aws:s3:::{bucket}/{params['Key']}"), (read, source_arn)]
    action = _S3_ACTIONS.get(operation, operation)
    if "Key" not in params:
        return [(f"s3:{action}", f"arn:aws:s3:::{bucket}")]
    if params.get("VersionId") and action in {"GetObject", "DeleteObject"}:
        action += "Version"
    return [(f"s3:{action}", f"arn:aws:s3:::{bucket}/{params['Key']}")]


def _resource(service: str, operation: str, params: dict[str, Any]) -> str:
    arn = f"arn:aws:{{}}:{REGION}:{ACCOUNT_ID}:"
    if service == "dynamodb":
        table = params.get("TableName", "")
        index = params.get("IndexName")
        return arn.format("dynamodb") + f"table/{table}" + (f"/index/{index}" if index else "")
    if service == "sns":
        return params.get("TopicArn") or params.get("TargetArn") or "*"
    if service == "stepfunctions":
        return params.get("stateMachineArn") or params.get("executionArn") or "*"
    if service in {"sagemaker", "sagemaker-runtime"}:
        return _sagemaker_resource(operation, params, arn.format("sagemaker"))
    if service == "scheduler":
        return arn.format("scheduler") + f"schedule/{params.get('GroupName', 'default')}/{params.get('Name', '')}"
    if service == "cloudwatch" and "AlarmName" in params:
        return arn.format("cloudwatch") + f"alarm:{params['AlarmName']}"
    if service == "application-autoscaling":
        return "*"  # its scalable-target ARNs are made up by the service; the policy cannot name them
    if service == "lambda" and "FunctionName" in params:
        name = params["FunctionName"]
        return name if name.startswith("arn:") else arn.format("lambda") + f"function:{name}"
    return "*"


def _sagemaker_resource(operation: str, params: dict[str, Any], base: str) -> str:
    for key, kind in (("EndpointName", "endpoint"), ("EndpointConfigName", "endpoint-config"),
                      ("ModelName", "model"), ("ModelPackageGroupName", "model-package-group"),
                      ("TrainingJobName", "training-job"), ("ProcessingJobName", "processing-job")):
        if key in params and not operation.startswith("List"):
            name = params[key].lower() if kind != "model-package-group" else params[key]
            if operation == "CreateModelPackage":
                return f"{base}model-package/{params[key]}/*"
            return f"{base}{kind}/{name}"
    package = params.get("ModelPackageName") or params.get("ModelPackageArn")
    if package:
        return package if package.startswith("arn:") else f"{base}model-package/{package}"
    return "*"
