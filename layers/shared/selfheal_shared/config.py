"""A model's configuration: one validated document (config/<model>.yaml or .json in the data bucket).

Only `target`, `problem` and `metric` are required; everything else has a default. Validation is all
or nothing: `load_config` returns a complete ModelConfig or raises ConfigError naming every bad field.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal

from botocore.exceptions import ClientError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from selfheal_shared import aws
from selfheal_shared.errors import ConfigError, ConfigNotFound
from selfheal_shared.names import check_model_name
from selfheal_shared.settings import get_settings

MAX_DOCUMENT_BYTES = 64 * 1024
MAX_NESTING = 16

ProblemType = Literal["binary", "multiclass", "regression"]
MetricName = Literal["auc", "accuracy", "f1", "logloss", "rmse", "mae", "r2"]
CheckType = Literal[
    "data_type_check",
    "completeness_check",
    "baseline_drift_check",
    "missing_column_check",
    "extra_column_check",
    "categorical_values_check",
]

CLASSIFICATION_METRICS = frozenset({"auc", "accuracy", "f1", "logloss"})
REGRESSION_METRICS = frozenset({"rmse", "mae", "r2"})
LOWER_IS_BETTER = frozenset({"logloss", "rmse", "mae"})
# Bounded metrics: a threshold outside these ranges can never (or always) be met.
_METRIC_RANGES = {"auc": (0.0, 1.0), "accuracy": (0.0, 1.0), "f1": (0.0, 1.0), "logloss": (0.0, math.inf),
                  "rmse": (0.0, math.inf), "mae": (0.0, math.inf), "r2": (-math.inf, 1.0)}

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HYPERPARAMETER_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Set by selfheal itself in the training job (runs.py); a config must not override them.
_RESERVED_HYPERPARAMETERS = frozenset({"target", "problem"})
_INSTANCE_TYPE = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"
# SageMaker's own bounds on a job's InstanceCount (botocore: ProcessingInstanceCount 1 to 100; TrainingInstanceCount
# has min 0, for heterogeneous clusters, and no maximum but the account's quota): at most 100 for both, stricter.
MAX_JOB_INSTANCES = 100
_SCHEDULE = r"^(rate\(([1-9][0-9]{0,3}) (minute|minutes|hour|hours|day|days)\)|cron\([^()\x00-\x1f]{1,200}\))$"

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


def _no_repeats(what: str) -> AfterValidator:
    def check(values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError(f"must not repeat {what}")
        return values

    return AfterValidator(check)


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Metric(_Section):
    name: MetricName
    threshold: FiniteFloat
    min_improvement: FiniteFloat = Field(0.0, ge=0)

    @property
    def greater_is_better(self) -> bool:
        return self.name not in LOWER_IS_BETTER

    @model_validator(mode="after")
    def _threshold_in_range(self) -> Metric:
        low, high = _METRIC_RANGES[self.name]
        if not low <= self.threshold <= high:
            raise ValueError(f"threshold: {self.threshold} is outside the range of {self.name} "
                             f"[{low}, {high}]")
        return self


class Trigger(_Section):
    mode: Literal["every_upload", "min_new_rows"] = "every_upload"
    min_new_rows: int = Field(1000, ge=1, le=10**12)


class Window(_Section):
    mode: Literal["all", "latest", "last_n"] = "all"
    last_n: int | None = Field(None, ge=1, le=10000)

    @model_validator(mode="after")
    def _last_n_only_with_its_mode(self) -> Window:
        if self.mode == "last_n" and self.last_n is None:
            raise ValueError("last_n: required when mode is last_n")
        if self.mode != "last_n" and self.last_n is not None:
            raise ValueError("last_n: only applies when mode is last_n")
        return self


class Spot(_Section):
    enabled: bool = False
    max_runtime_seconds: int = Field(3600, ge=60, le=28 * 24 * 3600)
    max_wait_seconds: int = Field(7200, ge=60, le=28 * 24 * 3600)

    @model_validator(mode="after")
    def _wait_covers_runtime(self) -> Spot:
        # SageMaker refuses MaxWaitTimeInSeconds < MaxRuntimeInSeconds for spot training.
        if self.enabled and self.max_wait_seconds < self.max_runtime_seconds:
            raise ValueError("max_wait_seconds: must be at least max_runtime_seconds when spot is enabled")
        return self


class Training(_Section):
    window: Window = Window()
    spot: Spot = Spot()
    instance_type: str = Field("ml.m5.xlarge", pattern=_INSTANCE_TYPE)
    processing_instance_type: str = Field("ml.m5.large", pattern=_INSTANCE_TYPE)
    # Train: XGBoost's distributed training, one worker per instance, each on its shard of the train split.
    instance_count: int = Field(1, ge=1, le=MAX_JOB_INSTANCES)
    # Preprocess (Evaluate scores champion and challenger on one instance: its rows must not be split).
    processing_instance_count: int = Field(1, ge=1, le=MAX_JOB_INSTANCES)


class Validation(_Section):
    min_rows: int = Field(50, ge=1, le=10**9)
    max_bytes: int | None = Field(None, ge=1)
    allowed_formats: Annotated[list[Literal["csv", "parquet"]], _no_repeats("a format")] = Field(
        ["csv", "parquet"], min_length=1, max_length=2)

    def limit_bytes(self, environment_limit: int) -> int:
        """The stricter of the deployment's MAX_UPLOAD_BYTES and this model's max_bytes."""
        return min(environment_limit, self.max_bytes or environment_limit)


class Split(_Section):
    validation: FiniteFloat = Field(0.15, gt=0, le=0.4)
    test: FiniteFloat = Field(0.15, gt=0, le=0.4)
    seed: int = Field(42, ge=0, le=2**31 - 1)


class Autoscaling(_Section):
    min_capacity: int = Field(1, ge=1, le=100)
    max_capacity: int = Field(2, ge=1, le=100)
    target_invocations_per_instance: int = Field(100, ge=1, le=100000)

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.max_capacity < self.min_capacity:
            raise ValueError("max_capacity: must be at least min_capacity")
        return self


class Deploy(_Section):
    instance_type: str = Field("ml.m5.large", pattern=_INSTANCE_TYPE)
    initial_instance_count: int = Field(1, ge=1, le=100)
    data_capture_percent: int = Field(100, ge=0, le=100)
    canary_percent: int = Field(10, ge=1, le=50)  # blue/green canary: at most half the fleet
    baking_seconds: int = Field(300, ge=0, le=3600)
    autoscaling: Autoscaling = Autoscaling()


class Monitor(_Section):
    schedule_expression: str = Field("rate(1 hour)", pattern=_SCHEDULE)
    drift_threshold: FiniteFloat = Field(0.1, gt=0, le=1)
    check_types: Annotated[list[CheckType], _no_repeats("a check type")] = Field(
        ["data_type_check", "completeness_check", "baseline_drift_check", "missing_column_check",
         "extra_column_check", "categorical_values_check"],
        min_length=1,
        max_length=6,
    )
    min_drifted_features: int = Field(1, ge=1, le=10000)
    # The drift analysis job (the quality job joins predictions with labels on one instance).
    instance_count: int = Field(1, ge=1, le=MAX_JOB_INSTANCES)
    # Model quality: captured predictions joined with their labels (ground-truth/<model>/).
    label_delay_hours: FiniteFloat = Field(24.0, ge=0, le=24 * 90)  # how long labels may take to arrive
    min_labels: int = Field(200, ge=1, le=10**7)  # labelled predictions before the realized metric decides
    quality_window_hours: int = Field(24 * 7, ge=1, le=24 * 90)  # the newest predictions judged by their labels


class Retrain(_Section):
    on_violation: Literal["retrain", "alert", "none"] = "retrain"
    cooldown_minutes: int = Field(360, ge=0, le=7 * 24 * 60)
    daily_cap: int = Field(3, ge=0, le=96)
    window: Window | None = None  # None: the training window


def _hyperparameter_value(value: Any) -> int | float | str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a number or a string")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    if isinstance(value, str):
        if not 0 < len(value) <= 256:
            raise ValueError("must be 1 to 256 characters")
        _printable(value)
    return value


def _hyperparameter_name(name: str) -> str:
    if not _HYPERPARAMETER_NAME.fullmatch(name):
        raise ValueError("must be a lowercase identifier (letters, digits, underscores; at most 64)")
    if name in _RESERVED_HYPERPARAMETERS or name.startswith("sagemaker_"):
        raise ValueError("is set by selfheal and cannot be configured")
    return name


HyperparameterName = Annotated[str, AfterValidator(_hyperparameter_name)]
HyperparameterValue = Annotated[Any, AfterValidator(_hyperparameter_value)]


class ModelConfig(_Section):
    target: Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_printable)]
    problem: ProblemType
    metric: Metric
    trigger: Trigger = Trigger()
    training: Training = Training()
    hyperparameters: dict[HyperparameterName, HyperparameterValue] = Field(default_factory=dict, max_length=90)
    approval: Literal["auto", "manual"] = "auto"
    validation: Validation = Validation()
    split: Split = Split()
    deploy: Deploy = Deploy()
    monitor: Monitor = Monitor()
    retrain: Retrain = Retrain()

    @field_validator("target")
    @classmethod
    def _not_blank(cls, target: str) -> str:
        if not target.strip():
            raise ValueError("must not be blank")
        return target

    @field_validator("metric")
    @classmethod
    def _metric_fits_problem(cls, metric: Metric, info: ValidationInfo) -> Metric:
        problem = info.data.get("problem")  # validated first: declared before metric
        if problem is None:
            return metric
        fits = REGRESSION_METRICS if problem == "regression" else CLASSIFICATION_METRICS
        if metric.name not in fits:
            raise ValueError(f"name: {metric.name} does not apply to a {problem} problem "
                             f"(use one of {', '.join(sorted(fits))})")
        return metric

    @property
    def greater_is_better(self) -> bool:
        return self.metric.greater_is_better

    @property
    def is_classification(self) -> bool:
        return self.problem != "regression"

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def load_config(source: str | bytes | dict[str, Any], *, fmt: Literal["yaml", "json"] = "yaml") -> ModelConfig:
    """Parse and validate a configuration given as YAML or JSON text, or as an already-parsed dict.

    YAML is parsed safely (no tags), without aliases (no billion-laughs) and with bounded size and
    nesting; any problem, in parsing or in any field, raises ConfigError naming the field paths."""
    document = source if isinstance(source, dict) else _parse(source, fmt)
    if document is None:
        raise ConfigError(["(document): empty; a configuration needs at least target, problem and metric"])
    if not isinstance(document, dict):
        raise ConfigError([f"(document): must be a mapping of fields, not {type(document).__name__}"])
    try:
        return ModelConfig.model_validate(document)
    except ValidationError as error:
        raise ConfigError([_describe(e) for e in error.errors()]) from None


def _parse(text: str | bytes, fmt: str) -> Any:
    if isinstance(text, bytes):
        if len(text) > MAX_DOCUMENT_BYTES:
            raise ConfigError([f"(document): larger than {MAX_DOCUMENT_BYTES} bytes"])
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(["(document): not UTF-8 text"]) from None
    if len(text.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        raise ConfigError([f"(document): larger than {MAX_DOCUMENT_BYTES} bytes"])
    if fmt == "json":
        try:
            return json.loads(text)
        except (json.JSONDecodeError, RecursionError) as error:
            raise ConfigError([f"(document): not valid JSON: {error}"]) from None
    # PyYAML is imported here, by the invocations that read a YAML document: the others (every function's
    # events, JSON configurations) do not pay for it at cold start.
    import yaml

    try:
        _check_yaml_shape(text)
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError([f"(document): not valid YAML: {error}".replace("\n", " ")]) from None


def _check_yaml_shape(text: str) -> None:
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise ConfigError(["(document): YAML aliases are not allowed"])
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_NESTING:
                raise ConfigError([f"(document): nested deeper than {MAX_NESTING} levels"])
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


_RELATIVE_FIELD = re.compile(r"([a-z_][a-z0-9_.]*): (.*)", re.DOTALL)


def _describe(error: dict[str, Any]) -> str:
    """One problem as "<field path>: <message>", e.g. "metric.threshold: Input should be a valid
    number". Model-level checks start their message with the field they blame, relative to the
    section that declares them ("last_n: required ...")."""
    parts = [_printable_part(part) for part in error["loc"] if part != "[key]"]
    message = error["msg"].removeprefix("Value error, ")
    relative = _RELATIVE_FIELD.fullmatch(message)
    if relative:
        parts.append(relative.group(1))
        message = relative.group(2)
    return f"{'.'.join(parts) or '(document)'}: {message}"


def _printable_part(part: str | int) -> str:
    text = str(part)
    if _CONTROL.search(text) or len(text) > 64:
        text = text[:64].encode("unicode_escape").decode("ascii")
    return text


def read_model_config(model: str) -> ModelConfig:
    """config/<model>.yaml, else config/<model>.json, from the data bucket."""
    check_model_name(model)
    bucket = get_settings().data_bucket
    for suffix, fmt in ((".yaml", "yaml"), (".json", "json")):
        key = f"config/{model}{suffix}"
        try:
            response = aws.client("s3").get_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if aws.is_missing(error):
                continue
            raise
        with response["Body"] as body:
            data = body.read(MAX_DOCUMENT_BYTES + 1)
        try:
            return load_config(data, fmt=fmt)
        except ConfigError as error:
            raise ConfigError([f"{key}: {problem}" for problem in error.problems]) from None
    raise ConfigNotFound(f"no configuration for model {model!r}: put config/{model}.yaml in s3://{bucket}/")
