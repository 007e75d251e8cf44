"""Violation: what one monitoring execution's findings mean for the model, decided and recorded.

Reads the reports the execution's jobs wrote: ml/monitor.py's (constraint_violations.json and
drift_metrics.json, Model Monitor's format plus selfheal's drift metrics) and ml/quality.py's
(quality_metrics.json: the realized and estimated metric, label counts, violations). Publishes each
feature's drift distance as a metric, and decides by the model's configuration:
- drift violations count only for the configured check types (monitor.check_types), and only when at
  least monitor.min_drifted_features features have one;
- then healing.judge: labels decide, drift without new labelled data waits for them, estimates only
  warn; retrain.on_violation may turn a retrain into an alert or nothing;
- a retrain passes the guard rails first: a cooldown since the last monitor retrain, a cap on them in
  24 hours, and one run in flight per model (maybe_start_run refuses a held lock); a suppressed
  retrain is an alert with the reason, and stays pending;
- a quality retrain trains on the labelled traffic: the job's labelled requests become a dataset.
A report that is missing or malformed is an alert, never a retrain. Every decision becomes a MONITOR
item and a notification; a retrain also a RETRAIN item (what the cooldown and the cap count); a retrain
waiting for labels a PENDING_RETRAIN item."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from healing import Findings, Judgement, Quality
from healing import judge as judge_findings
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from selfheal_shared import aws, ledger, notify
from selfheal_shared.config import ModelConfig, Retrain, read_model_config
from selfheal_shared.errors import ConfigError, ConfigNotFound, ReportUnreadable
from selfheal_shared.idempotency import run_once
from selfheal_shared.runs import LABELLED_TRAFFIC, maybe_start_run
from selfheal_shared.s3uri import S3Uri
from selfheal_shared.serving_events import QualityWindow, ViolationRequest
from selfheal_shared.settings import get_settings

metrics = Metrics()

COMPLETED, WITH_VIOLATIONS, FAILED = "Completed", "CompletedWithViolations", "Failed"
MAX_REPORT_BYTES = 16 * 1024 * 1024
DAY = timedelta(days=1)


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


class QualityViolation(_Document):
    metric_name: str
    constraint_check_type: str
    description: str = ""


class Labelled(_Document):
    file: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    rows: int = Field(ge=0)
    columns: int = Field(ge=1)


class QualityMetrics(_Document):
    """quality_metrics.json, as far as the decision reads it."""

    metric: str
    threshold: float
    labels: dict[str, int]
    metrics: dict[str, float]
    estimated: dict[str, float]
    estimation: str = ""
    violations: list[QualityViolation]
    labelled: Labelled


@dataclass(frozen=True)
class Report:
    violations: list[ReportViolation]
    drift: DriftMetrics


@dataclass(frozen=True)
class Decision:
    status: str
    action: str  # retrain | alert | none | wait_for_labels
    reason: str
    violations: list[dict[str, str]] = field(default_factory=list)
    drift: dict[str, float | None] = field(default_factory=dict)
    rows: int = 0
    run_id: str | None = None
    suppressed: str | None = None  # cooldown | daily_cap | run_in_flight | not_started
    quality: dict[str, Any] | None = None  # the model-quality findings: metrics, estimated, labels, violations


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
    quality_window = window.quality if window.quality is not None and window.quality.has_data else None
    if not (window.has_data and window.report_uri) and quality_window is None:
        return Decision(COMPLETED, "none", window.reason)
    try:
        report = read_report(window.report_uri) if window.has_data and window.report_uri else None
        quality = read_quality(quality_window.report_uri) if quality_window and quality_window.report_uri else None
    except ReportUnreadable as error:
        return Decision(FAILED, "alert", f"the monitor report is unreadable, so no retrain: {error}")
    found: dict[str, Any] = {"quality": quality.model_dump() if quality else None}
    if report is not None:
        publish_drift(request.model, report.drift)
        found |= {"violations": [v.model_dump() for v in report.violations], "rows": report.drift.rows,
                  "drift": {name: feature.distance for name, feature in report.drift.features.items()}}
    violated = bool(report and report.violations) or bool(quality and quality.violations)
    status = WITH_VIOLATIONS if violated else COMPLETED
    try:
        config = read_model_config(request.model)
    except (ConfigNotFound, ConfigError) as error:
        return Decision(status, "alert" if violated else "none", f"no policy to apply ({error}), so no retrain",
                        **found)
    drift, enough, features = drift_findings(config, report, window.reason)
    findings = Findings(drift, enough, quality=quality_findings(config, quality),
                        new_labelled_rows=sum(int(d.get("rows", 0)) for d in ledger.unconsumed_datasets(request.model)),
                        pending=ledger.get_pending_retrain(request.model) is not None)
    judgement = judge_findings(findings, config.retrain.on_violation)
    evidence = Evidence(features, quality_window, quality.labelled if quality else None)
    return Decision(status, **act(request, config, judgement, findings, evidence, now), **found)


def drift_findings(config: ModelConfig, report: Report | None, no_report: str) -> tuple[str, bool, list[str]]:
    """(the drift analysis in words, whether enough features drifted to act on, the features counted)."""
    if report is None:
        return f"no drift analysis ({no_report})", False, []
    if not report.violations:
        return f"no violations in {report.drift.rows} rows", False, []
    counted = [v for v in report.violations if v.constraint_check_type in config.monitor.check_types]
    features = sorted({v.feature_name for v in counted})
    summary = (f"{len(report.violations)} violation(s); {len(features)} feature(s) by the counted checks"
               f"{' (' + ', '.join(features) + ')' if features else ''}")
    enough = bool(features) and len(features) >= config.monitor.min_drifted_features
    if not enough:
        summary += f", fewer than min_drifted_features {config.monitor.min_drifted_features}"
    return summary, enough, features


def quality_findings(config: ModelConfig, quality: QualityMetrics | None) -> Quality | None:
    if quality is None:
        return None
    metric = config.metric
    return Quality(metric.name, metric.threshold, metric.greater_is_better, config.monitor.min_labels,
                   matched=int(quality.labels.get("matched", 0)), pending=int(quality.labels.get("pending", 0)),
                   realized=quality.metrics.get(metric.name),
                   estimated=quality.estimated.get(metric.name))


@dataclass(frozen=True)
class Evidence:
    """What a retrain needs from the findings: the drifted features, and the labelled traffic."""

    features: list[str]
    quality_window: QualityWindow | None
    labelled: Labelled | None


def act(request: ViolationRequest, config: ModelConfig, judgement: Judgement, findings: Findings,
        evidence: Evidence, now: datetime) -> dict[str, Any]:
    """Carry the judgement out: a retrain past the guard rails, and the pending retrain set or cleared."""
    outcome: dict[str, Any] = {"action": judgement.action, "reason": judgement.reason}
    pending = judgement.pending
    if judgement.action == "retrain":
        outcome = retrain(request, config, judgement, evidence, now)
        pending = "clear" if outcome["action"] == "retrain" else "set"
    if pending == "set":
        ledger.set_pending_retrain(request.model, since=ledger.timestamp(now), execution=request.execution,
                                   reason=outcome["reason"])
    elif pending == "clear" and findings.pending:
        ledger.clear_pending_retrain(request.model)
    return outcome


def retrain(request: ViolationRequest, config: ModelConfig, judgement: Judgement, evidence: Evidence,
            now: datetime) -> dict[str, Any]:
    held = guard_rail(request.model, request.execution, config.retrain, now)
    if held:
        kind, why = held
        return {"action": "alert", "reason": f"{judgement.reason}; retrain suppressed: {why}", "suppressed": kind}
    trigger = judgement.trigger or "drift"
    if trigger == "quality" and evidence.quality_window is not None and evidence.labelled is not None:
        record_labelled_traffic(request.model, request.execution, evidence.quality_window, evidence.labelled)
    started = maybe_start_run(request.model, trigger, cause_id=request.execution)
    if not started.started:
        lock = ledger.get_lock(request.model)
        kind = "run_in_flight" if lock and lock["run_id"] != started.run_id else "not_started"
        return {"action": "alert", "reason": f"{judgement.reason}; retrain suppressed: {started.reason}",
                "suppressed": kind}
    ledger.put_retrain(request.model, at=ledger.timestamp(now), execution=request.execution, run_id=started.run_id,
                       trigger=trigger, features=evidence.features)
    return {"action": "retrain", "reason": f"{judgement.reason}; retraining as run {started.run_id}",
            "run_id": started.run_id}


def record_labelled_traffic(model: str, execution: str, window: QualityWindow, labelled: Labelled) -> dict[str, Any]:
    """The quality job's labelled requests, as a dataset of their own (idempotent: its time is the window's end)."""
    source = S3Uri.parse(window.labelled_uri or "").join(labelled.file)
    recorded_at = datetime.strptime(window.end or "", "%Y-%m-%dT%H:%M:%S.%fZ").strftime("%Y%m%dT%H%M%S%fZ")
    target = S3Uri(source.bucket, f"datasets/{model}/{recorded_at}/{labelled.file}")
    s3 = aws.client("s3")
    size = s3.head_object(Bucket=source.bucket, Key=source.key)["ContentLength"]
    s3.copy_object(Bucket=target.bucket, Key=target.key, CopySource={"Bucket": source.bucket, "Key": source.key})
    return ledger.record_dataset(model, key=source.key, version_id=None, s3_uri=str(target), rows=labelled.rows,
                                 columns=labelled.columns, bytes=size, format="csv", recorded_at=recorded_at,
                                 source=LABELLED_TRAFFIC, execution=execution,
                                 model_package_arn=window.model_package_arn)


def guard_rail(model: str, execution: str, policy: Retrain, now: datetime) -> tuple[str, str] | None:
    """(kind, reason) of the first guard rail a retrain now would break, or None. This execution's
    own RETRAIN item (from an attempt that crashed after starting the run) does not count."""
    cooldown = timedelta(minutes=policy.cooldown_minutes)
    recent = [r for r in ledger.retrains_since(model, ledger.timestamp(now - max(cooldown, DAY)))
              if r["execution"] != execution]
    if recent and recent[0]["at"] > ledger.timestamp(now - cooldown):
        return "cooldown", (f"the monitor's last retrain (run {recent[0].get('run_id')}) started at "
                            f"{recent[0]['at']}, within the cooldown of {policy.cooldown_minutes} minutes")
    today = [r for r in recent if r["at"] > ledger.timestamp(now - DAY)]
    if len(today) >= policy.daily_cap:
        return "daily_cap", (f"{len(today)} retrain(s) started by the monitor in the last 24 hours reach the "
                             f"daily cap of {policy.daily_cap}")
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


def read_quality(report_uri: str) -> QualityMetrics:
    try:
        return QualityMetrics.model_validate(read_json(S3Uri.parse(report_uri).join("quality_metrics.json")))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:5])
        raise ReportUnreadable(f"not in the quality monitor's format: {problems}") from None


def read_json(uri: S3Uri) -> dict[str, Any]:
    return aws.read_json(uri, "monitor report", MAX_REPORT_BYTES, ReportUnreadable, ReportUnreadable)


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
