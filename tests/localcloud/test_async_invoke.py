"""EventBridge → Lambda in two layers, each with its own retries and dead letters, read from template.yaml:
the rule target's RetryPolicy and DeadLetterConfig cover delivering the event to Lambda; the function's
EventInvokeConfig and DeadLetterQueue cover running it.

Sources: "How Lambda handles errors and retries with asynchronous invocation" and "Capturing records of
Lambda asynchronous invocations" (Lambda Developer Guide); "Event retry policy and using dead-letter
queues" (EventBridge User Guide)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from selfheal_bench.localcloud import LocalCloud
from selfheal_bench.localcloud.async_invoke import AsyncInvoker
from selfheal_bench.localcloud.lambdas import AsyncConfig

UPLOAD = b"customer_id,tenure,churned\n1,2,0\n"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with LocalCloud(tmp_path_factory.mktemp("cloud")) as local:
        yield local


@pytest.fixture(autouse=True)
def clear(cloud: LocalCloud) -> Iterator[None]:
    yield
    cloud.faults.clear()


def drain(cloud: LocalCloud, logical_id: str) -> list[dict[str, Any]]:
    sqs = cloud.client("sqs")
    url = sqs.get_queue_url(QueueName=cloud.physical(logical_id))["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    for message in messages.get("Messages", []):
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return messages.get("Messages", [])


def upload(cloud: LocalCloud, name: str) -> None:
    cloud.client("s3").put_object(Bucket=cloud.bucket, Key=f"incoming/churn/{name}", Body=UPLOAD)
    cloud.wait_idle(timeout=120)


def ingest_runs(cloud: LocalCloud) -> int:
    return sum(1 for i in cloud.router.invocations if i.function == "IngestFunction")


def test_a_function_that_keeps_failing_is_retried_as_its_event_invoke_config_says_then_dead_lettered(cloud):
    # Given IngestFunction (EventInvokeConfig: 2 retries; DeadLetterQueue: IngestDLQ) raising every time
    fault = cloud.faults.add("lambda:IngestFunction", "raise", times=None)
    before, letters = ingest_runs(cloud), len(cloud.dead_letters)
    # When an upload's event reaches it
    upload(cloud, "failing.csv")
    # Then it ran 1 + 2 times, and the event went to the function's dead-letter queue, as Lambda sends it:
    # the event itself, with the request id, the status and the error message
    assert fault.fired == 3 and ingest_runs(cloud) - before == 3
    (letter,) = cloud.dead_letters[letters:]
    assert (letter.layer, letter.sent_to) == ("processing", (cloud.router.spec("IngestFunction").asynchronous
                                                             .dead_letter,))
    (message,) = drain(cloud, "IngestDLQ")
    assert json.loads(message["Body"])["detail"]["object"]["key"] == "incoming/churn/failing.csv"
    attributes = message["MessageAttributes"]
    assert set(attributes) == {"RequestID", "ErrorCode", "ErrorMessage"}
    assert attributes["ErrorCode"]["StringValue"] == "200"
    assert "injected fault" in attributes["ErrorMessage"]["StringValue"]
    # And Lambda sent it with the function's role, which the audit holds to the template's policy
    assert any(c.principal == "IngestFunction" and c.operation == "SendMessage" for c in cloud.audit.calls)


def test_a_throttled_invocation_goes_back_to_the_queue_without_using_up_a_retry(cloud):
    # Given Lambda throttling IngestFunction three times in a row (more than its two retries)
    fault = cloud.faults.add("lambda:IngestFunction", "throttle", times=3)
    letters = len(cloud.dead_letters)
    # When an upload's event reaches it
    upload(cloud, "throttled.csv")
    # Then the throttles fired and the event was still processed: throttles are retried for up to the
    # event's maximum age, and only function errors count against MaximumRetryAttempts
    assert fault.fired == 3
    assert cloud.dead_letters[letters:] == []
    assert drain(cloud, "IngestDLQ") == []


def test_every_function_the_rules_invoke_lets_its_rule_do_so(cloud):
    # Given the template's rules and their function targets
    events = cloud.client("events")
    for rule in events.list_rules()["Rules"]:
        for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]:
            if ":function:" in target["Arn"]:
                # Then the function's resource policy lets that rule invoke it (else EventBridge cannot)
                assert cloud.lambda_async._allows(cloud.router.spec(target["Arn"]), "events.amazonaws.com",
                                                  rule["Arn"]), rule["Name"]


def test_a_rule_the_function_does_not_allow_cannot_deliver_and_its_event_goes_to_the_rules_queue(cloud):
    # Given a rule whose target's resource policy does not name it
    ingest = cloud.router.spec("IngestFunction")
    target = {"Id": "x", "Arn": ingest.arn, "DeadLetterConfig": {"Arn": ingest.asynchronous.dead_letter}}
    rule = "arn:aws:events:us-east-1:123456789012:rule/not-allowed"
    before = ingest_runs(cloud)
    # When EventBridge delivers an event through it
    cloud.lambda_async.from_rule(rule, target, {"detail": {}})
    # Then the function never ran, and the event is in the rule's dead-letter queue at once, with
    # EventBridge's attributes
    assert ingest_runs(cloud) == before
    assert cloud.dead_letters[-1].layer == "delivery"
    (message,) = drain(cloud, "IngestDLQ")
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["ERROR_CODE"] == "NO_PERMISSIONS" and attributes["RULE_ARN"] == rule


def test_an_event_too_old_to_run_goes_to_the_on_failure_destination_as_an_invocation_record(cloud):
    # Given a function whose events may wait 60 s at most, sending failures to a queue, and Lambda
    # throttling it every time
    queue = cloud.client("sqs").create_queue(QueueName="on-failure")["QueueUrl"]
    arn = "arn:aws:sqs:us-east-1:123456789012:on-failure"
    spec = cloud.router.spec("IngestFunction")
    short = type(spec)(**{**vars(spec), "asynchronous": AsyncConfig(max_retries=0, max_event_age=60,
                                                                   on_failure=arn)})
    fault = cloud.faults.add("lambda:IngestFunction", "throttle", times=None)
    invoker = AsyncInvoker(cloud.router, cloud.client, cloud.time_scale, cloud.audit.acting_as)
    # When an event is queued for it
    invoker.invoke(short, {"detail": {}})
    # Then Lambda retried with backoff (1, 2, 4, ... s) and gave up once the event was over 60 s old
    assert fault.fired == 6
    (message,) = cloud.client("sqs").receive_message(QueueUrl=queue)["Messages"]
    record = json.loads(message["Body"])
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestPayload"] == {"detail": {}}
    assert record["responseContext"]["statusCode"] == 429


def test_the_async_settings_are_the_templates(cloud):
    # Then each function's asynchronous settings are what template.yaml gives it
    spec = cloud.router.spec("IngestFunction").asynchronous
    assert (spec.max_retries, spec.max_event_age) == (2, 3600)
    assert spec.dead_letter.endswith(":" + cloud.physical("IngestDLQ"))
    assert cloud.router.spec("EvaluateGateFunction").asynchronous == AsyncConfig()
