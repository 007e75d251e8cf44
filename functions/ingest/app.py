"""IngestFunction: EventBridge S3 "Object Created" under incoming/ -> dataset or quarantine.

Returns {"status": "accepted" | "quarantined" | "ignored", "reason", "model", "key", "version_id",
"check", "dataset_uri", "quarantine_key", "run_id", "started"}. A malformed event raises
pydantic's ValidationError (EventBridge retries, then the rule's dead-letter queue keeps it)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from ingest import Upload, ingest_upload
from selfheal_shared.handler import handler, logger
from selfheal_shared.idempotency import run_once
from selfheal_shared.s3_events import S3ObjectCreatedEvent


@handler(S3ObjectCreatedEvent, correlation_id_path=correlation_paths.EVENT_BRIDGE)
def lambda_handler(event: S3ObjectCreatedEvent, context: LambdaContext) -> dict[str, Any]:
    upload = Upload.from_event(event)
    logger.append_keys(cause_id=upload.cause_id)
    # Once per object version: a duplicate delivery gets the first delivery's result.
    return run_once("ingest", ingest_upload, upload, key="cause_id", context=context)
