"""Notifications: one JSON message per event on the NOTIFY_TOPIC_ARN topic."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from selfheal_shared import aws
from selfheal_shared.settings import get_settings

_SUBJECT_MAX = 99  # SNS: under 100 characters, ASCII, no line breaks or control characters
_NOT_SUBJECT_SAFE = re.compile(r"[^\x20-\x7e]")


def subject_line(text: str) -> str:
    return _NOT_SUBJECT_SAFE.sub("?", text)[:_SUBJECT_MAX].strip() or "selfheal"


def publish(subject: str, message: Mapping[str, Any], *, event: str) -> str:
    """Publish `message` as JSON; `event` (e.g. "upload.quarantined") also goes in a message
    attribute so subscribers can filter on it. Returns the SNS message id."""
    response = aws.client("sns").publish(
        TopicArn=get_settings().notify_topic_arn,
        Subject=subject_line(subject),
        Message=json.dumps({"event": event, **message}, sort_keys=True, allow_nan=False),
        MessageAttributes={"event": {"DataType": "String", "StringValue": event}},
    )
    return response["MessageId"]
