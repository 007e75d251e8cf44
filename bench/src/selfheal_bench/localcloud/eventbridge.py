"""EventBridge → Lambda and → Step Functions delivery, which moto's events backend does not do.

Rules keep moto's own pattern matching (the template's EventPattern, as created); only Lambda and state
machine targets are taken over and handed to `deliver`, which invokes asynchronously as EventBridge does.
Every other target type stays with moto. `emit` puts an event on the default bus, as an AWS service does.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

from moto.events.models import Rule
from moto.events.utils import _BASE_EVENT_MESSAGE, EventTemplateParser
from moto.utilities.arns import parse_arn

_TAKEN_OVER = {"lambda", "states"}  # target services moto's events backend does not call
Deliver = Callable[[str, dict[str, Any], dict[str, Any]], None]  # (rule ARN, target, event)
_lock = threading.Lock()


def normalise(event: dict[str, Any]) -> dict[str, Any]:
    """moto's S3 events carry a fixed id and a numeric time; EventBridge sends a unique id and ISO time."""
    event = dict(event)
    if event.get("id") == _BASE_EVENT_MESSAGE["id"]:
        event["id"] = str(uuid.uuid4())
    if isinstance(event.get("time"), int | float):
        event["time"] = dt.datetime.fromtimestamp(event["time"], dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return event


def target_input(target: dict[str, Any], event: dict[str, Any]) -> Any:
    if "Input" in target:
        return json.loads(target["Input"])
    transformer = target.get("InputTransformer", {})
    if transformer:
        return EventTemplateParser.parse(input_template=transformer.get("InputTemplate"),
                                         input_paths_map=transformer.get("InputPathsMap", {}), event=event)
    return event


def patch_moto_events(deliver: Deliver) -> Callable[[], None]:
    original = Rule.send_to_targets

    def send_to_targets(self: Rule, original_event: dict[str, Any], transform_input: bool = True) -> None:
        if getattr(self, "state", "ENABLED") != "ENABLED" or not self.event_pattern.matches_event(original_event):
            return
        event = normalise(original_event)
        lambdas = [t for t in self.targets if parse_arn(t["Arn"]).service in _TAKEN_OVER]
        for target in lambdas:
            deliver(self.arn, target, target_input(target, event))
        others = [t for t in self.targets if t not in lambdas]
        if others:
            with _lock:
                saved, self.targets = self.targets, others
                try:
                    original(self, original_event, transform_input)
                finally:
                    self.targets = saved

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]

    def undo() -> None:
        Rule.send_to_targets = original  # type: ignore[method-assign]

    return undo


def emit(source: str, detail_type: str, detail: dict[str, Any], resources: list[str] | None = None) -> None:
    """An AWS service's event on the default bus (e.g. SageMaker's Model Package State Change)."""
    import boto3

    boto3.client("events").put_events(Entries=[{"Source": source, "DetailType": detail_type,
                                                "Detail": json.dumps(detail), "Resources": resources or []}])
