"""IngestFunction's logic: judge one uploaded object, then move it to datasets/ (recorded in the
ledger, maybe starting a run) or to quarantine/ with its reason.

Once per object version: the handler runs `ingest_upload` under Powertools idempotency, so a
duplicate delivery gets the first result. A retry after a crash half-way repeats nothing: the
upload's recorded_at is chosen once (an idempotent step), so every key derived from it is the same
on the retry and the conditional ledger writes happen once; `maybe_start_run` is idempotent by
its deterministic run id; and the upload leaves incoming/ last."""

from __future__ import annotations

import json
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, computed_field
from selfheal_shared import aws, ledger, notify
from selfheal_shared.config import ModelConfig, read_model_config
from selfheal_shared.errors import ConfigError, ConfigNotFound, UploadRejected
from selfheal_shared.idempotency import run_once
from selfheal_shared.runs import maybe_start_run
from selfheal_shared.s3_events import S3ObjectCreatedEvent
from selfheal_shared.s3uri import s3_uri
from selfheal_shared.settings import get_settings
from upload_checks import (
    TableSummary,
    UploadKey,
    check_csv,
    check_format_allowed,
    check_parquet,
    check_size,
    gunzip,
    ignore_reason,
    parse_upload_key,
    quarantine_names,
)

logger = Logger(child=True)
metrics = Metrics()

CHUNK_BYTES = 256 * 1024
# Copies are server-side; big parts keep a multi-gigabyte (over the limit) upload's copy to
# quarantine/ within the function's timeout.
_COPY = TransferConfig(multipart_threshold=512 * 1024**2, multipart_chunksize=512 * 1024**2)
_GONE = frozenset({"404", "NoSuchKey", "NoSuchVersion"})


class Upload(BaseModel):
    """One object version, as the event names it."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    version_id: str | None = None
    etag: str = ""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cause_id(self) -> str:
        """bucket/key/version: the idempotency key, and the cause of the run it may start."""
        return f"{self.bucket}/{self.key}/{self.version_id or 'null'}"

    @classmethod
    def from_event(cls, event: S3ObjectCreatedEvent) -> Upload:
        obj = event.detail.object
        return cls(bucket=event.detail.bucket.name, key=obj.key, version_id=obj.version_id, etag=obj.etag)

    def source(self) -> dict[str, str]:
        """This exact version, as S3 API parameters."""
        return {"Bucket": self.bucket, "Key": self.key} | ({"VersionId": self.version_id} if self.version_id else {})


@dataclass(frozen=True)
class Acceptance:
    upload: Upload
    model: str
    file: str
    format: str
    rows: int
    columns: int
    bytes: int


def ingest_upload(upload: Upload) -> dict[str, Any]:
    """The whole decision for one upload; returns the handler's result."""
    reason = ignore_reason(upload.bucket, upload.key, get_settings().data_bucket)
    head = _head(upload) if reason is None else None
    if reason is None and head is None:
        reason = "the object version no longer exists"
    if reason is not None:
        logger.info("upload ignored", extra={"reason": reason})
        metrics.add_metric(name="UploadsIgnored", unit=MetricUnit.Count, value=1)
        return _result("ignored", upload, reason)
    try:
        acceptance = validate(upload, int(head["ContentLength"]))
    except UploadRejected as rejected:
        return _quarantined(upload, rejected)
    dataset = accept(acceptance, recorded_at_once(upload))
    decision = maybe_start_run(acceptance.model, "upload", upload.cause_id)
    _leave_incoming(upload)
    logger.info("upload accepted", extra={"dataset": dataset, "run": decision.as_dict()})
    metrics.add_metric(name="UploadsAccepted", unit=MetricUnit.Count, value=1)
    if decision.started:
        metrics.add_metric(name="RunsStarted", unit=MetricUnit.Count, value=1)
    return _result("accepted", upload, f"{acceptance.rows} rows, {acceptance.columns} columns; {decision.reason}",
                   model=acceptance.model, dataset_uri=dataset["s3_uri"], run_id=decision.run_id,
                   started=decision.started)


def validate(upload: Upload, size: int) -> Acceptance:
    """Every check, cheapest first; raises UploadRejected."""
    key = parse_upload_key(upload.key)
    config = _config(key.model)
    limit = config.validation.limit_bytes(get_settings().max_upload_bytes)
    check_size(size, limit)
    check_format_allowed(key, config)
    summary = _check_content(upload, key, size, limit, config)
    return Acceptance(upload=upload, model=key.model, file=key.file, format=key.format, rows=summary.rows,
                      columns=summary.columns, bytes=size)


def recorded_at_once(upload: Upload) -> str:
    """The upload's recorded_at, chosen on its first attempt and kept for its retries, so the keys
    derived from it are the same on a retry: copies land on the same key, ledger items are not
    written twice (their writes are conditional on the key)."""
    chosen = run_once("ingest-recorded-at", lambda _: {"recorded_at": ledger.recorded_at()}, upload, key="cause_id")
    return chosen["recorded_at"]


