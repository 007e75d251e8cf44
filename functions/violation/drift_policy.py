"""Violation: what one monitoring execution's findings mean for the model, decided and recorded.

Reads the report ml/monitor.py wrote (constraint_violations.json and drift_metrics.json, Model
Monitor's format plus selfheal's drift metrics), publishes each feature's drift distance as a metric,
and decides by the model's configuration:
- violations count only for the configured check types (monitor.check_types), and only when at
  least monitor.min_drifted_features features have one;
- then retrain.on_violation says retrain, alert or none;
- a retrain passes the guard rails first: a cooldown since the last drift retrain, a cap on drift
  retrains in 24 hours, and one run in flight per model (maybe_start_run refuses a held lock);
  a suppressed retrain is an alert with the reason.
A report that is missing or malformed is an alert, never a retrain. Every decision becomes a MONITOR
item and a notification; a retrain also a RETRAIN item (what the cooldown and the cap count)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from selfheal_shared import aws, ledger, notify
from selfheal_shared.config import ModelConfig, Retrain, read_model_config
from selfheal_shared.errors import ConfigError, ConfigNotFound
from selfheal_shared.idempotency import run_once
from selfheal_shared.runs import maybe_start_run
from selfheal_shared.s3uri import S3Uri
from selfheal_shared.serving_events import ViolationRequest
from selfheal_shared.settings import get_settings

metrics = Metrics()

COMPLETED, WITH_VIOLATIONS, FAILED = "Completed", "CompletedWithViolations", "Failed"
MAX_REPORT_BYTES = 16 * 1024 * 1024
DAY = timedelta(days=1)


class ReportUnreadable(Exception):
    """The monitor report is missing or not in the format ml/monitor.py writes (decided on, not raised)."""


# The report, as far as the decision reads it; more fields are welcome.


class _Document(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ReportViolation(_Document):
    feature_name: str
    constraint_check_type: str
    description: str = ""


class ConstraintViolations(_Document):
    violations: list[ReportViolation]


class FeatureDrift(_Document):
    distance: float | None = Field(allow_inf_nan=False)


class DriftMetrics(_Document):
    rows: int = Field(ge=0)
    emit_metrics: bool = True
    features: dict[str, FeatureDrift]


@dataclass(frozen=True)
class Report:
    violations: list[ReportViolation]
    drift: DriftMetrics


@dataclass(frozen=True)
class Decision:
    status: str
    action: str  # retrain | alert | none
    reason: str
    violations: list[dict[str, str]] = field(default_factory=list)
    drift: dict[str, float | None] = field(default_factory=dict)
    rows: int = 0
    run_id: str | None = None
    suppressed: str | None = None  # cooldown | daily_cap | run_in_flight | not_started


def judge(request: ViolationRequest, context: LambdaContext | None = None) -> dict[str, Any]:
    # Once per execution (and error): a retried invocation replays the decision, never retrains twice.
    return run_once("violation", decide_and_record, request, key="[execution, error.error]", context=context)


def decide_and_record(request: ViolationRequest) -> dict[str, Any]:
    now = datetime.now(UTC)
    decision = decide(request, now)
    result = {"model": request.model, "execution": request.execution, **asdict(decision)}
    record(request, decision, now)
    notify.publish(f"selfheal {request.model}: monitoring {decision.status}, action {decision.action}",
                   {**result, "window": request.window.model_dump() if request.window else None},
                   event=f"monitor.{decision.action}")
    metrics.add_metric(name=f"Monitor{decision.action.capitalize()}", unit=MetricUnit.Count, value=1)
    return result


def decide(request: ViolationRequest, now: datetime) -> Decision:
    if request.error is not None:
        return Decision(FAILED, "alert", f"monitoring failed: {request.error.error}: {request.error.cause or ''}")
    window = request.window
    assert window is not None  # the request model requires a window without an error
    if not window.has_data or not window.report_uri:
        return Decision(COMPLETED, "none", window.reason)
    try:
        report = read_report(window.report_uri)
    except ReportUnreadable as error:
        return Decision(FAILED, "alert", f"the monitor report is unreadable, so no retrain: {error}")
    publish_drift(request.model, report.drift)
    found = {"violations": [v.model_dump() for v in report.violations], "rows": report.drift.rows,
             "drift": {name: feature.distance for name, feature in report.drift.features.items()}}
    if not report.violations:
        return Decision(COMPLETED, "none", f"no violations in {report.drift.rows} rows", **found)
    try:
        config = read_model_config(request.model)
    except (ConfigNotFound, ConfigError) as error:
        return Decision(WITH_VIOLATIONS, "alert", f"no policy to apply ({error}), so no retrain", **found)
    return Decision(WITH_VIOLATIONS, **apply_policy(request, config, report.violations, now), **found)


def apply_policy(request: ViolationRequest, config: ModelConfig, violations: list[ReportViolation],
                 now: datetime) -> dict[str, Any]:
    """action, reason and (for a retrain) run_id, or why a retrain was suppressed."""
    counted = [v for v in violations if v.constraint_check_type in config.monitor.check_types]
    features = sorted({v.feature_name for v in counted})
    summary = (f"{len(violations)} violation(s); {len(features)} feature(s) by the counted checks"
               f"{' (' + ', '.join(features) + ')' if features else ''}")
    if len(features) < config.monitor.min_drifted_features:
        return {"action": "none",
                "reason": f"{summary}, fewer than min_drifted_features {config.monitor.min_drifted_features}"}
    policy = config.retrain.on_violation
    if policy != "retrain":
        return {"action": policy, "reason": f"{summary}; retrain.on_violation is {policy}"}
    held = guard_rail(request.model, request.execution, config.retrain, now)
    if held:
        kind, why = held
        return {"action": "alert", "reason": f"{summary}; retrain suppressed: {why}", "suppressed": kind}
    started = maybe_start_run(request.model, "drift", cause_id=request.execution)
    if not started.started:
        lock = ledger.get_lock(request.model)
        kind = "run_in_flight" if lock and lock["run_id"] != started.run_id else "not_started"
        return {"action": "alert", "reason": f"{summary}; retrain suppressed: {started.reason}", "suppressed": kind}
    ledger.put_retrain(request.model, at=ledger.timestamp(now), execution=request.execution, run_id=started.run_id,
                       features=features)
    return {"action": "retrain", "reason": f"{summary}; retraining as run {started.run_id}", "run_id": started.run_id}


def guard_rail(model: str, execution: str, policy: Retrain, now: datetime) -> tuple[str, str] | None:
    """(kind, reason) of the first guard rail a retrain now would break, or None. This execution's
    own RETRAIN item (from an attempt that crashed after starting the run) does not count."""
    cooldown = timedelta(minutes=policy.cooldown_minutes)
    recent = [r for r in ledger.retrains_since(model, ledger.timestamp(now - max(cooldown, DAY)))
              if r["execution"] != execution]
    if recent and recent[0]["at"] > ledger.timestamp(now - cooldown):
        return "cooldown", (f"the last drift retrain (run {recent[0].get('run_id')}) started at {recent[0]['at']}, "
                            f"within the cooldown of {policy.cooldown_minutes} minutes")
    today = [r for r in recent if r["at"] > ledger.timestamp(now - DAY)]
    if len(today) >= policy.daily_cap:
        return "daily_cap", (f"{len(today)} drift retrain(s) in the last 24 hours reach the daily cap of "
                             f"{policy.daily_cap}")
    return None


def read_report(report_uri: str) -> Report:
    folder = S3Uri.parse(report_uri)
    try:
        violations = ConstraintViolations.model_validate(read_json(folder.join("constraint_violations.json")))
        drift = DriftMetrics.model_validate(read_json(folder.join("drift_metrics.json")))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:5])
        raise ReportUnreadable(f"not in the monitor's format: {problems}") from None
    return Report(violations.violations, drift)


def read_json(uri: S3Uri) -> Any:
    try:
        with aws.s3().get_object(Bucket=uri.bucket, Key=uri.key)["Body"] as body:
            data = body.read(MAX_REPORT_BYTES + 1)
    except ClientError as error:
        if error.response["Error"]["Code"] in {"NoSuchKey", "404"}:
            raise ReportUnreadable(f"{uri} is missing") from None
        raise
    if len(data) > MAX_REPORT_BYTES:
        raise ReportUnreadable(f"{uri} is larger than {MAX_REPORT_BYTES} bytes")
    try:
        return json.loads(data)
    except ValueError as error:
        raise ReportUnreadable(f"{uri} is not JSON: {error}") from None


def publish_drift(model: str, drift: DriftMetrics) -> None:
    """One DriftDistance metric per feature (dimensions model, feature); features without one are skipped."""
    if not drift.emit_metrics:
        return
    namespace = get_settings().metrics_namespace
    for feature, values in drift.features.items():
        if values.distance is None:
            continue
        with single_metric(name="DriftDistance", unit=MetricUnit.NoUnit, value=values.distance, namespace=namespace,
                           default_dimensions={"model": model}) as metric:
            metric.add_dimension(name="feature", value=feature)


def record(request: ViolationRequest, decision: Decision, now: datetime) -> None:
    """The MONITOR item. A window whose report was judged (or had no traffic) is done: its end is where
    the next window starts; a failed analysis leaves it to the next execution."""
    window = request.window
    fields = asdict(decision)
    if window is not None:
        fields["report_uri"] = window.report_uri
        if decision.status != FAILED:
            fields |= {"window_start": window.start, "window_end": window.end}
    ledger.put_monitor(request.model, at=window.end if window else ledger.timestamp(now), execution=request.execution,
                       **{name: value for name, value in fields.items() if value is not None})
