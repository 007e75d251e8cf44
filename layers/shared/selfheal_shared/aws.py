"""boto3 clients, created on first use (never at import) and cached, so tests and the local cloud
decide which endpoint and credentials they talk to. `reset()` forgets them all."""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from selfheal_shared.s3uri import S3Uri
from selfheal_shared.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

# Standard retry mode backs off on throttling (DynamoDB, SNS, Step Functions) within the invocation.
_BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


@cache
def client(service: str) -> Any:
    """The client of one service (boto3's name for it: "s3", "sagemaker-runtime", ...)."""
    return boto3.client(service, config=_BOTO_CONFIG)


@cache
def dynamodb() -> Any:
    return boto3.resource("dynamodb", config=_BOTO_CONFIG)


@cache
def ledger_table() -> Any:
    return dynamodb().Table(get_settings().ledger_table)


@cache
def idempotency_store(name: str) -> DynamoDBPersistenceLayer:
    """One persistence layer per idempotent step: Powertools configures a layer once, from the
    first IdempotencyConfig it sees, so steps must not share one. Records live in the ledger.
    Imported here: the functions without an idempotent step do not load Powertools' idempotency at cold start."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(
        table_name=get_settings().ledger_table,
        key_attr="pk",
        sort_key_attr="sk",
        expiry_attr="expiration",
        static_pk_value=f"IDEMPOTENCY#{name}",
        boto3_client=client("dynamodb"),
    )


_GETTERS = (client, dynamodb, ledger_table, idempotency_store)


def reset() -> None:
    """Forget every cached client (tests start a fresh moto account per test)."""
    for getter in _GETTERS:
        getter.cache_clear()


MISSING = frozenset({"NoSuchKey", "404"})  # GetObject's and HeadObject's codes for an absent key


def is_missing(error: ClientError) -> bool:
    return error.response["Error"]["Code"] in MISSING


def read_json(uri: S3Uri, what: str, max_bytes: int, missing: type[Exception],
              invalid: type[Exception]) -> dict[str, Any]:
    """A JSON object from S3, read at most max_bytes: `missing` when there is no such key, `invalid` when
    it is larger, not JSON, or not an object (each names the state machines' Catch)."""
    try:
        with client("s3").get_object(Bucket=uri.bucket, Key=uri.key)["Body"] as body:
            data = body.read(max_bytes + 1)
    except ClientError as error:
        if is_missing(error):
            raise missing(f"no {what} at {uri}") from None
        raise
    if len(data) > max_bytes:
        raise invalid(f"{what} {uri} is larger than {max_bytes} bytes")
    try:
        document = json.loads(data)
    except ValueError as error:  # UnicodeDecodeError is one
        raise invalid(f"{what} {uri} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise invalid(f"{what} {uri} is not a JSON object")
    return document