def accept(acceptance: Acceptance, recorded_at: str) -> dict[str, Any]:
    """Copy the upload to datasets/<model>/<recorded_at>/<file> and record the dataset."""
    upload, bucket = acceptance.upload, get_settings().data_bucket
    key = f"datasets/{acceptance.model}/{recorded_at}/{acceptance.file}"
    aws.client("s3").copy(upload.source(), bucket, key, Config=_COPY)
    return ledger.record_dataset(
        acceptance.model, key=upload.key, version_id=upload.version_id, s3_uri=s3_uri(bucket, key),
        rows=acceptance.rows, columns=acceptance.columns, bytes=acceptance.bytes, format=acceptance.format,
        recorded_at=recorded_at,
    )


def quarantine(upload: Upload, rejected: UploadRejected, recorded_at: str) -> tuple[str, str]:
    """Copy the upload to quarantine/ with a reason document beside it, record it in the ledger and
    notify (at least once: a retry after a crash right after publishing publishes again).
    Returns (model folder, quarantine key)."""
    model, file = quarantine_names(upload.key)
    key = f"quarantine/{model}/{recorded_at}/{file}"
    document = {"reason": rejected.reason, "check": rejected.check, "bucket": upload.bucket, "key": upload.key,
                "version_id": upload.version_id, "etag": upload.etag, "quarantine_key": key,
                "recorded_at": recorded_at, "time": ledger.timestamp()}
    aws.client("s3").copy(upload.source(), upload.bucket, key, Config=_COPY)
    aws.client("s3").put_object(Bucket=upload.bucket, Key=f"{key}.reason.json", ContentType="application/json",
                        Body=json.dumps(document, indent=1).encode("utf-8"))
    ledger.record_quarantine(model, key=upload.key, version_id=upload.version_id, quarantine_key=key,
                             reason=rejected.reason, check=rejected.check, recorded_at=recorded_at)
    notify.publish(f"selfheal {model}: upload quarantined ({rejected.check})", {"model": model, **document},
                   event="upload.quarantined")
    return model, key


def _quarantined(upload: Upload, rejected: UploadRejected) -> dict[str, Any]:
    model, key = quarantine(upload, rejected, recorded_at_once(upload))
    _leave_incoming(upload)
    logger.warning("upload quarantined", extra={"check": rejected.check, "reason": rejected.reason})
    metrics.add_metric(name="UploadsQuarantined", unit=MetricUnit.Count, value=1)
    metrics.add_metadata(key="check", value=rejected.check)
    return _result("quarantined", upload, rejected.reason, model=model, check=rejected.check, quarantine_key=key)


def _leave_incoming(upload: Upload) -> None:
    """Delete this version only (a newer upload of the same key stays), once its copy is recorded.
    Deleting a version that is already gone succeeds, so a retry may repeat it."""
    aws.client("s3").delete_object(**upload.source())


def _config(model: str) -> ModelConfig:
    try:
        return read_model_config(model)
    except ConfigNotFound:
        raise UploadRejected("model", f"unknown model {model!r}: no configuration at config/{model}.yaml") from None
    except ConfigError as error:
        raise UploadRejected("config", f"the configuration of model {model!r} is invalid: {error}") from None


def _head(upload: Upload) -> dict[str, Any] | None:
    try:
        return aws.client("s3").head_object(**upload.source())
    except ClientError as error:
        if error.response["Error"]["Code"] in _GONE:
            return None
        raise


def _check_content(upload: Upload, key: UploadKey, size: int, limit: int, config: ModelConfig) -> TableSummary:
    if key.format == "parquet":
        return check_parquet(lambda start, length: _read_range(upload, start, length), size, config)
    with closing(aws.client("s3").get_object(**upload.source())["Body"]) as body:
        chunks = body.iter_chunks(CHUNK_BYTES)
        return check_csv(gunzip(chunks, limit) if key.compression == "gzip" else chunks, config)


def _read_range(upload: Upload, start: int, length: int) -> bytes:
    """Exactly these bytes. Powertools' S3Object would open a GET to the end of the object at every seek, plus a
    HEAD of its own (benchmarks/ingest_reads.py: 268x the bytes asked of S3 for a 200,000-row Parquet check)."""
    if length == 0:
        return b""
    response = aws.client("s3").get_object(**upload.source(), Range=f"bytes={start}-{start + length - 1}")
    with closing(response["Body"]) as body:
        return body.read()


def _result(status: str, upload: Upload, reason: str, **fields: Any) -> dict[str, Any]:
    return {"status": status, "reason": reason, "bucket": upload.bucket, "key": upload.key,
            "version_id": upload.version_id, "model": None, "check": None, "dataset_uri": None,
            "quarantine_key": None, "run_id": None, "started": False, **fields}
