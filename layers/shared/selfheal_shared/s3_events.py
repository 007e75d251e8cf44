"""S3ObjectCreatedEvent: what EventBridge delivers to IngestFunction for an S3 "Object Created".

Powertools' S3-over-EventBridge models, held to what S3 and this project allow. A module of its own:
building Powertools' S3 models costs import time, and only IngestFunction needs them. Anything that does
not match raises pydantic's ValidationError naming the field."""

from __future__ import annotations

from typing import Literal

# s3.py, not the package: the package does not export the bucket model.
from aws_lambda_powertools.utilities.parser.models.s3 import (
    S3EventNotificationEventBridgeBucketModel,
    S3EventNotificationEventBridgeDetailModel,
    S3EventNotificationEventBridgeModel,
    S3EventNotificationObjectModel,
)
from pydantic import Field


class S3Bucket(S3EventNotificationEventBridgeBucketModel):
    name: str = Field(min_length=1, max_length=255)


class S3Object(S3EventNotificationObjectModel):
    key: str = Field(min_length=1, max_length=4096)  # pydantic refuses lone surrogates
    size: int | None = Field(None, ge=0)  # bytes: Powertools' model takes any non-negative float
    version_id: str | None = Field(None, alias="version-id", max_length=1024)


class ObjectCreatedDetail(S3EventNotificationEventBridgeDetailModel):
    bucket: S3Bucket
    object: S3Object


class S3ObjectCreatedEvent(S3EventNotificationEventBridgeModel):
    """An S3 "Object Created" event as EventBridge delivers it. The key is not URL-encoded here
    (unlike S3's direct notifications)."""

    source: Literal["aws.s3"]
    detail_type: Literal["Object Created"] = Field(alias="detail-type")
    detail: ObjectCreatedDetail
