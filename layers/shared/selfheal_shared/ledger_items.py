"""The run ledger's key scheme and item types (docs/architecture.md, "Ledger" and "Ledger items added").

One partition per model (`MODEL#<model>`); an item's kind starts its sort key. The product (ledger.py) and
the tools that read the table back (the report, the backtest) take the keys from here. TypedDicts, not
models: items stay the plain dicts boto3 reads and writes, and this module costs nothing at import."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

MODEL = "MODEL#"
# Kinds with many items per model: the sort key goes on with their parts, joined by "#".
DATASET, QUARANTINE, RUN, MONITOR, RETRAIN = "DATASET#", "QUARANTINE#", "RUN#", "MONITOR#", "RETRAIN#"
# Kinds with one item per model: the kind is the whole sort key.
LOCK, CHAMPION, ENDPOINT, PENDING_RETRAIN = "LOCK", "CHAMPION", "ENDPOINT", "PENDING_RETRAIN"


def partition_key(model: str) -> str:
    return f"{MODEL}{model}"


def sort_key(kind: str, *parts: str) -> str:
    """sort_key(RUN, run_id) -> "RUN#<run_id>"; sort_key(LOCK) -> "LOCK"."""
    return kind + "#".join(parts)


def item_key(model: str, kind: str, *parts: str) -> dict[str, str]:
    """The table's key of one item, as GetItem, UpdateItem and DeleteItem take it."""
    return {"pk": partition_key(model), "sk": sort_key(kind, *parts)}


class Keys(TypedDict):
    pk: str
    sk: str


class DatasetItem(Keys):
    model: str
    key: str
    version_id: str | None
    s3_uri: str
    rows: int
    columns: int
    bytes: int
    format: str
    recorded_at: str
    consumed_by: NotRequired[str]  # the run that trained on it first
    # Labelled traffic (runs.LABELLED_TRAFFIC) says where it comes from:
    source: NotRequired[str]
    execution: NotRequired[str]  # the monitoring execution that joined it
    model_package_arn: NotRequired[str | None]  # whose predictions were labelled


class QuarantineItem(Keys):
    model: str
    key: str
    version_id: str | None
    quarantine_key: str
    reason: str
    check: str
    recorded_at: str


class RunItem(Keys, total=False):
    """put_run writes the start; the Gate, RecordRun and RecordDeployment add to it (update_run)."""

    model: str
    run_id: str
    trigger: str
    cause_id: str
    status: str  # RUNNING | SUCCEEDED | FAILED
    reason: str
    datasets: list[str]  # S3 URIs the run trains on
    consumes: list[str]  # sort keys of the datasets it claims
    code_version: str
    artifacts_uri: str
    job_prefix: str
    execution_arn: str
    execution_input: str  # JSON
    lock_seconds: int
    started_at: str
    ended_at: str
    decision: str  # deployed | registered | rejected | failed
    gate: dict[str, Any]  # {passed, reasons}
    metrics: dict[str, float | None]
    champion_metrics: dict[str, float | None] | None
    evaluation_uri: str
    jobs: dict[str, str | None]
    model_package_arn: str | None
    endpoint_config: str
    error: str
    cause: str | None


class LockItem(Keys):
    run_id: str
    acquired_at: str
    expires_at: str


class ChampionItem(Keys):
    model: str
    model_package_arn: str
    run_id: str
    model_data_url: str
    metrics: dict[str, Any]
    since: str
    baseline_uri: NotRequired[str]  # once deployed
    endpoint_config: NotRequired[str]


class EndpointItem(Keys, total=False):
    model: str
    endpoint_name: str
    status: str
    model_package_arn: str
    run_id: str
    endpoint_config: str
    model_name: str
    baseline_uri: str
    schedule_name: str
    deployed_at: str
    history: list[dict[str, Any]]  # one entry per rollout: outcome, model_package_arn, run_id, reason, at, ...


class MonitorItem(Keys):
    model: str
    at: str  # the window's end, or when the execution failed
    execution: str
    status: NotRequired[str]
    action: NotRequired[str]
    reason: NotRequired[str]
    violations: NotRequired[list[dict[str, str]]]
    drift: NotRequired[dict[str, float | None]]
    rows: NotRequired[int]
    run_id: NotRequired[str]
    suppressed: NotRequired[str]
    quality: NotRequired[dict[str, Any]]
    report_uri: NotRequired[str]
    window_start: NotRequired[str]
    window_end: NotRequired[str]


class RetrainItem(Keys):
    model: str
    at: str
    execution: str  # the monitoring execution that started it
    run_id: NotRequired[str]
    trigger: NotRequired[str]  # drift | quality
    features: NotRequired[list[str]]


class PendingRetrainItem(Keys):
    model: str
    since: str
    execution: str
    reason: str
