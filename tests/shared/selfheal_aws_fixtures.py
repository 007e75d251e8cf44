"""Fixtures shared by tests/shared and tests/functions: a moto account with the resources the
functions use (ledger table, versioned data bucket, notification topic read through an SQS queue,
a TrainingPipeline state machine), the environment the template gives the functions, and helpers
to read sample events and make test data. Both conftest.py files import from here."""

from __future__ import annotations

import functools
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from boto3.dynamodb.conditions import Key
from moto import mock_aws
from selfheal_shared import aws
from selfheal_shared.settings import reset_settings

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"

REGION = "us-east-1"
ACCOUNT = "123456789012"
# The local stack's data bucket, which the sample events in events/ name (selfheal local invoke runs them there).
BUCKET = "selfheal-local-databucket"
TABLE = "selfheal-ledger"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:selfheal-notifications"
PIPELINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:selfheal-training-pipeline"
CODE_VERSION = "v1"
XGBOOST_IMAGE = f"683313688378.dkr.ecr.{REGION}.amazonaws.com/sagemaker-xgboost:1.7-1"
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
KMS_KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-4000-8000-000000000001"

CHURN = {"target": "churned", "problem": "binary", "metric": {"name": "auc", "threshold": 0.75}}

ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_SERVICE_NAME": "selfheal",
    "POWERTOOLS_METRICS_NAMESPACE": "selfheal",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "LEDGER_TABLE": TABLE,
    "DATA_BUCKET": BUCKET,
    "NOTIFY_TOPIC_ARN": TOPIC_ARN,
    "TRAINING_PIPELINE_ARN": PIPELINE_ARN,
    "CODE_VERSION": CODE_VERSION,
    "XGBOOST_IMAGE_URI": XGBOOST_IMAGE,
    "KMS_KEY_ARN": KMS_KEY_ARN,
    "MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
}


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The functions' environment, with cached settings and clients forgotten before and after."""
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    aws.reset()
    yield dict(ENVIRONMENT)
    reset_settings()
    aws.reset()


@dataclass
class Cloud:
    """The moto account, with the questions tests ask of it."""

    s3: Any
    table: Any
    sfn: Any
    sagemaker: Any
    sqs: Any
    queue_url: str
    _seen: list[dict[str, Any]] = field(default_factory=list)

    def put_config(self, model: str, config: dict[str, Any] | str, suffix: str = ".yaml") -> None:
        body = config if isinstance(config, str) else yaml.safe_dump(config)
        self.s3.put_object(Bucket=BUCKET, Key=f"config/{model}{suffix}", Body=body.encode("utf-8"))

    def upload(self, key: str, body: bytes) -> dict[str, Any]:
        """Put an object as a user would; returns what its Object Created event would carry."""
        response = self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        return {"key": key, "size": len(body), "etag": response["ETag"].strip('"'),
                "version-id": response["VersionId"]}

    def keys(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def read_json(self, key: str) -> Any:
        return json.loads(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def put_json(self, key: str, document: Any) -> None:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(document).encode("utf-8"))

    def ledger(self, model: str, prefix: str = "") -> list[dict[str, Any]]:
        condition = Key("pk").eq(f"MODEL#{model}")
        if prefix:
            condition &= Key("sk").begins_with(prefix)
        return self.table.query(KeyConditionExpression=condition)["Items"]

    def executions(self) -> list[dict[str, Any]]:
        return self.sfn.list_executions(stateMachineArn=PIPELINE_ARN)["executions"]

    def execution_input(self, name: str) -> dict[str, Any]:
        arn = PIPELINE_ARN.replace(":stateMachine:", ":execution:") + f":{name}"
        return json.loads(self.sfn.describe_execution(executionArn=arn)["input"])

    def notifications(self) -> list[dict[str, Any]]:
        """Every notification published so far: {"subject", "event", "message"}. Bounded drain."""
        for _ in range(100):
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                break
            for message in batch:
                envelope = json.loads(message["Body"])
                self._seen.append({"subject": envelope.get("Subject"),
                                   "event": envelope["MessageAttributes"]["event"]["Value"],
                                   "message": json.loads(envelope["Message"])})
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return list(self._seen)


@functools.cache
def _session() -> boto3.session.Session:
    return boto3.session.Session()


@pytest.fixture
def cloud(aws_env: dict[str, str]) -> Iterator[Cloud]:
    with mock_aws():
        # moto unsets boto3's default session; one shared session keeps botocore's parsed service
        # models (sagemaker's is large) instead of parsing them again for every test.
        boto3.DEFAULT_SESSION = _session()
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})

        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.update_time_to_live(TableName=TABLE,
                                     TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"})

        sns = boto3.client("sns", region_name=REGION)
        topic_arn = sns.create_topic(Name=TOPIC_ARN.rpartition(":")[2])["TopicArn"]
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="notifications-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

        sfn = boto3.client("stepfunctions", region_name=REGION)
        definition = {"StartAt": "Train", "States": {"Train": {"Type": "Pass", "End": True}}}
        sfn.create_state_machine(name=PIPELINE_ARN.rpartition(":")[2], definition=json.dumps(definition),
                                 roleArn=f"arn:aws:iam::{ACCOUNT}:role/selfheal-pipeline")

        yield Cloud(s3=s3, table=boto3.resource("dynamodb", region_name=REGION).Table(TABLE), sfn=sfn,
                    sagemaker=boto3.client("sagemaker", region_name=REGION), sqs=sqs, queue_url=queue_url)


@dataclass
class FakeLambdaContext:
    function_name: str = "selfheal-test-function"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:selfheal-test-function"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/selfheal-test-function"
    log_stream_name: str = "2025/11/26/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def load_event(function: str, name: str) -> dict[str, Any]:
    return json.loads((EVENTS / function / name).read_text())


def event_files(function: str) -> list[str]:
    return sorted(path.name for path in (EVENTS / function).glob("*.json"))


def churn_rows(count: int, *, classes: tuple[str, ...] = ("yes", "no")) -> list[list[str]]:
    return [[str(i % 7), f"{20 + i % 50}.5", ["basic", "pro"][i % 2], classes[i % len(classes)]] for i in range(count)]


def churn_csv(count: int = 60, **kwargs: Any) -> bytes:
    lines = ["tenure,monthly_charges,plan,churned"] + [",".join(row) for row in churn_rows(count, **kwargs)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def churn_parquet(count: int = 60, **kwargs: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = churn_rows(count, **kwargs)
    table = pa.table({"tenure": [int(r[0]) for r in rows], "monthly_charges": [float(r[1]) for r in rows],
                      "plan": [r[2] for r in rows], "churned": [r[3] for r in rows]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def emitted_metrics(output: str) -> dict[str, Any]:
    """Metrics Powertools printed as CloudWatch EMF lines, name -> value (plus their metadata)."""
    found: dict[str, Any] = {}
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                found[metric["Name"]] = blob[metric["Name"]]
        found.update({k: v for k, v in blob.items() if k not in found and k != "_aws"})
    return found
