"""Named exceptions. Lambda reports an exception's class name as the error type, so the state
machines can Retry or Catch these by name (e.g. "ErrorEquals": ["EvaluationNotFound"])."""

import functools
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError


class SelfhealError(Exception):
    """Base of every error selfheal raises on purpose."""


class SettingsError(SelfhealError):
    """The function's environment is missing or has a malformed variable."""


class ConfigError(SelfhealError):
    """A model configuration is invalid; the message names every bad field path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class ConfigNotFound(SelfhealError):
    """No config/<model>.yaml (or .json) in the data bucket."""


class InvalidS3Uri(SelfhealError, ValueError):
    """Not an s3://bucket/key URI."""


class InvalidName(SelfhealError, ValueError):
    """A model name, trigger or run id that cannot be used in S3 keys and SageMaker names."""


class EvaluationNotFound(SelfhealError):
    """evaluation.json is not where the pipeline said it would be."""


class InvalidEvaluation(SelfhealError):
    """evaluation.json is not a JSON object in the format ml/evaluate.py writes."""


class LedgerConflict(SelfhealError):
    """A ledger write would overwrite another run's claim (e.g. a dataset consumed by another run)."""


class UploadRejected(SelfhealError):
    """An upload failed a validation check; ingest quarantines it with this reason."""

    def __init__(self, check: str, reason: str):
        self.check = check
        self.reason = reason
        super().__init__(f"{check}: {reason}")


# Errors a state machine catches by name (the ASL's Catch and Retry): a function raises them, Lambda reports
# the class name as the error type.


class BaselineNotFound(SelfhealError):
    """The serving model's baseline (statistics.json, constraints.json) is missing or unreadable."""


class PackageNotApproved(SelfhealError):
    """The model package is not (or no longer) Approved in the Model Registry."""


class EndpointBusy(SelfhealError):
    """The endpoint is being created, updated or deleted by something else; retried later."""


class EndpointUnusable(SelfhealError):
    """The endpoint is in a state no update can start from (Failed, OutOfService, ...)."""


class SmokeTestFailed(SelfhealError):
    """The endpoint's answer to held-out rows is an error, or not the shape and values it must be."""


class HeldOutRowsNotFound(SelfhealError):
    """The run's test.csv is missing or has no rows to send."""


class ReportUnreadable(SelfhealError):
    """A monitoring report is missing or not in the format the job writes (decided on, not raised out of
    ViolationFunction: an unreadable report is an alert, never a retrain)."""


class AwsThrottled(SelfhealError):
    """An AWS call was throttled (or the service was briefly unavailable) past the SDK's own retries.
    Named so the state machines can Retry it with backoff, as they do a throttled Lambda."""


# Error codes AWS answers for a transient overload rather than a bad request.
THROTTLING_CODES = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "Throttling", "RequestLimitExceeded",
    "TooManyRequestsException", "SlowDown", "ServiceUnavailable", "InternalError", "InternalServerError",
})


def throttling_as_retryable(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Re-raise a throttled AWS call as AwsThrottled (the ASL retries it by name); nothing else changes."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in THROTTLING_CODES:
                raise AwsThrottled(f"{error.operation_name}: {code}") from error
            raise

    return wrapper
