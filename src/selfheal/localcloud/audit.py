"""Every AWS API call a function makes on the local cloud, with the IAM action and resource it needs;
and, at the same point, the API errors AWS documents, injected on purpose.

Checking the calls against template.yaml's roles (selfheal.iam) proves least privilege at runtime: a
function that calls something its role does not grant fails the check here instead of on AWS. A fault
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

from .faults import Faults
from .template import ACCOUNT_ID, REGION

# HTTP status AWS answers each injectable error with (throttling and server errors are retryable).
_ERROR_STATUS = {"ProvisionedThroughputExceededException": 400, "ThrottlingException": 400,
                 "RequestLimitExceeded": 400, "SlowDown": 503, "InternalError": 500, "ServiceUnavailable": 503,
                 "InternalServerError": 500, "AccessDenied": 403, "NoSuchKey": 404}

_IAM_PREFIX = {"stepfunctions": "states", "sagemaker-runtime": "sagemaker"}
# Operations whose IAM action differs from their API name.
_S3_ACTIONS = {"HeadObject": "GetObject", "ListObjectsV2": "ListBucket", "ListObjects": "ListBucket",
               "HeadBucket": "ListBucket", "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject",
               "CompleteMultipartUpload": "PutObject", "ListObjectVersions": "ListBucketVersions"}


@dataclass(frozen=True)
class Call:
    principal: str  # the template's logical id of the function that made the call
    service: str
    operation: str
    params: dict[str, Any]

    def needs(self) -> list[tuple[str, str]]:
        """(IAM action, resource ARN) pairs this call needs."""
        prefix = _IAM_PREFIX.get(self.service, self.service)
        if self.service == "s3":
            return _s3_needs(self.operation, self.params)
        return [(f"{prefix}:{self.operation}", _resource(self.service, self.operation, self.params))]

    def context(self) -> dict[str, str]:
        """The IAM condition keys AWS sets from this call's request (where policies use them)."""
        if self.service == "application-autoscaling":
            keys = {"ServiceNamespace": "service-namespace", "ScalableDimension": "scalable-dimension"}
            return {f"application-autoscaling:{key}": self.params[param]
                    for param, key in keys.items() if param in self.params}
        return {}


class CallAudit:
    """Who makes each call: the principal is a context variable, so it follows a function's work into the
    worker threads it hands work to (boto3's transfer manager copies and transfers in a thread pool)."""

    def __init__(self, faults: Faults) -> None:
        self.calls: list[Call] = []
        self._faults = faults
        self._principal: contextvars.ContextVar[str | None] = contextvars.ContextVar("principal", default=None)

    @contextlib.contextmanager
    def acting_as(self, principal: str | None) -> Iterator[None]:
        token = self._principal.set(principal)
        try:
            yield
        finally:
            self._principal.reset(token)

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
            principal = audit._principal.get()
            if principal:
                audit.calls.append(Call(principal, service, operation_name, dict(api_params)))
            fault = audit._faults.take(f"api:{service}:{operation_name}")
            if fault:
                raise ClientError({"Error": {"Code": fault.kind, "Message": f"injected fault: {fault.kind}"},
                                   "ResponseMetadata": {"HTTPStatusCode": _ERROR_STATUS.get(fault.kind, 400),
                                                        "RequestId": str(uuid.uuid4())}},
                                  operation_name)
            return original(client, operation_name, api_params)

        BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]

        def undo() -> None:
            BaseClient._make_api_call = original  # type: ignore[method-assign]
            ThreadPoolExecutor.submit = original_submit  # type: ignore[method-assign]

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
    return "*"


def _sagemaker_resource(operation: str, params: dict[str, Any], base: str) -> str:
    for key, kind in (("EndpointName", "endpoint"), ("EndpointConfigName", "endpoint-config"),
                      ("ModelName", "model"), ("ModelPackageGroupName", "model-package-group")):
        if key in params and not operation.startswith("List"):
            name = params[key].lower() if kind != "model-package-group" else params[key]
            if operation == "CreateModelPackage":
                return f"{base}model-package/{params[key]}/*"
            return f"{base}{kind}/{name}"
    package = params.get("ModelPackageName") or params.get("ModelPackageArn")
    if package:
        return package if package.startswith("arn:") else f"{base}model-package/{package}"
    return "*"
