"""Named exceptions. Lambda reports an exception's class name as the error type, so the state
machines can Retry or Catch these by name (e.g. "ErrorEquals": ["EvaluationNotFound"])."""


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
