"""IngestFunction: EventBridge S3 "Object Created" under incoming/ -> dataset or quarantine.

Returns {"status": "accepted" | "quarantined" | "ignored", "reason", "model", "key", "version_id",
"check", "dataset_uri", "quarantine_key", "run_id", "started"}. A malformed event raises
pydantic's ValidationError (EventBridge retries, then the rule's dead-letter queue keeps it)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from ingest import Upload, ingest_upload
from selfheal_shared.errors import throttling_as_retryable
from selfheal_shared.events import S3ObjectCreatedEvent
from selfheal_shared.idempotency import run_once

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=S3ObjectCreatedEvent)
@throttling_as_retryable
def lambda_handler(event: S3ObjectCreatedEvent, context: LambdaContext) -> dict[str, Any]:
    upload = Upload.from_event(event)
    logger.append_keys(cause_id=upload.cause_id)
    # Once per object version: a duplicate delivery gets the first delivery's result.
    return run_once("ingest", ingest_upload, upload, key="cause_id", context=context)
