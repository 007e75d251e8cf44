"""EventBridge → Lambda, as AWS does it: two layers, each with its own retries and dead letters.

- Delivery (the rule target's RetryPolicy and DeadLetterConfig): EventBridge invokes the function
  asynchronously. Lambda refuses only a request the function's resource policy does not allow (or a function
  that does not exist); EventBridge does not retry those but sends the event straight to the target's
  dead-letter queue ("Event retry policy and using dead-letter queues", EventBridge User Guide).
- Processing (the function's EventInvokeConfig and DeadLetterQueue): Lambda queues the event and runs the
  function. A function error (it raised, timed out or died) is retried MaximumRetryAttempts times, one then
  two minutes apart; a throttle or a Lambda system error puts the event back in the queue, retried from 1 s
  doubling to 5 minutes without counting as an attempt; an event older than MaximumEventAgeInSeconds is
  dropped. A dropped event goes to the OnFailure destination (an invocation record) and to the
  DeadLetterQueue (the event, with RequestID, ErrorCode and ErrorMessage), sent with the function's role
  ("How Lambda handles errors and retries with asynchronous invocation", "Capturing records of Lambda
  asynchronous invocations", Lambda Developer Guide).

Waits run `time_scale` times faster. A retry also waits for the other invocations of the same event still
running to end: on AWS the retry delay (a minute and more) outlasts these handlers' runs; here the delay
shrinks but the runs do not, and a duplicate would see its twin still in progress at every retry.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from .lambdas import FunctionError, FunctionRouter, FunctionSpec

_RETRY_DELAYS = (60, 120)  # seconds before the first and the second retry of a function error; then 120
_BACKOFF_FIRST, _BACKOFF_MAX = 1, 300  # a throttled or system-failed event, back in the queue
_EVENTS = "events.amazonaws.com"


@dataclass(frozen=True)
class DeadLetter:
    """An event that could not be delivered (layer "delivery") or processed (layer "processing")."""

    layer: str
    target: str
    event: Any
    error: str
    sent_to: tuple[str, ...]


class AsyncInvoker:
    def __init__(self, router: FunctionRouter, client: Callable[[str], Any], time_scale: float,
                 acting_as: Callable[[str], contextlib.AbstractContextManager[None]]) -> None:
        self._router = router
        self._client = client
        self._time_scale = time_scale
        self._acting_as = acting_as
        self._running: Counter[tuple[str, str]] = Counter()
        self._changed = threading.Condition()
        self.dead_letters: list[DeadLetter] = []

    # -- delivery ------------------------------------------------------------------------------------------

    def from_rule(self, rule_arn: str, target: dict[str, Any], event: Any) -> None:
        """EventBridge's delivery of a rule's event to a function target."""
        spec = self._router.spec(target["Arn"])
        if not self._allows(spec, _EVENTS, rule_arn):
            error = f"NO_PERMISSIONS: {spec.name}'s resource policy does not let {rule_arn} invoke it"
            queue = target.get("DeadLetterConfig", {}).get("Arn")
            if queue:  # EventBridge's own send, allowed by the queue's policy
                self._send_sqs(queue, json.dumps(event), {
                    "RULE_ARN": rule_arn, "TARGET_ARN": target["Arn"], "ERROR_CODE": "NO_PERMISSIONS",
                    "ERROR_MESSAGE": error[:256]})
            self.dead_letters.append(DeadLetter("delivery", target["Arn"], event, error, (queue,) if queue else ()))
            return
        self.invoke(spec, event)

    def _allows(self, spec: FunctionSpec, service: str, source_arn: str) -> bool:
        """Whether the function's resource-based policy lets `service` invoke it on behalf of `source_arn`."""
        try:
            policy = json.loads(self._client("lambda").get_policy(FunctionName=spec.name)["Policy"])
        except ClientError:
            return False
        for statement in policy["Statement"]:
            condition = statement.get("Condition", {})
            if (statement["Effect"] == "Allow" and statement.get("Principal", {}).get("Service") == service
                    and statement["Action"] in {"lambda:InvokeFunction", "lambda:*"}
                    and condition.get("ArnLike", {}).get("AWS:SourceArn", source_arn) == source_arn):
                return True
        return False

    # -- processing ----------------------------------------------------------------------------------------

    def invoke(self, spec: FunctionSpec, event: Any) -> None:
        """Lambda's processing of one queued event: attempts, retries, then its failure destinations."""
        config = spec.asynchronous
        key = (spec.logical_id, json.dumps(event, sort_keys=True))
        age, attempts, backoff = 0.0, 0, _BACKOFF_FIRST
        while True:
            try:
                with self._running_as(key):
                    self._router.invoke(spec.arn, event)
                return
            except FunctionError as error:
                failure = error
            if failure.status == 200:  # a function error: counted
                attempts += 1
                delay = _RETRY_DELAYS[min(attempts, len(_RETRY_DELAYS)) - 1]
            else:  # throttled or a system error: back to the queue
                delay, backoff = backoff, min(backoff * 2, _BACKOFF_MAX)
            age += delay
            condition = ("RetriesExhausted" if attempts > config.max_retries
                         else "EventAgeExceeded" if age > config.max_event_age else None)
            if condition:
                self._fail(spec, event, failure, attempts, condition)
                return
            self._wait(delay, key, spec.timeout)

    @contextlib.contextmanager
    def _running_as(self, key: tuple[str, str]) -> Iterator[None]:
        with self._changed:
            self._running[key] += 1
        try:
            yield
        finally:
            with self._changed:
                self._running[key] -= 1
                self._changed.notify_all()

    def _wait(self, delay: float, key: tuple[str, str], timeout: float) -> None:
        time.sleep(delay * self._time_scale)
        with self._changed:  # the same event's other runs end first (bounded by the function's timeout)
            self._changed.wait_for(lambda: self._running[key] == 0, timeout=timeout)

    def _fail(self, spec: FunctionSpec, event: Any, error: FunctionError, attempts: int, condition: str) -> None:
        config, request_id = spec.asynchronous, str(uuid.uuid4())
        sent_to = []
        with self._acting_as(spec.logical_id):  # Lambda sends with the function's execution role
            if config.on_failure:
                self._send(config.on_failure, json.dumps(self._record(spec, event, error, attempts, condition,
                                                                      request_id)), {})
                sent_to.append(config.on_failure)
            if config.dead_letter:
                self._send(config.dead_letter, json.dumps(event), {
                    "RequestID": request_id, "ErrorCode": error.status, "ErrorMessage": error.message[:1024]})
                sent_to.append(config.dead_letter)
        self.dead_letters.append(DeadLetter("processing", spec.arn, event, f"{error.error_type}: {error.message}",
                                            tuple(sent_to)))

    @staticmethod
    def _record(spec: FunctionSpec, event: Any, error: FunctionError, attempts: int, condition: str,
                request_id: str) -> dict[str, Any]:
        """The invocation record an OnFailure destination receives."""
        return {"version": "1.0", "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                "requestContext": {"requestId": request_id, "functionArn": f"{spec.arn}:$LATEST",
                                   "condition": condition, "approximateInvokeCount": max(attempts, 1)},
                "requestPayload": event,
                "responseContext": {"statusCode": error.status, "executedVersion": "$LATEST",
                                    **({"functionError": "Unhandled"} if error.status == 200 else {})},
                "responsePayload": {"errorType": error.error_type, "errorMessage": error.message}}

    def _send(self, arn: str, body: str, attributes: dict[str, Any]) -> None:
        if ":sqs:" in arn:
            self._send_sqs(arn, body, attributes)
        else:  # SNS (deploy refuses any other destination)
            self._client("sns").publish(TopicArn=arn, Message=body, MessageAttributes=_attributes(attributes))

    def _send_sqs(self, arn: str, body: str, attributes: dict[str, Any]) -> None:
        sqs = self._client("sqs")
        url = sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=_attributes(attributes))


def _attributes(values: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {name: {"DataType": "Number" if isinstance(value, int) else "String", "StringValue": str(value)}
            for name, value in values.items()}
