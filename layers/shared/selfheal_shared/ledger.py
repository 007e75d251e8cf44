"""The run ledger: one DynamoDB table, items as in docs/architecture.md ("Ledger"); their keys and
types are in ledger_items.py.

Callers pass and get plain Python values; floats become Decimal on the way in (non-finite ones
become null: DynamoDB cannot store them) and Decimals become int or float on the way out."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from selfheal_shared import aws
from selfheal_shared.errors import LedgerConflict
from selfheal_shared.ledger_items import (
    CHAMPION,
    DATASET,
    ENDPOINT,
    LOCK,
    MONITOR,
    PENDING_RETRAIN,
    QUARANTINE,
    RETRAIN,
    RUN,
    ChampionItem,
    DatasetItem,
    EndpointItem,
    LockItem,
    MonitorItem,
    PendingRetrainItem,
    QuarantineItem,
    RetrainItem,
    RunItem,
    item_key,
    partition_key,
    sort_key,
)

RUNNING, SUCCEEDED, FAILED = "RUNNING", "SUCCEEDED", "FAILED"


def timestamp(moment: datetime | None = None) -> str:
    """ISO-8601 UTC with microseconds; sorts as it reads."""
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def recorded_at(moment: datetime | None = None) -> str:
    """The compact form used in S3 keys and sort keys: YYYYmmddTHHMMSSffffffZ."""
    return (moment or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")


def to_dynamo(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str | int | Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    raise TypeError(f"cannot store {type(value).__name__} in the ledger")


def from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [from_dynamo(v) for v in value]
    return value


def _is_condition_failure(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


def _conditional(write: Callable[[], object]) -> bool:
    """Make a conditional write: True when it was made, False when its condition did not hold."""
    try:
        write()
    except ClientError as error:
        if _is_condition_failure(error):
            return False
        raise
    return True


def _pages(call: Callable[..., dict[str, Any]], request: dict[str, Any]) -> Iterator[Any]:
    """Every item of a Query or Scan, page after page, as plain values."""
    while True:
        page = call(**request)
        yield from (from_dynamo(item) for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return
        request = request | {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def query(table: Any, model: str, kind: str, **extra: Any) -> Iterator[Any]:
    """The model's items whose sort key starts with `kind` (e.g. RUN; every item when empty), in sort-key order."""
    condition = Key("pk").eq(partition_key(model))
    if kind:
        condition &= Key("sk").begins_with(kind)
    return _pages(table.query, {"KeyConditionExpression": condition, **extra})


def scan(table: Any, kind: str, **extra: Any) -> Iterator[Any]:
    """The items of every model whose sort key starts with `kind`, in no order."""
    return _pages(table.scan, {"FilterExpression": Attr("sk").begins_with(kind), **extra})


def _query(model: str, kind: str, **extra: Any) -> Iterator[Any]:
    return query(aws.ledger_table(), model, kind, **extra)


def _put_new(item: Any) -> tuple[Any, bool]:
    """Put unless an item with the same key exists; returns (the stored item, created)."""
    try:
        aws.ledger_table().put_item(Item=to_dynamo(item), ConditionExpression=Attr("sk").not_exists())
    except ClientError as error:
        if not _is_condition_failure(error):
            raise
        existing = aws.ledger_table().get_item(Key={"pk": item["pk"], "sk": item["sk"]}, ConsistentRead=True)
        return from_dynamo(existing["Item"]), False
    return item, True


def _get(model: str, kind: str, *parts: str) -> Any:
    response = aws.ledger_table().get_item(Key=item_key(model, kind, *parts), ConsistentRead=True)
    return from_dynamo(response["Item"]) if "Item" in response else None


def _set(key: dict[str, str], values: Mapping[str, Any], *also: str, extra_values: Mapping[str, Any] | None = None,
         **request: Any) -> Any:
    """UpdateItem: SET each of `values` (names may be reserved words) and the clauses `also`, whose
    placeholders `extra_values` fills; returns the item as it is now."""
    clauses = [f"#s{i} = :s{i}" for i in range(len(values))]
    response = aws.ledger_table().update_item(
        Key=key,
        UpdateExpression="SET " + ", ".join([*clauses, *also]),
        ExpressionAttributeNames={f"#s{i}": name for i, name in enumerate(values)},
        ExpressionAttributeValues={f":s{i}": to_dynamo(value) for i, value in enumerate(values.values())}
        | dict(extra_values or {}),
        ReturnValues="ALL_NEW",
        **request,
    )
    return from_dynamo(response["Attributes"])


def _given(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields to set: None leaves an attribute alone."""
    return {name: value for name, value in fields.items() if value is not None}


# Datasets and quarantined uploads


def record_dataset(
    model: str,
    *,
    key: str,
    version_id: str | None,
    s3_uri: str,
    rows: int,
    columns: int,
    bytes: int,
    format: str,
    recorded_at: str,
    **provenance: Any,
) -> DatasetItem:
    """Put the DATASET item once: a repeat with the same recorded_at and key returns the stored one.
    `provenance` says where a dataset that was not uploaded comes from (source="labelled_traffic",
    the monitoring execution and the model package whose predictions were labelled)."""
    item = DatasetItem(pk=partition_key(model), sk=sort_key(DATASET, recorded_at, key), model=model, key=key,
                       version_id=version_id, s3_uri=s3_uri, rows=rows, columns=columns, bytes=bytes,
                       format=format, recorded_at=recorded_at, **provenance)
    return _put_new(item)[0]


def record_quarantine(
    model: str,
    *,
    key: str,
    version_id: str | None,
    quarantine_key: str,
    reason: str,
    check: str,
    recorded_at: str,
) -> QuarantineItem:
    """Put the QUARANTINE item once, like record_dataset."""
    item = QuarantineItem(pk=partition_key(model), sk=sort_key(QUARANTINE, recorded_at, key), model=model, key=key,
                          version_id=version_id, quarantine_key=quarantine_key, reason=reason, check=check,
                          recorded_at=recorded_at)
    return _put_new(item)[0]


def list_datasets(model: str) -> list[DatasetItem]:
    """Every dataset of the model, oldest first."""
    return list(_query(model, DATASET))


def unconsumed_datasets(model: str) -> list[DatasetItem]:
    """Datasets no run has consumed yet, oldest first."""
    return list(_query(model, DATASET, FilterExpression=Attr("consumed_by").not_exists()))


def list_quarantined(model: str) -> list[QuarantineItem]:
    return list(_query(model, QUARANTINE))


def mark_consumed(model: str, dataset_sks: list[str], run_id: str) -> None:
    """Set consumed_by on the datasets with these sort keys. Idempotent for the same run; another
    run's claim raises LedgerConflict."""
    for sk in dataset_sks:
        try:
            aws.ledger_table().update_item(
                Key={"pk": partition_key(model), "sk": sk},
                UpdateExpression="SET consumed_by = :run",
                ConditionExpression=Attr("sk").exists()
                & (Attr("consumed_by").not_exists() | Attr("consumed_by").eq(run_id)),
                ExpressionAttributeValues={":run": run_id},
            )
        except ClientError as error:
            if _is_condition_failure(error):
                raise LedgerConflict(f"dataset {sk} is gone or consumed by another run") from None
            raise


# Runs


def put_run(model: str, run_id: str, **fields: Any) -> tuple[RunItem, bool]:
    """Create the RUN item unless it exists; returns (the stored item, created)."""
    return _put_new(RunItem(**item_key(model, RUN, run_id), model=model, run_id=run_id, **fields))


def update_run(model: str, run_id: str, **fields: Any) -> RunItem:
    """Set the given attributes (None values are left alone). Creates the item if it is missing,
    so the outcome of an execution started by hand is recorded too."""
    return _set(item_key(model, RUN, run_id), _given(fields) | {"model": model, "run_id": run_id})


def get_run(model: str, run_id: str) -> RunItem | None:
    return _get(model, RUN, run_id)


def list_runs(model: str) -> list[RunItem]:
    """The model's runs, newest first."""
    return sorted(_query(model, RUN), key=lambda run: run.get("started_at", ""), reverse=True)


# The model's lock: at most one run in flight


def acquire_lock(model: str, run_id: str, *, ttl_seconds: int, steal_from: str | None = None) -> bool:
    """Take the LOCK if it is free, expired, already ours, or held by `steal_from` (a holder whose
    execution is known to have ended). Returns False when another run holds it."""
    now = datetime.now(UTC)
    condition = Attr("sk").not_exists() | Attr("expires_at").lt(timestamp(now)) | Attr("run_id").eq(run_id)
    if steal_from:
        condition = condition | Attr("run_id").eq(steal_from)
    item = LockItem(**item_key(model, LOCK), run_id=run_id, acquired_at=timestamp(now),
                    expires_at=timestamp(now + timedelta(seconds=ttl_seconds)))
    return _conditional(lambda: aws.ledger_table().put_item(Item=item, ConditionExpression=condition))


def get_lock(model: str) -> LockItem | None:
    return _get(model, LOCK)


def release_lock(model: str, run_id: str) -> bool:
    """Release the LOCK if this run holds it; returns False when it does not (already released,
    expired and taken by another run)."""
    return _conditional(lambda: aws.ledger_table().delete_item(Key=item_key(model, LOCK),
                                                               ConditionExpression=Attr("run_id").eq(run_id)))


# The champion: the model package serving (or to serve) the model


def get_champion(model: str) -> ChampionItem | None:
    return _get(model, CHAMPION)


def set_champion(
    model: str, *, model_package_arn: str, run_id: str, model_data_url: str, metrics: Mapping[str, Any]
) -> ChampionItem:
    item = ChampionItem(**item_key(model, CHAMPION), model=model, model_package_arn=model_package_arn, run_id=run_id,
                        model_data_url=model_data_url, metrics=dict(metrics), since=timestamp())
    aws.ledger_table().put_item(Item=to_dynamo(item))
    return item


# Serving: the endpoint, its monitoring and drift retrains (docs/architecture.md, "Deploy and heal")


def get_endpoint(model: str) -> EndpointItem | None:
    return _get(model, ENDPOINT)


def record_endpoint(model: str, entry: Mapping[str, Any], **fields: Any) -> EndpointItem:
    """Set the ENDPOINT item's fields (None values are left alone) and append `entry` (one rollout's
    outcome) to its history. Creates the item on a model's first rollout."""
    return _set(item_key(model, ENDPOINT), _given(fields) | {"model": model},
                "history = list_append(if_not_exists(history, :none), :entry)",
                extra_values={":none": [], ":entry": [to_dynamo(dict(entry))]})


def annotate_champion(model: str, model_package_arn: str, **fields: Any) -> bool:
    """Add fields to the CHAMPION item while it still names this package; False when it does not."""
    return _conditional(lambda: _set(item_key(model, CHAMPION), fields,
                                     ConditionExpression=Attr("model_package_arn").eq(model_package_arn)))


def put_monitor(model: str, *, at: str, execution: str, **fields: Any) -> tuple[MonitorItem, bool]:
    """The MONITOR item of one monitoring execution; `at` is the end of its window (or when it failed)."""
    return _put_new(MonitorItem(**item_key(model, MONITOR, at, execution), model=model, at=at, execution=execution,
                                **fields))


def list_monitors(model: str) -> list[MonitorItem]:
    """The model's MONITOR items, newest first."""
    return list(_query(model, MONITOR, ScanIndexForward=False))


def last_window_end(model: str) -> str | None:
    """Where the newest analysed window ended (failed executions analysed nothing and have none)."""
    return next((m["window_end"] for m in _query(model, MONITOR, ScanIndexForward=False) if m.get("window_end")),
                None)


def put_retrain(model: str, *, at: str, execution: str, **fields: Any) -> tuple[RetrainItem, bool]:
    """A retrain the monitor started, on drift or quality (the cooldown and the daily cap count these)."""
    return _put_new(RetrainItem(**item_key(model, RETRAIN, at, execution), model=model, at=at, execution=execution,
                                **fields))


def retrains_since(model: str, since: str) -> list[RetrainItem]:
    """RETRAIN items at or after `since` (a timestamp()), newest first."""
    found: list[RetrainItem] = []
    for item in _query(model, RETRAIN, ScanIndexForward=False):
        if item["at"] < since:
            break
        found.append(item)
    return found


# A retrain waiting for labels (one per model): drift found, but nothing new to learn from yet.


def get_pending_retrain(model: str) -> PendingRetrainItem | None:
    return _get(model, PENDING_RETRAIN)


def set_pending_retrain(model: str, *, since: str, execution: str, reason: str) -> PendingRetrainItem:
    """Record that a retrain waits for labels; an existing one keeps its `since` (when the wait began)."""
    return _put_new(PendingRetrainItem(**item_key(model, PENDING_RETRAIN), model=model, since=since,
                                       execution=execution, reason=reason))[0]


def clear_pending_retrain(model: str) -> PendingRetrainItem | None:
    """Remove the pending retrain; returns what it was (None when there was none)."""
    response = aws.ledger_table().delete_item(Key=item_key(model, PENDING_RETRAIN), ReturnValues="ALL_OLD")
    return from_dynamo(response["Attributes"]) if "Attributes" in response else None
